"""project_run: the state resume needs, folded from events alone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec

from ftctl.journal import (
    AnyEvent,
    BatchDone,
    CheckFailed,
    CheckPassed,
    ConflictRecorded,
    KeysEnumerated,
    Note,
    RunFinished,
    RunInterrupted,
    RunStarted,
    SegmentRef,
    StepFinished,
    StepSkipped,
    StepStarted,
    project_run,
)
from ftctl.steps.tables import marks_for

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def _ref(n: int) -> SegmentRef:
    return SegmentRef(number=n, size=10 * n, crc32=n)


def _run(kind: str = "apply", run_id: str = "r1", sha: str = "sha-1") -> RunStarted:
    return RunStarted(
        run_id=run_id,
        kind=kind,
        index_name="idx",
        plan_yaml="p",
        plan_sha256=sha,
        mode="drop_recreate",
    )


def _stamp(events: list[AnyEvent]) -> list[AnyEvent]:
    return [
        msgspec.structs.replace(e, seq=i, at=T0 + timedelta(seconds=i))
        for i, e in enumerate(events, start=1)
    ]


def test_empty_journal_projects_to_nothing_done() -> None:
    """No events: no plan, nothing done, not finished."""
    state = project_run([])
    assert state.plan_sha256 is None and not state.finished
    assert not state.step_done("enumerate") and not state.batch_done("backup", 0)


def test_full_run_is_folded() -> None:
    """Steps, batches, key segments, checks, conflicts, result and times all come through."""
    events = _stamp(
        [
            _run(),
            StepStarted(step="enumerate"),
            KeysEnumerated(segment=_ref(2), batch=1, keys=5),
            KeysEnumerated(segment=_ref(1), batch=0, keys=10),
            StepFinished(step="enumerate", counts={"keys": 15}),
            StepSkipped(step="rename_keys", reason="no prefix change"),
            StepStarted(step="backup"),
            BatchDone(step="backup", batch=0, keys=10, segment=_ref(3)),
            BatchDone(step="backup", batch=1, keys=5, segment=_ref(4)),
            StepFinished(step="backup"),
            ConflictRecorded(step="quantize", keys=[b"a", b"b"], reason="changed after backup"),
            CheckPassed(check="schema"),
            CheckFailed(check="doc_count", detail="14 != 15", count=1),
            Note(message="aof disabled"),
            RunFinished(result="failed", error="doc_count"),
        ]
    )
    state = project_run(events)
    assert (state.run_id, state.kind, state.plan_sha256, state.index_name) == (
        "r1",
        "apply",
        "sha-1",
        "idx",
    )
    assert state.steps_started == ["enumerate", "backup"]
    assert state.steps_finished == ["enumerate", "backup"]
    assert state.steps_skipped == {"rename_keys": "no prefix change"}
    assert (
        state.step_done("rename_keys") and state.step_done("backup") and not state.step_done("drop")
    )
    assert state.step_counts["enumerate"] == {"keys": 15}
    assert state.batches_done == {"backup": {0, 1}}
    assert state.batch_segments["backup"] == {0: _ref(3), 1: _ref(4)}
    assert state.key_segments == [_ref(1), _ref(2)]  # batch order, not append order
    assert state.keys_enumerated == 15
    assert state.conflicts == 2
    assert state.checks_passed == ["schema"]
    assert [(c.check, c.count) for c in state.checks_failed] == [("doc_count", 1)]
    assert state.notes == ["aof disabled"]
    assert state.finished and state.result == "failed" and state.error == "doc_count"
    assert state.started_at == T0 + timedelta(seconds=1)
    assert state.finished_at == T0 + timedelta(seconds=15)
    assert state.step_times["enumerate"].first == T0 + timedelta(seconds=2)
    assert state.step_times["enumerate"].last == T0 + timedelta(seconds=5)
    assert state.step_times["backup"].last == T0 + timedelta(seconds=10)
    assert state.last_seq == 15


def test_redone_batches_are_counted_once() -> None:
    """A batch recorded twice (redone after a crash) is one batch and its keys count once."""
    events = _stamp(
        [
            _run(),
            KeysEnumerated(segment=_ref(1), batch=0, keys=10),
            KeysEnumerated(segment=_ref(2), batch=0, keys=10),
            BatchDone(step="backup", batch=0, keys=10),
            BatchDone(step="backup", batch=0, keys=10),
        ]
    )
    state = project_run(events)
    assert state.keys_enumerated == 10
    assert state.key_segments == [_ref(2)]  # the later segment of a redone batch wins
    assert state.batches_done == {"backup": {0}}


def test_interrupted_then_resumed() -> None:
    """An interruption is visible until the resumed run continues; work done is kept."""
    before: list[AnyEvent] = [
        _run(),
        StepStarted(step="backup"),
        BatchDone(step="backup", batch=0, keys=1),
        RunInterrupted(step="backup", batch=1),
    ]
    state = project_run(_stamp(list(before)))
    assert state.interrupted_at == ("backup", 1) and not state.finished
    resumed: list[AnyEvent] = [
        *before,
        _run(run_id="r2"),
        StepStarted(step="backup"),
        BatchDone(step="backup", batch=1, keys=1),
    ]
    state = project_run(_stamp(resumed))
    assert state.interrupted_at is None
    assert state.run_id == "r2" and state.runs == ["apply", "apply"]
    assert state.batches_done == {"backup": {0, 1}}
    assert state.steps_started == ["backup"]


def test_later_run_keeps_plan_of_first_and_resets_result() -> None:
    """A rollback run after a finished apply: plan from the first run, result of the latest."""
    events = _stamp(
        [
            _run(sha="sha-plan"),
            RunFinished(result="failed", error="boom"),
            _run(kind="rollback", run_id="rb", sha="other"),
        ]
    )
    state = project_run(events)
    assert state.plan_sha256 == "sha-plan"
    assert state.kind == "rollback" and state.runs == ["apply", "rollback"]
    assert not state.finished and state.error == ""


def test_checks_made_while_the_index_builds_count_with_validate() -> None:
    """An apply's validation starts at ``wait`` (document checks) and goes on in
    ``validate``: a document check failed in ``wait`` still fails the run after validate
    passes its own checks, and a resumed validate does not erase it."""
    events = _stamp(
        [
            _run(),
            StepStarted(step="preflight"),
            CheckFailed(check="preflight", detail="an earlier attempt", count=1),
            CheckPassed(check="preflight", detail="ok"),
            StepFinished(step="preflight"),
            StepStarted(step="wait"),
            CheckFailed(check="keys_exist", detail="1 missing", count=1),
            CheckPassed(check="vector_bytes", detail="ok"),
            StepFinished(step="wait"),
            StepStarted(step="validate"),
            CheckPassed(check="doc_count", detail="ok"),
            _run(run_id="r2"),
            StepStarted(step="validate"),
            CheckPassed(check="doc_count", detail="ok"),
            StepFinished(step="validate"),
        ]
    )
    state = project_run(events, marks_for("drop_recreate", "apply"))
    assert [f.check for f in state.checks_failed] == ["keys_exist"]
    assert state.checks_passed == ["vector_bytes", "doc_count"]


def test_the_latest_result_of_a_check_counts() -> None:
    """Within one validation a check redone after a crash replaces its earlier result."""
    events = _stamp(
        [
            _run(),
            StepStarted(step="validate"),
            CheckFailed(check="knn_self", detail="1 miss", count=1),
            _run(run_id="r2"),
            StepStarted(step="validate"),
            CheckPassed(check="knn_self", detail="ok"),
            StepFinished(step="validate"),
        ]
    )
    state = project_run(events, marks_for("drop_recreate", "apply"))
    assert state.checks_failed == [] and state.checks_passed == ["knn_self"]
