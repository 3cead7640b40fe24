"""Pure folds of journal events into state; nothing here reads a file or stores a result.

:class:`RunState` is the state ``resume`` needs: which steps and batches are done, where the
enumerated keys are, what was checked, how the run ended. It folds events one at a time
(:meth:`RunState.fold`), so a runner keeps it current by folding each event it appends;
:func:`project_run` folds a whole journal. Reports and ``journal inspect`` derive their own
projections from the same events.

What a step *means* (inside the downtime window, part of validation) is not known here: it
comes from the step tables (:mod:`ftctl.steps.tables`) as :class:`StepMarks`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import assert_never

from ftctl.journal.events import (
    AnyEvent,
    BatchDone,
    BatchIndexFinished,
    BatchIndexInterrupted,
    BatchIndexStarted,
    BatchRunStarted,
    BatchStarted,
    CheckFailed,
    CheckPassed,
    ConflictRecorded,
    CutoverApproved,
    CutoverDone,
    EnumerationRestarted,
    KeysEnumerated,
    KeysGone,
    Mode,
    Note,
    PaceChanged,
    QueryBaseline,
    QueryCompared,
    RunFinished,
    RunInterrupted,
    RunKind,
    RunPaused,
    RunResult,
    RunResumed,
    RunStarted,
    SegmentRef,
    ServerChanged,
    ServerSeen,
    ShadowCreated,
    ShadowReady,
    StepFinished,
    StepName,
    StepSkipped,
    StepsReopened,
    StepStarted,
    VectorsRejected,
    step_of,
)


@dataclass(frozen=True, slots=True)
class StepMarks:
    """What the step tables say about steps, as the projections need it.

    ``downtime``: steps inside the window where the index does not answer (from the first
    such step's start to the last one's end). ``validation``: steps whose checks are the
    run's validation. ``validation_starts``: steps whose start begins a new validation (an
    earlier attempt's check results no longer count). ``redo_on_change``: see below.
    """

    downtime: frozenset[str] = frozenset()
    validation: frozenset[str] = frozenset()
    validation_starts: frozenset[str] = frozenset()
    downtime_closes: frozenset[str] = frozenset()
    """The last downtime step of each table: once it finished, the index answers again."""
    redo_on_change: frozenset[str] = frozenset()
    """Steps done again when the server changed under the journal (their writes may be
    lost); the others' results are in the journal itself."""


@dataclass(frozen=True, slots=True)
class StepTiming:
    """First and last timestamps of a step's events (its wall-clock span)."""

    first: datetime | None
    last: datetime | None


@dataclass(slots=True)
class Rejected:
    """Vectors a backup found it cannot convert, of one kind (see ``VectorsRejected``)."""

    count: int = 0
    sample: list[bytes] = field(default_factory=list)
    """A bounded sample of their keys."""
    fields: list[str] = field(default_factory=list)
    detail: str = ""


