"""Public names are stable: the name planned with and every alias that resolved to it answer
after every apply, resume, rollback, cut-over and abort, in any mode and any sequence."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import redis
from click.testing import CliRunner
from helpers import INDEX, info, patch, source, wait_indexed

from ftctl.cli import cli
from ftctl.executor import MigrationExecutor, rollback
from ftctl.plan import dump_plan
from ftctl.plan.batch import load_batch_plan
from ftctl.plan.models import MigrationPlan
from ftctl.planner import MigrationPlanner
from ftctl.steps.history import decode_record

PROBE = b"doc:7"
FLAT = patch(update_fields=[{"name": "emb", "attrs": {"algorithm": "flat"}}])
FLOAT16 = patch(update_fields=[{"name": "emb", "attrs": {"datatype": "float16"}}])


def _answers(r: redis.Redis, *names: str) -> str:
    """Assert every name finds the probe document first by KNN (its own stored vector, so the
    query blob always has the index's current datatype); returns the real index behind them."""
    blob = r.hget(PROBE, "emb")
    real = {info(r, n).index_name for n in names}
    assert len(real) == 1, f"{names} resolve to {real}"
    (index,) = real
    wait_indexed(r, index)
    for name in names:
        found = r.execute_command(
            "FT.SEARCH", name, "*=>[KNN 3 @emb $v AS d]", "PARAMS", "2", "v", blob,
            "SORTBY", "d", "RETURN", "1", "d", "DIALECT", "2",
        )  # fmt: skip
        hits = [row[b"id"] for row in found[b"results"]]
        assert hits and hits[0] == PROBE, (name, hits)
    return index


def _recorded(r: redis.Redis, index: str) -> list[str]:
    record = decode_record(r.get(f"ftctl:schema:{index}"))
    assert record is not None, index
    return record.aliases


def _plan(r: redis.Redis, changes: object, **kwargs: object) -> MigrationPlan:
    made = MigrationPlanner().create_plan(
        INDEX,
        redis_client=r,
        schema_patch=changes,  # type: ignore[arg-type]
        **kwargs,  # type: ignore[arg-type]
    )
    assert made.supported, made.diff_classification.blocked_reasons
    return made


def test_names_survive_online_drop_recreate_resume_rollbacks_and_batch(
    r: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    """online (abort, then postponed cut-over) → drop_recreate float32→float16 planned through
    the alias, killed in its create step and resumed → its rollback → the online rollback →
    batch-plan by pattern: after every step 'docs' and the user's alias 'mine' answer KNN on
    the same index, and the batch plan finds it by its public name."""
    source(r)
    r.execute_command("FT.ALIASADD", "mine", INDEX)
    assert _answers(r, INDEX, "mine") == INDEX

    # Online, postponed, then aborted: nothing moves.
    aborted = _plan(r, FLAT, mode="online", aliases=["mine"], postpone_cutover=True)
    executor = MigrationExecutor()
    assert executor.apply(aborted, client=r, backup_dir=tmp_path / "a").result == (
        "awaiting_cutover"
    )
    assert _answers(r, INDEX, "mine") == INDEX
    assert executor.abort(tmp_path / "a", client=r).result == "rolled_back"
    assert _answers(r, INDEX, "mine") == INDEX

    # Online again, cut over by the operator: both names move to the generated shadow.
    online = _plan(r, FLAT, mode="online", aliases=["mine"], postpone_cutover=True)
    executor.apply(online, client=r, backup_dir=tmp_path / "online")
    assert executor.cutover(tmp_path / "online", client=r).result == "succeeded"
    shadow = _answers(r, INDEX, "mine")
    assert online.online is not None and shadow == online.online.shadow_name != INDEX
    assert _recorded(r, shadow) == [INDEX, "mine"]

    # drop_recreate planned through the alias: 'mine' is kept from history without --alias.
    quantize = _plan(r, FLOAT16, mode="drop_recreate")
    assert quantize.source.index_name == shadow
    assert quantize.source.aliases == [INDEX, "mine"]
    assert any("ftctl keeps 'docs' (the name planned with), 'mine'" in w for w in quantize.warnings)
    plan_file = tmp_path / "quantize.yaml"
    plan_file.write_bytes(dump_plan(quantize))
    argv = [sys.executable, "-c", "from ftctl.cli import main; main()", "--url", redis_url,
            "migrate", "apply", "--plan", str(plan_file), "--backup-dir", str(tmp_path / "q"),
            "--accept-data-loss"]  # fmt: skip
    killed = subprocess.run(
        argv, env={**os.environ, "FTCTL_FAULT": "after:step_started:create"}, capture_output=True
    )
    assert killed.returncode == -9, killed.stderr
    resumed = executor.resume(tmp_path / "q", client=r)
    assert resumed.result == "succeeded", resumed.error
    names = [c for c in resumed.validation.checks if c.check == "names_resolve"]
    assert names and names[0].passed
    assert _answers(r, INDEX, "mine") == shadow
    assert info(r, INDEX).schema.vector_fields()[0].attrs.datatype == "float16"
    assert _recorded(r, shadow) == [INDEX, "mine"]

    # Its rollback points both names back at the recreated float32 index.
    back = rollback(tmp_path / "q", client=r)
    assert back.result == "rolled_back", back.error
    assert _answers(r, INDEX, "mine") == shadow
    assert info(r, INDEX).schema.vector_fields()[0].attrs.datatype == "float32"
    assert _recorded(r, shadow) == [INDEX, "mine"]

    # The online rollback cuts back (HNSW again) under a generated name: names follow.
    undone = rollback(tmp_path / "online", client=r)
    assert undone.result == "rolled_back", undone.error
    cut_back = _answers(r, INDEX, "mine")
    assert cut_back not in (INDEX, shadow)
    assert info(r, INDEX).schema.vector_fields()[0].attrs.algorithm == "hnsw"
    assert _recorded(r, cut_back) == [INDEX, "mine"]

    # Batch patterns match public names; the batch plan shows them beside the real name.
    for pattern in ("do*", "docs", "mi*"):
        out = CliRunner().invoke(
            cli,
            ["--url", redis_url, "migrate", "batch-plan", "--pattern", pattern,
             "--schema-patch", str(_patch_file(tmp_path)),
             "--plan-out", str(tmp_path / f"batch-{pattern.strip('*')}.yaml")],
        )  # fmt: skip
        assert out.exit_code == 0, out.output
        batch = load_batch_plan(tmp_path / f"batch-{pattern.strip('*')}.yaml")
        (entry,) = batch.indexes
        assert (entry.name, entry.applicable) == (cut_back, True)
        assert entry.public_name == (INDEX if pattern != "mi*" else "mine")
    assert _answers(r, INDEX, "mine") == cut_back


def _patch_file(tmp_path: Path) -> Path:
    path = tmp_path / "sortable.yaml"
    path.write_text(
        "version: 1\nchanges:\n  update_fields:\n    - name: price\n      attrs: {sortable: true}\n"
    )
    return path


def test_drop_recreate_keeps_a_named_alias_and_the_old_name_of_a_renamed_index(
    r: redis.Redis, tmp_path: Path
) -> None:
    """drop_recreate with --alias keeps that alias (it used to vanish with the drop), an index
    rename keeps the old name as an alias of the new index, and rollback restores both."""
    source(r)
    r.execute_command("FT.ALIASADD", "mine", INDEX)
    made = _plan(r, patch(index={"name": "catalog"}), aliases=["mine"])
    assert made.source.aliases == [INDEX, "mine"]
    report = MigrationExecutor().apply(made, client=r, backup_dir=tmp_path)
    assert report.result == "succeeded", report.error
    assert _answers(r, "catalog", INDEX, "mine") == "catalog"
    assert _recorded(r, "catalog") == [INDEX, "mine"]
    assert rollback(tmp_path, client=r).result == "rolled_back"
    assert _answers(r, INDEX, "mine") == INDEX
    assert _recorded(r, INDEX) == ["mine"]


def test_an_alias_nobody_named_is_reported_and_a_wrong_alias_blocks(r: redis.Redis) -> None:
    """The plan says which aliases it keeps and that others are dropped (pointing at
    --alias); an --alias that does not resolve to the source blocks the plan with the reason."""
    source(r)
    made = _plan(r, FLOAT16)
    assert any(
        "ftctl knows no alias of this index" in w and "--alias NAME" in w for w in made.warnings
    )
    blocked = MigrationPlanner().create_plan(
        INDEX, redis_client=r, schema_patch=FLOAT16, aliases=["nope"]
    )
    assert not blocked.supported
    assert any(
        "alias 'nope' does not exist" in b for b in blocked.diff_classification.blocked_reasons
    )
