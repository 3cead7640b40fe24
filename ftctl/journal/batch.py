"""Batch journal events and the projections rendered from them (state, status, report).

A batch journal lives in ``<backup-dir>/batch-<batch_id>/journal.log``. Its first event is a
:class:`~ftctl.journal.events.BatchRunStarted` that embeds the batch plan YAML and its
sha256 (journals of earlier releases: a ``RunStarted`` of kind ``batch``); each later run
(``batch-resume``) appends another one. Then:

- :class:`BatchStarted` (once): the indexes of the batch, which are applicable, where their
  reviewed per-index plans are and their digests;
- :class:`BatchIndexStarted` / :class:`BatchIndexFinished` / :class:`BatchIndexInterrupted`
  per index run, referencing the index's own journal;
- :class:`~ftctl.journal.events.RunFinished` at the end of each run.

``batch_state.yaml``, ``batch_report.yaml`` and ``batch-status`` are folds of these events
(:func:`project_batch_state`, :func:`project_batch_report`): delete the files and they come
back identical from the journal.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, TypeAlias, assert_never

import msgspec

from ftctl.journal.events import (
    AnyEvent,
    BatchDone,
    BatchIndexEntry,
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
    Note,
    PaceChanged,
    QueryBaseline,
    QueryCompared,
    RunFinished,
    RunInterrupted,
    RunPaused,
    RunResult,
    RunResumed,
    RunStarted,
    ServerChanged,
    ServerSeen,
    ShadowCreated,
    ShadowReady,
    StepFinished,
    StepSkipped,
    StepsReopened,
    StepStarted,
    VectorsRejected,
)

# --- projections ----------------------------------------------------------------------------

BatchStatus: TypeAlias = Literal["completed", "partial_failure", "failed", "in_progress"]

SUCCESS = "success"
FAILED = "failed"
SKIPPED = "skipped"
PENDING = "pending"
IN_PROGRESS = "in_progress"
INTERRUPTED = "interrupted"


@dataclass(slots=True)
class IndexProgress:
    """What the batch journal says about one index."""

    name: str
    applicable: bool
    skip_reason: str | None = None
    plan_path: str = ""
    plan_sha256: str = ""
    status: str = PENDING
    """pending | in_progress | interrupted | success | failed | skipped."""
    attempts: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: str = ""
    result: str = ""
    report_path: str = ""
    journal: str = ""


@dataclass(slots=True)
class BatchProgress:
    """The fold of a batch journal: every index's progress, in plan order."""

    batch_id: str = ""
    plan_path: str = ""
    plan_sha256: str = ""
    backup_dir: str = ""
    failure_policy: str = "fail_fast"
    options: dict[str, str | int | float | bool] = field(default_factory=dict)
    """Options of the latest run (state path, report dir, retry_failed, …)."""
    runs: int = 0
    indexes: dict[str, IndexProgress] = field(default_factory=dict)
    started_at: datetime | None = None
    updated_at: datetime | None = None
    run_result: RunResult | None = None
    """``result`` of the latest run's ``run_finished`` (None while it runs or after a crash)."""
    last_seq: int = 0

    def with_status(self, *statuses: str) -> list[IndexProgress]:
        return [i for i in self.indexes.values() if i.status in statuses]

    @property
    def current(self) -> IndexProgress | None:
        """The index whose migration started and has not ended (a crash leaves it here)."""
        found = self.with_status(IN_PROGRESS)
        return found[0] if found else None

    @property
    def status(self) -> BatchStatus:
        """completed | partial_failure | failed | in_progress (the guide's batch statuses)."""
        applicable = [i for i in self.indexes.values() if i.applicable]
        done = [i for i in applicable if i.status in (SUCCESS, FAILED)]
        failed = [i for i in done if i.status == FAILED]
        if failed and self.run_result is not None:
            return "partial_failure" if len(failed) < len(done) else "failed"
        if len(done) < len(applicable):
            return "in_progress"
        if not failed:
            return "completed"
        return "partial_failure" if len(failed) < len(done) else "failed"


