"""Journals written by an earlier release still inspect, resume and roll back.

The fixtures in ``fixtures/journals/`` were recorded by ``fixtures/journals/record.py`` with
ftctl 0.1.0 (commit 874c362): each is a backup dir as that release wrote it plus the Redis
state before the migration (``original.json``) and when the journal was copied
(``after.json``). A test restores a state into the session's server, runs today's code on a
private copy of the journal, and compares Redis with the recorded states (see
``tests/oldjournals.py``).

Paths recorded inside the journals (a batch's backup dir and plan files, its state and report
paths) point into a temporary directory that no longer exists; nothing here may need them.
That is why the batch is only read (status) and rolled back index by index here:
``batch-resume`` refuses a batch whose backup dir moved, by design.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import redis
from click.testing import CliRunner
from oldjournals import (
    FIXTURES,
    copy_fixture,
    index_view,
    read_state,
    resolve,
    restore_state,
    snapshot,
)

from ftctl.batch import batch_status
from ftctl.cli import cli
from ftctl.executor import MigrationExecutor, rollback

pytestmark = pytest.mark.integration

SCENARIOS = ("interrupted_apply", "succeeded_apply", "online_cutover", "batch")
DROP_RECREATE_STEPS = ("enumerate", "backup", "preflight", "drop", "rename_fields",
                       "rename_keys", "quantize", "create", "wait", "validate")  # fmt: skip
APPLY_BATCH_SIZE = 10
"""The batch size the apply scenarios were recorded with (segments of 40 keys)."""


def _meta(scenario: str) -> dict[str, Any]:
    meta: dict[str, Any] = json.loads((FIXTURES / scenario / "scenario.json").read_text())
    return meta


def _restore(r: redis.Redis, scenario: str, which: str) -> dict[str, Any]:
    """Restore ``<scenario>/<which>.json`` and return the :func:`snapshot` of it."""
    restore_state(r, read_state(FIXTURES / scenario / f"{which}.json"))
    return snapshot(r)


def _rows(text: str) -> list[dict[str, Any]]:
    """``journal inspect --json`` lines without their free-text ``detail``."""
    rows = []
    for line in text.splitlines():
        row = json.loads(line)
        rows.append(
            {k: row.get(k) for k in ("seq", "at", "event", "step", "batch", "keys", "counts")}
        )
    return rows


def _inspect(backup: Path, *extra: str) -> Any:
    return CliRunner().invoke(cli, ["migrate", "journal", "inspect", "--backup-dir", str(backup), *extra])  # fmt: skip


def _events(rows: list[dict[str, Any]]) -> list[tuple[str, str | None, int | None]]:
    return [(row["event"], row["step"], row["batch"]) for row in rows]


# --- inspect --------------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_inspect_shows_the_recorded_timeline(scenario: str, tmp_path: Path) -> None:
    """`ftctl migrate journal inspect` reads every journal of an old backup dir (exit 0, text
    and --json) and shows the timeline that release showed: same events in the same order,
    with their sequence numbers, times, steps, batches, key counts and counters."""
    backup = copy_fixture(scenario, tmp_path)

    as_json = _inspect(backup, "--json")
    text = _inspect(backup)

    assert as_json.exit_code == 0, as_json.output
    assert text.exit_code == 0, text.output
    rows = _rows(as_json.stdout)
    assert rows == _rows((FIXTURES / scenario / "inspect.jsonl").read_text())
    journals = sorted(p.parent for p in backup.glob("*/journal.log"))
    assert [line for line in text.stdout.splitlines() if line.startswith("== ")] == [
        f"== {p}" for p in journals
    ]
    events = _events(rows)
    if scenario == "interrupted_apply":
        assert ("batch_done", "quantize", 0) in events
        assert ("batch_done", "quantize", 1) not in events
        assert events[-1] == ("batch_done", "quantize", 0)
        assert not any(e[0] == "run_finished" for e in events)
    elif scenario == "succeeded_apply":
        finished = [step for event, step, _ in events if event == "step_finished"]
        assert finished == list(DROP_RECREATE_STEPS)
        assert events[-1][0] == "run_finished"
    elif scenario == "online_cutover":
        tags = [event for event, _, _ in events]
        for tag in ("shadow_created", "shadow_ready", "cutover_done", "run_finished"):
            assert tag in tags
        assert ("step_skipped", "await_cutover", None) in events
    else:
        tags = [event for event, _, _ in events]
        assert tags.count("batch_started") == 1
        assert tags.count("batch_index_started") == tags.count("batch_index_finished") == 2
        assert tags.count("run_finished") == 3  # two index journals and the batch's own


# --- drop_recreate --------------------------------------------------------------------------


def test_interrupted_apply_resumes_to_the_clean_state_and_rolls_back(
    r: redis.Redis, tmp_path: Path
) -> None:
    """An apply SIGKILLed mid-quantize by the old release resumes from its journal alone to
    exactly the state a clean run of the same plan reached (keys, field bytes, key and field
    expiries, index); the old records stay untouched at the head of the journal; rollback
    then restores the original byte for byte."""
    original = _restore(r, "interrupted_apply", "original")
    clean = _restore(r, "succeeded_apply", "after")
    _restore(r, "interrupted_apply", "after")
    backup = copy_fixture("interrupted_apply", tmp_path)
    recorded = (backup / "docs" / "journal.log").read_bytes()

    report = MigrationExecutor().resume(backup, client=r, batch_size=APPLY_BATCH_SIZE)

    assert report.result == "succeeded", (report.error, report.validation.checks)
    assert snapshot(r) == clean
    assert (backup / "docs" / "journal.log").read_bytes().startswith(recorded)

    undone = rollback(backup, client=r, batch_size=APPLY_BATCH_SIZE)

    assert undone.result == "rolled_back", (undone.error, undone.validation.checks)
    assert snapshot(r) == original


def test_interrupted_apply_resumes_when_apply_is_rerun_with_its_plan(
    r: redis.Redis, tmp_path: Path
) -> None:
    """Re-running `apply` with the plan file the old release was given continues its journal
    (the recorded plan digest still matches the plan) instead of refusing the backup dir."""
    clean = _restore(r, "succeeded_apply", "after")
    _restore(r, "interrupted_apply", "after")
    backup = copy_fixture("interrupted_apply", tmp_path)

    report = MigrationExecutor().apply(
        FIXTURES / "interrupted_apply" / "plan.yaml",
        client=r,
        backup_dir=backup,
        batch_size=APPLY_BATCH_SIZE,
        accept_data_loss=True,
    )

    assert report.result == "succeeded", (report.error, report.validation.checks)
    assert snapshot(r) == clean


def test_interrupted_apply_rolls_back_without_resuming(r: redis.Redis, tmp_path: Path) -> None:
    """Rolling back the interrupted old journal directly (index dropped, keys and fields
    renamed, quantize half done) restores the original byte for byte and its index."""
    original = _restore(r, "interrupted_apply", "original")
    _restore(r, "interrupted_apply", "after")
    backup = copy_fixture("interrupted_apply", tmp_path)

    undone = rollback(backup, client=r, batch_size=APPLY_BATCH_SIZE)

    assert undone.result == "rolled_back", (undone.error, undone.validation.checks)
    assert snapshot(r) == original


def test_succeeded_apply_resume_is_a_no_op(r: redis.Redis, tmp_path: Path) -> None:
    """Resuming a journal the old release finished reports success and changes nothing."""
    _restore(r, "succeeded_apply", "after")
    after = snapshot(r, history=True)
    backup = copy_fixture("succeeded_apply", tmp_path)

    report = MigrationExecutor().resume(backup, client=r)

    assert report.result == "succeeded", report.error
    assert snapshot(r, history=True) == after


def test_succeeded_apply_rolls_back_to_the_original(r: redis.Redis, tmp_path: Path) -> None:
    """A migration the old release completed rolls back from its journal: vectors restored
    from its segments, keys and fields renamed back, source index recreated — Redis equals
    the original byte for byte (keys, values, key and field expiries, index)."""
    original = _restore(r, "succeeded_apply", "original")
    _restore(r, "succeeded_apply", "after")
    backup = copy_fixture("succeeded_apply", tmp_path)

    undone = rollback(backup, client=r, batch_size=APPLY_BATCH_SIZE)

    assert undone.result == "rolled_back", (undone.error, undone.validation.checks)
    assert snapshot(r) == original


# --- online ---------------------------------------------------------------------------------


def test_online_cutover_rolls_back_online(r: redis.Redis, tmp_path: Path) -> None:
    """An online shadow migration the old release cut over rolls back by cutting back: the
    name and its alias answer FT.INFO with the original schema and documents, no other index
    is left, and no document changed."""
    meta = _meta("online_cutover")
    original = _restore(r, "online_cutover", "original")
    source = index_view(r, "docs")
    _restore(r, "online_cutover", "after")
    assert resolve(r, "docs") == resolve(r, "docs_live") == meta["shadow"]
    assert index_view(r, "docs") != source
    backup = copy_fixture("online_cutover", tmp_path)

    undone = rollback(backup, client=r)

    assert undone.result == "rolled_back", (undone.error, undone.validation.checks)
    assert index_view(r, "docs") == source
    serving = resolve(r, "docs")
    assert serving is not None and resolve(r, "docs_live") == serving
    assert r.execute_command("FT._LIST") == [serving.encode()]
    assert snapshot(r)["keys"] == original["keys"]


# --- batch ----------------------------------------------------------------------------------


def test_batch_status_projects_the_recorded_statuses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`ftctl migrate batch-status --backup-dir` (text and --json) and batch_status() read the
    old batch journal: completed, both indexes succeeded, the index without the field skipped."""
    meta = _meta("batch")
    backup = copy_fixture("batch", tmp_path)
    monkeypatch.chdir(tmp_path)  # no stray ./batch_state.yaml is read

    text = CliRunner().invoke(cli, ["migrate", "batch-status", "--backup-dir", str(backup)])
    as_json = CliRunner().invoke(
        cli, ["migrate", "batch-status", "--backup-dir", str(backup), "--json"]
    )

    assert text.exit_code == 0, text.output
    assert as_json.exit_code == 0, as_json.output
    batch_id = meta["batch_journal"].removeprefix("batch-")
    for line in (f"Batch ID: {batch_id}", "Status: completed", "Completed: 2",
                 "Remaining: 0", "Skipped: 1", "Failed: 0"):  # fmt: skip
        assert line in text.stdout.splitlines(), text.stdout
    for name in meta["indexes"]:
        assert any(line.startswith(f"  - {name}: success") for line in text.stdout.splitlines())
    shown = json.loads(as_json.stdout)
    assert (shown["batch_id"], shown["status"]) == (batch_id, "completed")
    state = batch_status(backup_dir=backup)
    assert (state.batch_id, state.status) == (batch_id, "completed")
    assert [(c.name, c.status, c.attempts) for c in state.completed] == [
        (name, "success", 1) for name in meta["indexes"]
    ]
    assert [s.name for s in state.skipped] == meta["skipped"]
    assert state.journal == str(backup / meta["batch_journal"])


def test_batch_index_rolls_back_from_the_batch_backup_dir(r: redis.Redis, tmp_path: Path) -> None:
    """One index of the old batch rolls back from the batch's backup dir (`--index`): its keys
    and index equal the original byte for byte; the other index stays migrated."""
    original = _restore(r, "batch", "original")
    after = _restore(r, "batch", "after")
    backup = copy_fixture("batch", tmp_path)

    undone = rollback(backup, index="b_idx", client=r)

    assert undone.result == "rolled_back", (undone.error, undone.validation.checks)
    now = snapshot(r)

    def part(state: dict[str, Any], prefix: bytes) -> dict[bytes, Any]:
        return {k: v for k, v in state["keys"].items() if k.startswith(prefix)}

    assert part(now, b"b:") == part(original, b"b:") and part(now, b"b:") != part(after, b"b:")
    assert part(now, b"a:") == part(after, b"a:") and part(now, b"a:") != part(original, b"a:")
    assert part(now, b"c:") == part(original, b"c:")
    assert now["indexes"] == {**after["indexes"], "b_idx": original["indexes"]["b_idx"]}
