"""Online mode end to end: postponed cut-over gate, abort, rollback, and SIGKILL + resume."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner
from online_load import INDEX, create

from ftctl.cli import cli
from ftctl.executor import MigrationExecutor, rollback
from ftctl.plan import dump_plan, patch_from_builtins
from ftctl.planner import MigrationPlanner
from ftctl.schema.compare import reported_differences
from ftctl.schema.ftinfo import parse_ft_info
from ftctl.steps.history import decode_history

DOCS = 2_000
HNSW = {"changes": {"update_fields": [{"name": "emb", "attrs": {"algorithm": "hnsw", "m": 8}}]}}


def _plan(r: redis.Redis, patch: dict[str, object] = HNSW, **kwargs: object):  # type: ignore[no-untyped-def]
    return MigrationPlanner().create_plan(
        INDEX,
        redis_client=r,
        schema_patch=patch_from_builtins(patch),
        mode="online",
        **kwargs,  # type: ignore[arg-type]
    )


def _serving(r: redis.Redis, name: str = INDEX) -> tuple[str, int]:
    """(real index behind ``name``, num_docs); asserts it is fully indexed."""
    info = r.execute_command("FT.INFO", name)
    assert int(info[b"indexing"]) == 0
    return info[b"index_name"].decode(), int(info[b"num_docs"])


def test_postponed_cutover_waits_then_cli_cutover_swaps(
    r: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    """--postpone-cutover stops with the source serving and a verified shadow; `migrate
    cutover` swaps atomically and reports the cut-over instant."""
    create(r, "hash", DOCS, algorithm="FLAT")
    plan = _plan(r, postpone_cutover=True)
    report = MigrationExecutor().apply(plan, client=r, backup_dir=tmp_path)
    assert report.result == "awaiting_cutover"
    assert _serving(r) == (INDEX, DOCS)
    assert plan.online is not None and _serving(r, plan.online.shadow_name)[1] == DOCS
    out = CliRunner().invoke(
        cli, ["--url", redis_url, "migrate", "cutover", "--backup-dir", str(tmp_path)]
    )
    assert out.exit_code == 0, out.output
    assert "Cut-over at" in out.output
    assert _serving(r) == (plan.online.shadow_name, DOCS)
    info = parse_ft_info(r.execute_command("FT.INFO", INDEX))
    assert reported_differences(plan.merged_target_schema, info.schema) == []


def test_abort_drops_the_shadow_and_leaves_everything(
    r: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    """`migrate abort` before the cut-over drops only the shadow; after it, abort is refused
    (exit 2) and rollback cuts back online to the source schema."""
    create(r, "hash", DOCS, algorithm="FLAT")
    plan = _plan(r, postpone_cutover=True)
    MigrationExecutor().apply(plan, client=r, backup_dir=tmp_path / "a")
    out = CliRunner().invoke(
        cli, ["--url", redis_url, "migrate", "abort", "--backup-dir", str(tmp_path / "a")]
    )
    assert out.exit_code == 0, out.output
    assert r.execute_command("FT._LIST") == [INDEX.encode()]
    assert _serving(r) == (INDEX, DOCS)
    plan = _plan(r)
    assert (
        MigrationExecutor().apply(plan, client=r, backup_dir=tmp_path / "b").result == "succeeded"
    )
    out = CliRunner().invoke(
        cli, ["--url", redis_url, "migrate", "abort", "--backup-dir", str(tmp_path / "b")]
    )
    assert out.exit_code == 2
    back = rollback(tmp_path / "b", client=r)
    assert back.result == "rolled_back", back.error
    real, count = _serving(r)
    assert real != INDEX and count == DOCS
    info = parse_ft_info(r.execute_command("FT.INFO", INDEX))
    assert reported_differences(plan.source.schema_snapshot, info.schema) == []


def test_add_field_runs_ft_alter_in_place(r: redis.Redis, tmp_path: Path) -> None:
    """A change that only adds fields is planned as FT.ALTER: no new index, the field is
    searchable on existing documents afterwards."""
    create(r, "hash", 200, algorithm="FLAT")
    for i in range(200):
        r.hset(f"doc:{i}", "color", "red")
    plan = _plan(r, {"changes": {"add_fields": [{"name": "color", "type": "tag"}]}})
    assert plan.online is not None and plan.online.strategy == "alter"
    assert MigrationExecutor().apply(plan, client=r, backup_dir=tmp_path).result == "succeeded"
    assert r.execute_command("FT._LIST") == [INDEX.encode()]
    assert (
        r.execute_command("FT.SEARCH", INDEX, "@color:{red}", "LIMIT", "0", "0")[b"total_results"]
        == 200
    )
    history = decode_history(r.get(f"ftctl:schema:{INDEX}"))
    assert history is not None and history.field("color") is not None


def test_index_rename_makes_old_name_an_alias(r: redis.Redis, tmp_path: Path) -> None:
    """An online index rename builds the target name as the real index; the old name becomes
    its alias, so queries by either name work."""
    create(r, "hash", 300, algorithm="FLAT")
    plan = _plan(r, {"changes": {"index": {"name": "docs2"}}})
    assert MigrationExecutor().apply(plan, client=r, backup_dir=tmp_path).result == "succeeded"
    assert _serving(r, "docs2") == ("docs2", 300)
    assert _serving(r, INDEX) == ("docs2", 300)
    history = decode_history(r.get("ftctl:schema:docs2"))
    assert history is not None and history.name == "docs2"
    assert r.get(f"ftctl:schema:{INDEX}") is None


@pytest.mark.parametrize(
    "fault",
    [
        "before:shadow_ready:shadow_wait",
        "after:check_passed:shadow_verify",
        "after:cutover_done:cutover",
    ],
    ids=["before-shadow-ready", "during-verification", "right-after-cutover"],
)
def test_kill_during_online_steps_then_rerun_rolls_forward(
    r: redis.Redis, redis_url: str, tmp_path: Path, fault: str
) -> None:
    """SIGKILL at an online step boundary: the original name still resolves to a complete
    index, and re-running apply finishes the migration with the target schema."""
    create(r, "hash", DOCS, algorithm="FLAT")
    plan = _plan(r)
    plan_file = tmp_path / "plan.yaml"
    plan_file.write_bytes(dump_plan(plan))
    argv = [sys.executable, "-c", "from ftctl.cli import main; main()", "--url", redis_url,
            "migrate", "apply", "--plan", str(plan_file), "--backup-dir", str(tmp_path / "b")]  # fmt: skip
    killed = subprocess.run(
        argv, env={**os.environ, "FTCTL_FAULT": fault}, capture_output=True, timeout=60
    )
    assert killed.returncode == -9, killed.stderr
    real, count = _serving(r)
    assert count == DOCS and real in (INDEX, plan.online.shadow_name)  # type: ignore[union-attr]
    again = subprocess.run(argv, capture_output=True, timeout=60)
    assert again.returncode == 0, again.stdout + again.stderr
    assert _serving(r) == (plan.online.shadow_name, DOCS)  # type: ignore[union-attr]
    info = parse_ft_info(r.execute_command("FT.INFO", INDEX))
    assert reported_differences(plan.merged_target_schema, info.schema) == []


def test_cli_apply_of_a_postponed_plan_exits_0_and_says_how_to_cut_over(
    r: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    """`migrate apply` of a --postpone-cutover plan stops with exit 0 and names the cutover
    and abort commands; the source still serves."""
    create(r, "hash", DOCS, algorithm="FLAT")
    plan_file = tmp_path / "plan.yaml"
    plan_file.write_bytes(dump_plan(_plan(r, postpone_cutover=True)))
    backups = tmp_path / "backups"
    out = CliRunner().invoke(
        cli,
        [
            "--url",
            redis_url,
            "migrate",
            "apply",
            "--plan",
            str(plan_file),
            "--backup-dir",
            str(backups),
        ],
    )
    assert out.exit_code == 0, out.output
    assert "Result: awaiting_cutover" in out.output
    assert f"ftctl migrate cutover --backup-dir {backups}" in out.output
    assert _serving(r) == (INDEX, DOCS)


def test_abort_of_an_expand_run_takes_batch_size_workers_and_progress(
    r: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    """Aborting a datatype change that waits at its gate is a pass over every document (the
    shadow field goes); it reports progress and runs in the batches and workers asked, and
    leaves every document as it was."""
    create(r, "hash", DOCS, algorithm="FLAT")
    before = {k: r.hgetall(k) for k in r.scan_iter("doc:*")}
    plan = _plan(
        r, {"changes": {"update_fields": [{"name": "emb", "attrs": {"datatype": "float16"}}]}}
    )
    assert plan.online is not None and plan.online.strategy == "expand"
    applied = MigrationExecutor().apply(
        plan, client=r, backup_dir=tmp_path / "a", accept_data_loss=True
    )
    assert applied.result == "awaiting_cutover", applied.error
    seen: list[tuple[str, int, int]] = []
    aborted = MigrationExecutor().abort(
        tmp_path / "a",
        client=r,
        batch_size=97,
        num_workers=2,
        progress_callback=lambda step, done, total: seen.append((step, done, total)),
    )
    assert aborted.result == "rolled_back", aborted.error
    assert {k: r.hgetall(k) for k in r.scan_iter("doc:*")} == before
    assert _serving(r) == (INDEX, DOCS)
    unexpand = [done for step, done, _ in seen if step == "rb_unexpand"]
    assert unexpand[0] == 97 and unexpand[-1] == DOCS  # the batch size asked, to the end
    out = CliRunner().invoke(cli, ["--url", redis_url, "migrate", "abort", "--help"])
    assert "--batch-size" in out.output and "--workers" in out.output