def project_batch(events: Iterable[AnyEvent]) -> BatchProgress:
    """Fold a batch journal's events (in order) into a :class:`BatchProgress`."""
    state = BatchProgress()
    for event in events:
        state.last_seq = event.seq
        if event.at is not None:
            state.updated_at = event.at
            if state.started_at is None:
                state.started_at = event.at
        match event:
            case BatchRunStarted() | RunStarted():
                # A batch journal written before BatchRunStarted existed starts with a
                # RunStarted of kind "batch" whose index_name holds the batch id.
                if not state.plan_sha256:
                    state.plan_sha256 = event.plan_sha256
                    state.batch_id = (
                        event.batch_id if isinstance(event, BatchRunStarted) else event.index_name
                    )
                state.runs += 1
                state.options = dict(event.options)
                state.run_result = None
                for index in state.with_status(IN_PROGRESS):
                    index.status = INTERRUPTED  # the run that held it died without an event
            case BatchStarted():
                state.batch_id = event.batch_id
                state.plan_path = event.plan_path
                state.backup_dir = event.backup_dir
                state.failure_policy = event.failure_policy
                for entry in event.indexes:
                    state.indexes[entry.name] = IndexProgress(
                        name=entry.name,
                        applicable=entry.applicable,
                        skip_reason=entry.skip_reason,
                        plan_path=entry.plan_path,
                        plan_sha256=entry.plan_sha256,
                        status=PENDING if entry.applicable else SKIPPED,
                    )
            case BatchIndexStarted():
                index = state.indexes.setdefault(
                    event.name, IndexProgress(name=event.name, applicable=True)
                )
                index.status = IN_PROGRESS
                index.attempts += 1
                if index.started_at is None:
                    index.started_at = event.at
                index.finished_at = None
                index.error = ""
                index.result = ""
                index.journal = event.journal
            case BatchIndexFinished():
                index = state.indexes.setdefault(
                    event.name, IndexProgress(name=event.name, applicable=True)
                )
                index.status = SUCCESS if event.status == SUCCESS else FAILED
                index.finished_at = event.at
                index.error = event.error
                index.result = event.result
                index.report_path = event.report_path
                index.journal = event.journal or index.journal
            case BatchIndexInterrupted():
                if event.name in state.indexes:
                    state.indexes[event.name].status = INTERRUPTED
                    state.indexes[event.name].error = event.error
            case RunFinished():
                state.run_result = event.result
            case (
                StepStarted()
                | StepFinished()
                | StepSkipped()
                | BatchDone()
                | KeysEnumerated()
                | EnumerationRestarted()
                | CheckPassed()
                | CheckFailed()
                | ConflictRecorded()
                | QueryBaseline()
                | QueryCompared()
                | KeysGone()
                | VectorsRejected()
                | Note()
                | ServerSeen()
                | ServerChanged()
                | StepsReopened()
                | RunInterrupted()
                | ShadowCreated()
                | ShadowReady()
                | CutoverApproved()
                | CutoverDone()
                | RunPaused()
                | RunResumed()
                | PaceChanged()
            ):
                pass  # index-run events live in the index journals, never in a batch journal
            case _:
                assert_never(event)
    return state


# --- rendered files -------------------------------------------------------------------------


def _iso(at: datetime | None) -> str:
    return at.isoformat().replace("+00:00", "Z") if at is not None else ""


def _seconds(a: datetime | None, b: datetime | None) -> float:
    return round((b - a).total_seconds(), 3) if a is not None and b is not None else 0.0


class CompletedIndex(msgspec.Struct, frozen=True, kw_only=True):
    """An index whose migration ended (success or failed)."""

    name: str
    status: str
    completed_at: str
    started_at: str = ""
    duration_seconds: float = 0.0
    attempts: int = 1
    error: str | None = None
    report_path: str | None = None
    journal: str = ""


