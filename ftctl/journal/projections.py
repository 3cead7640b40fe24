"""Pure folds of journal events into state; nothing here reads a file or stores a result.

:func:`project_run` is the state ``resume`` needs: which steps and batches are done, where
the enumerated keys are, what was checked, how the run ended. Reports and ``journal
inspect`` derive their own projections from the same events.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import assert_never

from ftctl.journal.batch import BATCH_EVENT_TYPES
from ftctl.journal.events import (
    AnyEvent,
    BatchDone,
    CheckFailed,
    CheckPassed,
    ConflictRecorded,
    Interrupted,
    KeysEnumerated,
    Note,
    RunFinished,
    RunStarted,
    SegmentRef,
    StepFinished,
    StepSkipped,
    StepStarted,
)
from ftctl.journal.online import CutoverApproved, CutoverDone, ShadowCreated, ShadowReady


@dataclass(frozen=True, slots=True)
class StepTiming:
    """First and last timestamps of a step's events (its wall-clock span)."""

    first: datetime | None
    last: datetime | None


VALIDATION_STARTS = ("wait", "validate_source")
"""Steps that begin a run's validation: an apply's ``wait`` checks the documents while the
index builds and ``validate`` adds the index's checks; a rollback validates in one step."""


@dataclass(frozen=True, slots=True)
class FailedCheck:
    """A failed check as recorded."""

    check: str
    detail: str
    count: int


@dataclass(slots=True)
class RunState:
    """What the journal says about the run(s) it records.

    A journal may hold several runs (an ``apply`` resumed, then a ``rollback``): ``run_id``,
    ``kind`` and ``result`` describe the latest, while the plan fields come from the first
    ``run_started`` (a journal belongs to one plan). Steps and batches accumulate across runs
    because a resumed run continues the same work.
    """

    run_id: str | None = None
    kind: str | None = None
    runs: list[str] = field(default_factory=list)
    """``kind`` of each ``run_started``, in order."""
    index_name: str | None = None
    plan_sha256: str | None = None
    mode: str | None = None
    steps_started: list[str] = field(default_factory=list)
    steps_finished: list[str] = field(default_factory=list)
    steps_skipped: dict[str, str] = field(default_factory=dict)
    """Step → reason, in the order skipped."""
    step_counts: dict[str, dict[str, int]] = field(default_factory=dict)
    """Totals reported by ``step_finished``."""
    batches_done: dict[str, set[int]] = field(default_factory=dict)
    batch_segments: dict[str, dict[int, SegmentRef]] = field(default_factory=dict)
    """Step → batch → the segment its ``batch_done`` wrote (backup segments)."""
    key_segments: list[SegmentRef] = field(default_factory=list)
    """Key-enumeration segments, in batch order."""
    keys_enumerated: int = 0
    conflicts: int = 0
    conflicts_by_step: dict[str, int] = field(default_factory=dict)
    checks_passed: list[str] = field(default_factory=list)
    checks_failed: list[FailedCheck] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    interrupted_at: tuple[str, int | None] | None = None
    """Where the latest run was interrupted, if it was and did not go on afterwards."""
    result: str | None = None
    error: str = ""
    started_at: datetime | None = None
    finished_at: datetime | None = None
    step_times: dict[str, StepTiming] = field(default_factory=dict)
    last_seq: int = 0

    @property
    def finished(self) -> bool:
        """Whether the latest run recorded its end."""
        return self.result is not None

    def step_done(self, step: str) -> bool:
        """Whether ``step`` finished or was skipped (a resumed run does not run it again)."""
        return step in self.steps_finished or step in self.steps_skipped

    def batch_done(self, step: str, batch: int) -> bool:
        """Whether batch ``batch`` of ``step`` is recorded as done."""
        return batch in self.batches_done.get(step, ())


def _touch(state: RunState, step: str, at: datetime | None) -> None:
    timing = state.step_times.get(step)
    first = timing.first if timing is not None and timing.first is not None else at
    state.step_times[step] = StepTiming(first=first, last=at)


