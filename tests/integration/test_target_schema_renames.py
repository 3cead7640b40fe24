"""Target-schema mode on the real server: a remove + add of same-defined fields is a rename
only when the documents say so, and `--not-a-rename OLD:NEW` makes it a remove + add."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis
import yaml
from click.testing import CliRunner, Result
from helpers import DOCS, PREFIX, info, source

from ftctl import MigrationPlanner
from ftctl.cli import cli
from ftctl.indexes import source_schema
from ftctl.plan import load_plan
from ftctl.schema import schema_to_builtins


def _target_file(redis_url: str, tmp_path: Path, old: str, new: str) -> Path:
    """The live schema of 'docs' with field ``old`` renamed to ``new`` by hand."""
    raw = schema_to_builtins(source_schema("docs", redis_url=redis_url))
    for f in raw["fields"]:
        if f["name"] == old:
            f["name"] = new
    path = tmp_path / "target.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _migrate(redis_url: str, tmp_path: Path, target: Path, *extra: str) -> Path:
    plan_file = tmp_path / "plan.yaml"
    planned = _cli(redis_url, "plan", "--index", "docs", "--target-schema", str(target),
                   "--plan-out", str(plan_file), "--mode", "drop_recreate", *extra)  # fmt: skip
    assert planned.exit_code == 0, planned.output
    assert load_plan(plan_file).supported, planned.output
    applied = _cli(
        redis_url, "apply", "--plan", str(plan_file), "--backup-dir", str(tmp_path / "b")
    )
    assert applied.exit_code == 0, applied.output
    return plan_file


def _found(r: redis.Redis, query: str) -> int:
    """How many documents of 'docs' match ``query`` (the test client speaks RESP3)."""
    reply = r.execute_command("FT.SEARCH", "docs", query, "LIMIT", "0", "0")
    return int(reply[b"total_results"])


def _cli(redis_url: str, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--url", redis_url, "migrate", *args])


def test_a_rename_the_data_shows_moves_every_value(
    r: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    """title → heading, where documents hold title and none heading: planned and applied as
    a rename; every document's title value is under heading afterwards, and searchable."""
    source(r, "hash")
    plan_file = _migrate(redis_url, tmp_path, _target_file(redis_url, tmp_path, "title", "heading"))
    renames = load_plan(plan_file).rename_operations.rename_fields
    assert [(x.old_name, x.new_name) for x in renames] == [("title", "heading")]
    for i in range(DOCS):
        assert r.hget(f"{PREFIX}{i}", "heading") == f"running item {i}".encode()
        assert not r.hexists(f"{PREFIX}{i}", "title")
    assert _found(r, "@heading:item") == DOCS


def test_not_a_rename_keeps_the_documents_as_they_are(
    r: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    """The same target with --not-a-rename title:heading (Python: not_renames=) removes
    title and adds heading:
    documents keep title, nothing is moved, and heading indexes nothing yet."""
    source(r, "hash")
    target = _target_file(redis_url, tmp_path, "title", "heading")
    planner = MigrationPlanner()
    by_data = planner.create_plan("docs", redis_client=r, target_schema_path=target)
    stated = planner.create_plan(
        "docs", redis_client=r, target_schema_path=target, not_renames=[("title", "heading")]
    )
    assert len(by_data.rename_operations.rename_fields) == 1
    assert stated.rename_operations.rename_fields == []
    plan_file = _migrate(redis_url, tmp_path, target, "--not-a-rename", "title:heading")
    plan = load_plan(plan_file)
    assert plan.rename_operations.rename_fields == []
    assert any("as stated (not a rename)" in w for w in plan.warnings)
    assert r.hget(f"{PREFIX}3", "title") == b"running item 3"
    assert not r.hexists(f"{PREFIX}3", "heading")
    assert [f.name for f in info(r).schema.fields] == ["heading", "category", "price", "emb"]
    assert _found(r, "@heading:item") == 0


def test_documents_already_holding_the_new_field_make_it_a_remove_and_add(
    r: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    """title → body, where documents already hold body (unindexed): no rename (it would
    overwrite body); the plan removes title and indexes body, which now finds them."""
    source(r, "hash")
    plan_file = _migrate(redis_url, tmp_path, _target_file(redis_url, tmp_path, "title", "body"))
    assert load_plan(plan_file).rename_operations.rename_fields == []
    assert r.hget(f"{PREFIX}3", "title") == b"running item 3"
    assert r.hget(f"{PREFIX}3", "body") == b"body text 3"
    assert _found(r, "@body:text") == DOCS


@pytest.mark.parametrize(
    ("value", "needle"),
    [("titleheading", "expected OLD:NEW"), ("title:nope", "not a rename 'title:nope'")],
)
def test_a_bad_not_a_rename_is_one_line_and_writes_no_plan(
    r: redis.Redis, redis_url: str, tmp_path: Path, value: str, needle: str
) -> None:
    """A malformed pair, or one that is no suspected rename: exit 2, one error line with a
    hint, no plan written."""
    source(r, "hash", count=4)
    target = _target_file(redis_url, tmp_path, "title", "heading")
    out = tmp_path / "plan.yaml"
    result = _cli(redis_url, "plan", "--index", "docs", "--target-schema", str(target),
                  "--plan-out", str(out), "--not-a-rename", value)  # fmt: skip
    assert result.exit_code == 2
    assert needle in result.stderr and "hint:" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()