class SkippedIndex(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    skip_reason: str


class InterruptedIndex(msgspec.Struct, frozen=True, kw_only=True):
    """An index whose migration started and stopped before it ended (Ctrl+C, or a run that
    died and a later run that has not reached it yet): half migrated until batch-resume."""

    name: str
    error: str = ""


class BatchState(msgspec.Struct, frozen=True, kw_only=True):
    """``batch_state.yaml``: the checkpoint the guide describes, rendered from the journal."""

    version: int = 1
    batch_id: str
    plan_path: str
    backup_dir: str
    journal: str
    failure_policy: str
    status: str
    started_at: str
    updated_at: str
    completed: list[CompletedIndex] = msgspec.field(default_factory=list)
    current_index: str | None = None
    remaining: list[str] = msgspec.field(default_factory=list)
    """Indexes not finished yet, the interrupted ones included (RedisVL's meaning)."""
    skipped: list[SkippedIndex] = msgspec.field(default_factory=list)
    interrupted: list[InterruptedIndex] = msgspec.field(default_factory=list)

    @property
    def success_count(self) -> int:
        """Indexes migrated successfully (RedisVL's ``success_count``)."""
        return sum(1 for i in self.completed if i.status == SUCCESS)

    @property
    def failed_count(self) -> int:
        return sum(1 for i in self.completed if i.status == FAILED)

    @property
    def skipped_count(self) -> int:
        """Selected indexes the batch does not migrate (not applicable)."""
        return len(self.skipped)

    @property
    def is_complete(self) -> bool:
        """Nothing left to run and nothing running (RedisVL's ``is_complete``)."""
        return not self.remaining and self.current_index is None


class BatchSummary(msgspec.Struct, frozen=True, kw_only=True):
    total_indexes: int
    successful: int
    failed: int
    skipped: int
    remaining: int = 0
    total_duration_seconds: float = 0.0


class BatchReportIndex(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    status: str
    report_path: str | None = None
    error: str | None = None
    skip_reason: str | None = None
    duration_seconds: float = 0.0
    journal: str | None = None


class BatchReport(msgspec.Struct, frozen=True, kw_only=True):
    """``batch_report.yaml`` in the guide's fields, rendered from the journal."""

    version: int = 1
    batch_id: str
    status: str
    """completed | partial_failure | failed | in_progress."""
    backup_dir: str | None = None
    """The batch's backup directory, absolute (RedisVL's field)."""
    summary: BatchSummary
    indexes: list[BatchReportIndex] = msgspec.field(default_factory=list)
    started_at: str | None = None
    completed_at: str | None = None


def _completed(index: IndexProgress) -> CompletedIndex:
    return CompletedIndex(
        name=index.name,
        status=index.status,
        completed_at=_iso(index.finished_at),
        started_at=_iso(index.started_at),
        duration_seconds=_seconds(index.started_at, index.finished_at),
        attempts=index.attempts,
        error=index.error or None,
        report_path=index.report_path or None,
        journal=index.journal,
    )


def project_batch_state(events: Iterable[AnyEvent], *, journal: str = "") -> BatchState:
    """The ``batch_state.yaml`` content of a batch journal's events."""
    progress = project_batch(events)
    current = progress.current
    done = sorted(
        progress.with_status(SUCCESS, FAILED),
        key=lambda i: (i.finished_at is None, i.finished_at or datetime.min, i.name),
    )
    return BatchState(
        batch_id=progress.batch_id,
        plan_path=progress.plan_path,
        backup_dir=progress.backup_dir,
        journal=journal,
        failure_policy=progress.failure_policy,
        status=progress.status,
        started_at=_iso(progress.started_at),
        updated_at=_iso(progress.updated_at),
        completed=[_completed(i) for i in done],
        current_index=current.name if current is not None else None,
        remaining=[i.name for i in progress.with_status(PENDING, INTERRUPTED)],
        skipped=[
            SkippedIndex(name=i.name, skip_reason=i.skip_reason or "")
            for i in progress.with_status(SKIPPED)
        ],
        interrupted=[
            InterruptedIndex(name=i.name, error=i.error) for i in progress.with_status(INTERRUPTED)
        ],
    )


def project_batch_report(events: Iterable[AnyEvent]) -> BatchReport:
    """The ``batch_report.yaml`` content of a batch journal's events."""
    progress = project_batch(events)
    indexes = list(progress.indexes.values())
    counts = {s: sum(1 for i in indexes if i.status == s) for s in (SUCCESS, FAILED, SKIPPED)}
    status = progress.status
    return BatchReport(
        batch_id=progress.batch_id,
        status=status,
        backup_dir=progress.backup_dir or None,
        started_at=_iso(progress.started_at) or None,
        summary=BatchSummary(
            total_indexes=len(indexes),
            successful=counts[SUCCESS],
            failed=counts[FAILED],
            skipped=counts[SKIPPED],
            remaining=len(indexes) - sum(counts.values()),
            total_duration_seconds=_seconds(progress.started_at, progress.updated_at),
        ),
        indexes=[
            BatchReportIndex(
                name=i.name,
                status=i.status,
                report_path=i.report_path or None,
                error=i.error or None,
                skip_reason=i.skip_reason,
                duration_seconds=_seconds(i.started_at, i.finished_at),
                journal=i.journal or None,
            )
            for i in indexes
        ],
        completed_at=_iso(progress.updated_at) if status != IN_PROGRESS else None,
    )


__all__ = [
    "BatchIndexEntry",
    "BatchIndexFinished",
    "BatchIndexInterrupted",
    "BatchIndexStarted",
    "BatchProgress",
    "BatchReport",
    "BatchReportIndex",
    "BatchStarted",
    "BatchState",
    "BatchSummary",
    "CompletedIndex",
    "IndexProgress",
    "SkippedIndex",
    "project_batch",
    "project_batch_report",
    "project_batch_state",
]
