"""RedisVL 0.28's names and argument shapes that need no server (import, files, callbacks)."""

from __future__ import annotations

from pathlib import Path

import pytest

import ftctl
from ftctl import (
    MigrationPlanner,
    RefusedError,
    UsageError,
    default_backup_dir,
    load_migration_plan,
    schemas_equal,
)
from ftctl.batch import RedisVLCheckpoint, redisvl_checkpoint
from ftctl.errors import BackupDirError
from ftctl.executor import progress_adapter
from ftctl.journal import Journal
from ftctl.journal.events import RunFinished, RunStarted, StepStarted
from ftctl.plan.batch import BatchPlan, BatchPlanIndex, OverlapError
from ftctl.plan.models import SchemaPatch, plan_digest
from ftctl.schema.model import schema_to_builtins

GUIDE_PLAN = Path(__file__).parents[2] / "fixtures" / "plans" / "guide_plan.yaml"
REDISVL_NAMES = (
    "AsyncMigrationExecutor",
    "AsyncMigrationPlanner",
    "AsyncMigrationValidator",
    "BatchMigrationExecutor",
    "BatchMigrationPlanner",
    "BatchPlan",
    "BatchState",
    "MigrationExecutor",
    "MigrationPlanner",
    "MigrationValidator",
    "SchemaPatch",
    "load_migration_plan",
    "schemas_equal",
    "MigrationPlan",
    "MigrationReport",
    "MigrationValidation",
    "MigrationTimings",
    "MigrationBenchmarkSummary",
    "MigrationBackupInfo",
    "QueryCheckResult",
    "BatchReport",
)


def test_redisvl_names_import_from_ftctl() -> None:
    """Every name of redisvl.migration (but the interactive wizard), and the utils and
    models names RedisVL users import, is exported by ftctl."""
    for name in REDISVL_NAMES:
        assert name in ftctl.__all__ and hasattr(ftctl, name), name


def test_refusals_are_value_errors() -> None:
    """Bad input, refusals, an unwritable backup dir and an overlap are ValueErrors, the
    type RedisVL raises, and still ftctl errors with an exit code."""
    for error in (
        UsageError("x"),
        RefusedError("x"),
        BackupDirError("x"),
        OverlapError(["a <-> b: 'p' <-> 'p'"], []),
    ):
        assert isinstance(error, ValueError) and isinstance(error, ftctl.FtctlError)
        assert error.exit_code == 2


def test_write_plan_round_trips(tmp_path: Path) -> None:
    """planner.write_plan(plan, path) writes what load_migration_plan reads back, with the
    same digest; an unwritable path is a ValueError."""
    plan = load_migration_plan(str(GUIDE_PLAN))
    out = tmp_path / "plan.yaml"
    MigrationPlanner().write_plan(plan, str(out))
    again = load_migration_plan(str(out))
    assert plan_digest(again) == plan_digest(plan)
    with pytest.raises(ValueError, match="cannot write the plan"):
        MigrationPlanner().write_plan(plan, str(tmp_path / "missing" / "plan.yaml"))


def test_load_schema_patch(tmp_path: Path) -> None:
    """planner.load_schema_patch(path) reads a patch file (RedisVL's method)."""
    path = tmp_path / "p.yaml"
    path.write_text("version: 1\nchanges:\n  remove_fields: [legacy]\n")
    patch = MigrationPlanner().load_schema_patch(str(path))
    assert isinstance(patch, SchemaPatch) and patch.changes.remove_fields == ["legacy"]


def test_batch_plan_counts() -> None:
    """BatchPlan.applicable_count / skipped_count count the applicable and skipped indexes."""
    batch = BatchPlan(
        batch_id="b",
        shared_patch=SchemaPatch(),
        indexes=[
            BatchPlanIndex(name="a", applicable=True),
            BatchPlanIndex(name="b", applicable=True),
            BatchPlanIndex(name="c", applicable=False, skip_reason="Missing fields: x"),
        ],
    )
    assert (batch.applicable_count, batch.skipped_count) == (2, 1)