def _step_of(event: AnyEvent) -> str | None:
    match event:
        case (
            StepStarted(step=step)
            | StepFinished(step=step)
            | StepSkipped(step=step)
            | BatchDone(step=step)
            | ConflictRecorded(step=step)
            | Interrupted(step=step)
            | ShadowCreated(step=step)
            | ShadowReady(step=step)
            | CutoverApproved(step=step)
            | CutoverDone(step=step)
        ):
            return step
        case KeysEnumerated():
            return "enumerate"
        case RunStarted() | CheckPassed() | CheckFailed() | Note() | RunFinished():
            return None
        case _ if isinstance(event, BATCH_EVENT_TYPES):
            return None  # batch journals only; see ftctl.journal.batch
        case _:
            assert_never(event)


def project_run(events: Iterable[AnyEvent]) -> RunState:
    """Fold ``events`` (in journal order) into a :class:`RunState`."""
    state = RunState()
    keys_by_batch: dict[int, SegmentRef] = {}
    for event in events:
        state.last_seq = event.seq
        step = _step_of(event)
        if step is not None:
            _touch(state, step, event.at)
        if not isinstance(event, RunStarted | RunFinished | Interrupted):
            state.interrupted_at = None
        match event:
            case RunStarted():
                if state.plan_sha256 is None:
                    state.plan_sha256 = event.plan_sha256
                    state.index_name = event.index_name
                    state.mode = event.mode
                    state.started_at = event.at
                state.run_id = event.run_id
                state.kind = event.kind
                state.runs.append(event.kind)
                state.result = None
                state.error = ""
                state.finished_at = None
            case StepStarted():
                if event.step == "enumerate" and "enumerate" not in state.steps_finished:
                    # An unfinished enumeration cannot resume its cursor: it starts over.
                    keys_by_batch.clear()
                    state.keys_enumerated = 0
                if event.step in VALIDATION_STARTS:
                    state.checks_passed = []
                    state.checks_failed = []
                if event.step not in state.steps_started:
                    state.steps_started.append(event.step)
            case StepFinished():
                if event.step not in state.steps_finished:
                    state.steps_finished.append(event.step)
                state.step_counts[event.step] = dict(event.counts)
            case StepSkipped():
                state.steps_skipped[event.step] = event.reason
            case BatchDone():
                state.batches_done.setdefault(event.step, set()).add(event.batch)
                if event.segment is not None:
                    state.batch_segments.setdefault(event.step, {})[event.batch] = event.segment
            case KeysEnumerated():
                if event.batch not in keys_by_batch:
                    state.keys_enumerated += event.keys
                keys_by_batch[event.batch] = event.segment
            case CheckPassed():
                # The latest result of each check counts (a resumed validation redoes some).
                state.checks_failed = [f for f in state.checks_failed if f.check != event.check]
                if event.check not in state.checks_passed:
                    state.checks_passed.append(event.check)
            case CheckFailed():
                state.checks_failed = [f for f in state.checks_failed if f.check != event.check]
                state.checks_failed.append(FailedCheck(event.check, event.detail, event.count))
                if event.check in state.checks_passed:
                    state.checks_passed.remove(event.check)
            case ConflictRecorded():
                state.conflicts += len(event.keys)
                by_step = state.conflicts_by_step
                by_step[event.step] = by_step.get(event.step, 0) + len(event.keys)
            case Note():
                state.notes.append(event.message)
            case Interrupted():
                state.interrupted_at = (event.step, event.batch)
            case ShadowCreated() | ShadowReady() | CutoverApproved() | CutoverDone():
                pass  # online mode; see ftctl.journal.online and ftctl.journal.report
            case RunFinished():
                state.result = event.result
                state.error = event.error
                state.finished_at = event.at
            case _ if isinstance(event, BATCH_EVENT_TYPES):
                pass  # batch journals only; see ftctl.journal.batch
            case _:
                assert_never(event)
    state.key_segments = [keys_by_batch[batch] for batch in sorted(keys_by_batch)]
    return state


def run_events(events: Iterable[AnyEvent], kind: str) -> list[AnyEvent]:
    """The events of every run of ``kind`` (``apply`` or ``rollback``), in order.

    A resumed run continues the work of the earlier runs of its kind, so their events fold
    together; runs of the other kind are left out.
    """
    out: list[AnyEvent] = []
    current: str | None = None
    for event in events:
        if isinstance(event, RunStarted):
            current = event.kind
        if current == kind:
            out.append(event)
    return out