REJECTED_SAMPLE = 20


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

    marks: StepMarks = field(default_factory=StepMarks)
    run_id: str | None = None
    kind: RunKind | None = None
    runs: list[RunKind] = field(default_factory=list)
    """``kind`` of each ``run_started``, in order."""
    index_name: str | None = None
    plan_sha256: str | None = None
    mode: Mode | None = None
    steps_started: list[StepName] = field(default_factory=list)
    steps_finished: list[StepName] = field(default_factory=list)
    steps_skipped: dict[StepName, str] = field(default_factory=dict)
    """Step → reason, in the order skipped."""
    step_counts: dict[StepName, dict[str, int]] = field(default_factory=dict)
    """Totals reported by ``step_finished``."""
    batches_done: dict[StepName, set[int]] = field(default_factory=dict)
    batch_segments: dict[StepName, dict[int, SegmentRef]] = field(default_factory=dict)
    """Step → batch → the segment its ``batch_done`` wrote (backup segments)."""
    keys_by_batch: dict[int, SegmentRef] = field(default_factory=dict)
    keys_enumerated: int = 0
    conflicts: int = 0
    conflicts_by_step: dict[StepName, int] = field(default_factory=dict)
    gone_by_step: dict[StepName, int] = field(default_factory=dict)
    """Keys each step found gone (``keys_gone``), counted once per key and step."""
    checks_passed: list[str] = field(default_factory=list)
    checks_failed: list[FailedCheck] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    cutover_approved: bool = False
    query_baseline: QueryBaseline | None = None
    """The user's queries as the source answered them (the first baseline recorded: a
    resumed run compares against it, never against a baseline taken mid-migration)."""
    server_run_id: str | None = None
    """The server the journal last saw (``server_seen``)."""
    rejected: dict[str, Rejected] = field(default_factory=dict)
    """Kind (``wrong_length`` / ``unconvertible``) → vectors the backup cannot convert."""
    rejected_batches: set[tuple[str, str, int]] = field(default_factory=set)
    shadow_created_at: datetime | None = None
    """When the first shadow index of the run was created (online mode)."""
    shadow_ready_at: datetime | None = None
    """When the latest shadow finished its background scan."""
    paused: bool = False
    """The latest run is holding its writes at a pause flag (``run_paused`` without its
    ``run_resumed``)."""
    interrupted_at: tuple[StepName | None, int | None] | None = None
    """Where the latest run was interrupted, if it was and did not go on afterwards."""
    result: RunResult | None = None
    error: str = ""
    failed_step: str = ""
    started_at: datetime | None = None
    finished_at: datetime | None = None
    step_times: dict[StepName, StepTiming] = field(default_factory=dict)
    last_seq: int = 0

    @property
    def finished(self) -> bool:
        """Whether the latest run recorded its end."""
        return self.result is not None

    @property
    def key_segments(self) -> list[SegmentRef]:
        """Key-enumeration segments, in batch order."""
        return [self.keys_by_batch[batch] for batch in sorted(self.keys_by_batch)]

    def step_done(self, step: StepName) -> bool:
        """Whether ``step`` finished or was skipped (a resumed run does not run it again)."""
        return step in self.steps_finished or step in self.steps_skipped

    def batch_done(self, step: StepName, batch: int) -> bool:
        """Whether batch ``batch`` of ``step`` is recorded as done."""
        return batch in self.batches_done.get(step, ())

    def segments_of(self, step: StepName) -> list[SegmentRef]:
        """The segments a batched step wrote (``backup``), in batch order."""
        written = self.batch_segments.get(step, {})
        return [written[b] for b in sorted(written)]

    def _reopen(self, steps: frozenset[str]) -> None:
        self.steps_finished = [s for s in self.steps_finished if s not in steps]
        self.batches_done = {
            name: done for name, done in self.batches_done.items() if name not in steps
        }

    def fold_all(self, events: Iterable[AnyEvent]) -> RunState:
        """Fold ``events`` in order; returns ``self``."""
        for event in events:
            self.fold(event)
        return self

    def fold(self, event: AnyEvent) -> None:
        """Apply one event (in journal order, each event once)."""
        self.last_seq = event.seq
        step = step_of(event)
        if step is not None:
            timing = self.step_times.get(step)
            first = timing.first if timing is not None and timing.first is not None else event.at
            self.step_times[step] = StepTiming(first=first, last=event.at)
        if not isinstance(event, RunStarted | RunFinished | RunInterrupted):
            self.interrupted_at = None
        match event:
            case RunStarted():
                if self.plan_sha256 is None:
                    self.plan_sha256 = event.plan_sha256
                    self.index_name = event.index_name
                    self.mode = event.mode
                    self.started_at = event.at
                self.run_id = event.run_id
                self.kind = event.kind
                self.paused = False
                self.runs.append(event.kind)
                self.result = None
                self.error = ""
                self.failed_step = ""
                self.finished_at = None
            case StepStarted():
                if event.step == "enumerate" and "enumerate" not in self.steps_finished:
                    # An unfinished enumeration cannot resume its cursor: it starts over.
                    self.keys_by_batch.clear()
                    self.keys_enumerated = 0
                if event.step in self.marks.validation_starts:
                    self.checks_passed = []
                    self.checks_failed = []
                if event.step not in self.steps_started:
                    self.steps_started.append(event.step)
            case StepFinished():
                if event.step not in self.steps_finished:
                    self.steps_finished.append(event.step)
                self.step_counts[event.step] = dict(event.counts)
            case StepSkipped():
                self.steps_skipped[event.step] = event.reason
            case BatchDone():
                self.batches_done.setdefault(event.step, set()).add(event.batch)
                if event.segment is not None:
                    self.batch_segments.setdefault(event.step, {})[event.batch] = event.segment
            case EnumerationRestarted():
                self.keys_by_batch.clear()
                self.keys_enumerated = 0
            case KeysEnumerated():
                if event.batch not in self.keys_by_batch:
                    self.keys_enumerated += event.keys
                self.keys_by_batch[event.batch] = event.segment
            case CheckPassed():
                # The latest result of each check counts (a resumed validation redoes some).
                self.checks_failed = [f for f in self.checks_failed if f.check != event.check]
                if event.check not in self.checks_passed:
                    self.checks_passed.append(event.check)
            case CheckFailed():
                self.checks_failed = [f for f in self.checks_failed if f.check != event.check]
                self.checks_failed.append(FailedCheck(event.check, event.detail, event.count))
                if event.check in self.checks_passed:
                    self.checks_passed.remove(event.check)
            case VectorsRejected():
                seen = (event.kind, event.field, event.batch)
                if seen not in self.rejected_batches:
                    self.rejected_batches.add(seen)
                    found = self.rejected.setdefault(event.kind, Rejected(detail=event.detail))
                    found.count += event.count
                    room = REJECTED_SAMPLE - len(found.sample)
                    found.sample.extend(event.keys[: max(0, room)])
                    if event.field not in found.fields:
                        found.fields.append(event.field)
            case KeysGone():
                self.gone_by_step[event.step] = self.gone_by_step.get(event.step, 0) + len(
                    event.keys
                )
            case ConflictRecorded():
                self.conflicts += len(event.keys)
                by_step = self.conflicts_by_step
                by_step[event.step] = by_step.get(event.step, 0) + len(event.keys)
            case Note():
                self.notes.append(event.message)
            case RunInterrupted():
                self.interrupted_at = (event.step or None, event.batch)
            case CutoverApproved():
                self.cutover_approved = True
            case QueryBaseline():
                self.query_baseline = self.query_baseline or event
            case QueryCompared():
                pass  # its check events carry the verdict; the report reads the numbers
            case ServerSeen():
                self.server_run_id = event.run_id
            case ServerChanged():
                self._reopen(self.marks.redo_on_change)
            case StepsReopened():
                self._reopen(frozenset(event.steps))
                for name in event.steps:
                    self.conflicts -= self.conflicts_by_step.pop(name, 0)
            case ShadowCreated():
                self.shadow_created_at = self.shadow_created_at or event.at
            case ShadowReady():
                self.shadow_ready_at = event.at
            case CutoverDone():
                pass  # the cut-over instant is the report's (ftctl.journal.report)
            case RunPaused():
                self.paused = True
            case RunResumed():
                self.paused = False
            case PaceChanged():
                pass  # the pace is the report's (ftctl.journal.report)
            case RunFinished():
                self.result = event.result
                self.error = event.error
                self.failed_step = event.step
                self.finished_at = event.at
            case (
                BatchRunStarted()
                | BatchStarted()
                | BatchIndexStarted()
                | BatchIndexFinished()
                | BatchIndexInterrupted()
            ):
                pass  # batch journals only; see ftctl.journal.batch
            case _:
                assert_never(event)


def project_run(events: Iterable[AnyEvent], marks: StepMarks | None = None) -> RunState:
    """Fold ``events`` (in journal order) into a :class:`RunState`."""
    return RunState(marks=marks or StepMarks()).fold_all(events)


def run_events(events: Iterable[AnyEvent], kind: RunKind) -> list[AnyEvent]:
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