def test_progress_adapter_speaks_both_shapes() -> None:
    """ftctl's (step, done, total) callback is used as it is; RedisVL's (step, detail) one
    gets RedisVL's phase names and "done/total docs"."""
    calls: list[tuple[object, ...]] = []

    def ftctl_style(step: str, done: int, total: int) -> None:
        calls.append((step, done, total))

    assert progress_adapter(ftctl_style) is ftctl_style
    assert progress_adapter(None) is None
    adapted = progress_adapter(lambda step, detail: calls.append((step, detail)))
    assert adapted is not None
    for step in ("enumerate", "backup", "rename_fields", "rename_keys", "quantize", "wait"):
        adapted(step, 1500, 2000)
    assert calls == [
        ("enumerate", "1,500/2,000 docs"),
        ("dump", "1,500/2,000 docs"),
        ("field_rename", "1,500/2,000 docs"),
        ("key_rename", "1,500/2,000 docs"),
        ("quantize", "1,500/2,000 docs"),
        ("index", "1,500/2,000 docs"),
    ]


def test_default_backup_dir_is_per_plan_and_skips_rolled_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plan's default backup dir is <root>/<index>-<12 hex of its digest>; once its
    journal was rolled back, the next one (-2) is used, so the journal is kept."""
    monkeypatch.setenv("FTCTL_BACKUP_DIR", str(tmp_path))
    plan = load_migration_plan(str(GUIDE_PLAN))
    first = default_backup_dir(plan)
    assert first == tmp_path / f"myindex-{plan_digest(plan)[:12]}"

    def run(kind: str) -> RunStarted:
        return RunStarted(
            run_id=kind, kind=kind, index_name="myindex", plan_yaml="",  # type: ignore[arg-type]
            plan_sha256=plan_digest(plan), mode="drop_recreate",
        )  # fmt: skip

    with Journal.create(first / "myindex", first=run("apply")) as journal:
        journal.append([RunFinished(result="succeeded")])
    assert default_backup_dir(plan) == first
    with Journal.open(first / "myindex") as journal:
        journal.append([run("rollback"), StepStarted(step="restore_vectors")])
    assert default_backup_dir(plan) == tmp_path / f"{first.name}-2"


def test_schemas_equal_takes_redisvl_dicts() -> None:
    """schemas_equal compares ftctl schemas and RedisVL schema dicts by name and by what
    FT.INFO reports."""
    plan = load_migration_plan(str(GUIDE_PLAN))
    target = plan.merged_target_schema
    as_dict = schema_to_builtins(target)
    assert schemas_equal(as_dict, target) and schemas_equal(target, as_dict)
    assert not schemas_equal(plan.source.schema_snapshot, target)
    renamed = {**as_dict, "index": {**as_dict["index"], "name": "other"}}
    assert not schemas_equal(renamed, target)


def test_redisvl_checkpoint_is_told_from_ftctls(tmp_path: Path) -> None:
    """A RedisVL batch_state.yaml (completed/remaining, no journal) is read as a
    checkpoint to take over; ftctl's own state file and a missing file are not."""
    theirs = tmp_path / "theirs.yaml"
    theirs.write_text(
        "batch_id: b1\nplan_path: /p.yaml\nstarted_at: x\nupdated_at: y\n"
        "completed:\n  - name: a\n    status: success\n    completed_at: z\n"
        "remaining: [b, c]\ncurrent_index: null\n"
    )
    checkpoint = redisvl_checkpoint(theirs)
    assert isinstance(checkpoint, RedisVLCheckpoint)
    assert checkpoint.remaining == ["b", "c"] and checkpoint.completed[0].name == "a"
    ours = tmp_path / "ours.yaml"
    ours.write_text("batch_id: b1\njournal: /j\nremaining: []\n")
    assert redisvl_checkpoint(ours) is None
    assert redisvl_checkpoint(tmp_path / "missing.yaml") is None


def test_plan_schemas_and_stats_read_like_redisvl_dicts() -> None:
    """A plan's schemas and stats answer RedisVL's dict reads: merged_target_schema["index"]
    ["name"], schema_snapshot.to_dict(), stats_snapshot.get("num_docs") / ["num_docs"]."""
    plan = load_migration_plan(str(GUIDE_PLAN))
    assert plan.merged_target_schema["index"]["name"] == "myindex"
    assert plan.merged_target_schema.get("missing", "x") == "x"
    assert [f["name"] for f in plan.source.schema_snapshot.to_dict()["fields"]] == [
        "title",
        "embedding",
    ]
    stats = plan.source.stats_snapshot
    assert stats.get("num_docs", 0) == stats["num_docs"] == 10000
    assert stats.get("hash_indexing_failures", 0) == 0 and stats.get("nope") is None
    with pytest.raises(KeyError):
        stats["nope"]
