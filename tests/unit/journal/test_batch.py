"""Batch projections: state, status and report are pure folds of the batch journal's events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec

from ftctl.cli.render import batch_status_lines
from ftctl.journal.batch import (
    BatchIndexEntry,
    BatchIndexFinished,
    BatchIndexInterrupted,
    BatchIndexStarted,
    BatchStarted,
    InterruptedIndex,
    project_batch,
    project_batch_report,
    project_batch_state,
)
from ftctl.journal.events import AnyEvent, RunFinished, RunStarted, decode_event, encode_event
from ftctl.journal.projections import project_run

T0 = datetime(2026, 3, 20, 10, 0, 0, tzinfo=UTC)


def _stamp(events: list[AnyEvent]) -> list[AnyEvent]:
    return [
        msgspec.structs.replace(e, seq=i, at=T0 + timedelta(seconds=10 * i))
        for i, e in enumerate(events, start=1)
    ]


def _run(**options: str | bool) -> RunStarted:
    return RunStarted(
        run_id="r", kind="batch", index_name="batch_1", plan_yaml="version: 1\n",
        plan_sha256="ff", mode="drop_recreate", options=dict(options),
    )  # fmt: skip


STARTED = BatchStarted(
    batch_id="batch_1",
    plan_path="/p/batch_plan.yaml",
    backup_dir="/b",
    failure_policy="fail_fast",
    indexes=[
        BatchIndexEntry(name="a", applicable=True, plan_path="/p/plans/a.yaml", plan_sha256="1"),
        BatchIndexEntry(name="b", applicable=True, plan_path="/p/plans/b.yaml", plan_sha256="2"),
        BatchIndexEntry(name="c", applicable=True, plan_path="/p/plans/c.yaml", plan_sha256="3"),
        BatchIndexEntry(name="d", applicable=False, skip_reason="field not found"),
    ],
)


def _start(name: str, position: int, retry: bool = False) -> BatchIndexStarted:
    return BatchIndexStarted(
        name=name, position=position, total=3, journal=f"/b/{name}", plan_sha256="x", retry=retry
    )


def test_a_killed_run_leaves_its_index_in_progress_and_the_rest_remaining() -> None:
    """After a SIGKILL (no event after batch_index_started) the index shows as in progress,
    later ones as remaining, the skipped one with its reason; the batch is in_progress."""
    events = _stamp(
        [
            _run(),
            STARTED,
            _start("a", 1),
            BatchIndexFinished(name="a", status="success", result="succeeded"),
            _start("b", 2),
        ]
    )
    state = project_batch_state(events, journal="/b/batch-batch_1")
    assert state.status == "in_progress"
    assert [c.name for c in state.completed] == ["a"]
    assert state.completed[0].completed_at == "2026-03-20T10:00:40Z"
    assert state.completed[0].duration_seconds == 10.0
    assert state.current_index == "b"
    assert state.remaining == ["c"]
    assert [(s.name, s.skip_reason) for s in state.skipped] == [("d", "field not found")]
    assert state.updated_at == "2026-03-20T10:00:50Z"


def test_a_new_run_turns_the_dead_in_progress_index_into_remaining() -> None:
    """A resume's run_started marks the index the dead run held as interrupted (remaining),
    so it is run again; the options of the latest run are the ones the files render to."""
    events = _stamp([_run(), STARTED, _start("a", 1), _run(state_path="/s2.yaml")])
    progress = project_batch(events)
    assert progress.indexes["a"].status == "interrupted"
    assert progress.current is None
    assert progress.options == {"state_path": "/s2.yaml"}
    state = project_batch_state(events)
    assert state.remaining == ["a", "b", "c"]
    assert state.interrupted == [InterruptedIndex(name="a")]
    lines = batch_status_lines(state)
    assert "In Progress: -" in lines and "Interrupted: 1 (batch-resume continues each)" in lines
    assert "  - a: stopped before its migration ended" in lines


def test_fail_fast_stop_is_a_partial_failure_and_retry_resets_the_error() -> None:
    """A finished run with a failed and a succeeded index is partial_failure (c not run);
    retrying b clears its error, counts the attempt, and success makes the batch completed."""
    head = [
        _run(),
        STARTED,
        _start("a", 1),
        BatchIndexFinished(name="a", status="success", result="succeeded"),
        _start("b", 2),
        BatchIndexFinished(name="b", status="failed", result="refused", error="schema mismatch"),
        RunFinished(result="stopped"),
    ]
    report = project_batch_report(_stamp(list(head)))
    assert report.status == "partial_failure"
    assert (report.summary.successful, report.summary.failed) == (1, 1)
    assert (report.summary.skipped, report.summary.remaining) == (1, 1)
    assert [i.error for i in report.indexes if i.name == "b"] == ["schema mismatch"]
    assert report.completed_at == "2026-03-20T10:01:10Z"

    retried = _stamp(
        [
            *head,
            _run(retry_failed=True),
            _start("b", 2, retry=True),
            BatchIndexFinished(name="b", status="success", result="succeeded"),
            _start("c", 3),
            BatchIndexFinished(name="c", status="success", result="succeeded"),
            RunFinished(result="completed"),
        ]
    )
    state = project_batch_state(retried)
    assert state.status == "completed"
    (b,) = [c for c in state.completed if c.name == "b"]
    assert b.error is None and b.attempts == 2
    assert (
        project_batch_report(retried).summary.total_duration_seconds == 120.0
    )  # 13 events, 10 s apart


def test_ctrl_c_interrupt_is_remaining_not_failed() -> None:
    """An index stopped by Ctrl+C at a batch boundary is remaining; the batch is in progress."""
    events = _stamp(
        [_run(), STARTED, _start("a", 1), BatchIndexInterrupted(name="a"), RunFinished(result="x")]
    )
    state = project_batch_state(events)
    assert state.status == "in_progress"
    assert state.remaining == ["a", "b", "c"] and state.completed == []
    assert [i.name for i in state.interrupted] == ["a"]


def test_rendering_is_deterministic_and_events_round_trip() -> None:
    """The same events give the same YAML bytes; batch events survive msgpack encoding, and
    the run projection ignores them."""
    events = _stamp([_run(), STARTED, _start("a", 1)])
    again = [decode_event(encode_event(e)) for e in events]
    assert again == events
    first = msgspec.yaml.encode(project_batch_state(events, journal="/j"))
    assert msgspec.yaml.encode(project_batch_state(again, journal="/j")) == first
    assert msgspec.yaml.encode(project_batch_report(again)) == msgspec.yaml.encode(
        project_batch_report(events)
    )
    assert project_run(events).steps_started == []
