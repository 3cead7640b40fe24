"""Reports are projections: rendered from the journal's events, reproducible at any time.

:func:`project_report` gives the :class:`MigrationReport` (RedisVL's report fields: result,
timings incl. downtime, validation, benchmark summary, backup info, warnings, manual
actions); :func:`project_benchmark` the per-step throughput. Regenerating either from the
same journal gives the same content.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec

from ftctl.journal.events import (
    AnyEvent,
    CheckFailed,
    CheckPassed,
    ConflictRecorded,
    CutoverDone,
    KeysGone,
    Mode,
    PaceChanged,
    QueryCompared,
    RunKind,
    RunPaused,
    RunResult,
    RunResumed,
    RunStarted,
    ShadowCreated,
    ShadowReady,
    StepStarted,
    step_of,
)
from ftctl.journal.projections import RunState, StepMarks, project_run, run_events


class CheckResult(msgspec.Struct, frozen=True, kw_only=True):
    check: str
    passed: bool
    detail: str = ""
    count: int = 0


class QueryCheckResult(msgspec.Struct, frozen=True, kw_only=True):
    """One query check in RedisVL's shape: ``fetch:<id>``, ``key:<key>`` (from a
    ``query_check_file``), ``functional:wildcard_search`` (always run), or ftctl's
    ``query:<name>`` (the user's own queries; their numbers are in ``validation.queries``)."""

    name: str
    passed: bool
    details: str | None = None


class QueryResult(msgspec.Struct, frozen=True, kw_only=True):
    """One of the user's queries, run on the source before and on the target after.

    ``overlap``: the share of the source's top ``k`` found in the target's (ties with the
    source's k-th count); None when there was no baseline to compare with (the query only
    ran) or it failed (``error``). ``count_before`` / ``count_after``: total results.
    ``missing``: a sample of the source's top-k ids absent from the target's top k;
    ``added``: of the target's top-k ids the source neither ranked nor tied there.
    """

    name: str
    passed: bool
    k: int
    overlap: float | None = None
    min_overlap: float = 0.0
    count_before: int | None = None
    count_after: int | None = None
    max_count_change: int | None = None
    index: str = ""
    """The index the query ran on after the change (the shadow, before an online cut-over)."""
    missing: list[str] = msgspec.field(default_factory=list)
    added: list[str] = msgspec.field(default_factory=list)
    error: str = ""


QUERY_CHECK_PREFIXES = ("functional:", "fetch:", "key:", "query:")
"""Check names reported in ``validation.query_checks`` (RedisVL's names, and ftctl's
``query:<name>``)."""
KEY_SAMPLE_CHECK = "key_sample"
"""The check that the plan's ``source.keyspace.key_sample`` exists under its final names."""


class ReportValidation(msgspec.Struct, frozen=True, kw_only=True):
    """The latest validation (RedisVL's ``MigrationValidation`` fields first, then ftctl's)."""

    schema_match: bool | None = None
    doc_count_match: bool | None = None
    key_sample_exists: bool = False
    """Every sampled (and, in an apply, every enumerated) key exists under its final name."""
    indexing_failures_delta: int = 0
    """Target's ``hash_indexing_failures`` minus the source's."""
    query_checks: list[QueryCheckResult] = msgspec.field(default_factory=list)
    errors: list[str] = msgspec.field(default_factory=list)
    """One line per failed check, or the error that stopped the run; empty on success."""
    keys_exist: bool | None = None
    indexing_failures_ok: bool | None = None
    vector_sample_match: bool | None = None
    knn_self_match: bool | None = None
    concurrent_writes: int = 0
    checks: list[CheckResult] = msgspec.field(default_factory=list)
    queries: list[QueryResult] = msgspec.field(default_factory=list)
    """The user's own queries (``queries:`` of a query check file), compared."""


class ReportTimings(msgspec.Struct, frozen=True, kw_only=True):
    """RedisVL's per-phase ``*_duration_seconds`` (None: the phase did not run) and ftctl's
    per-step seconds (``steps``)."""

    total_migration_duration_seconds: float = 0.0
    drop_duration_seconds: float | None = None
    quantize_duration_seconds: float | None = None
    field_rename_duration_seconds: float | None = None
    key_rename_duration_seconds: float | None = None
    recreate_duration_seconds: float | None = None
    initial_indexing_duration_seconds: float | None = None
    validation_duration_seconds: float | None = None
    downtime_duration_seconds: float = 0.0
    steps: dict[str, float] = msgspec.field(default_factory=dict)
    """Wall-clock seconds of each step that ran."""


PHASE_STEPS: dict[str, tuple[str, ...]] = {
    "drop_duration_seconds": ("drop", "drop_target"),
    "quantize_duration_seconds": ("quantize", "restore_vectors"),
    "field_rename_duration_seconds": ("rename_fields", "restore_fields"),
    "key_rename_duration_seconds": ("rename_keys", "restore_keys"),
    "recreate_duration_seconds": (
        "create", "recreate_source", "alter_add", "shadow_create", "rb_shadow_create",
    ),
    "initial_indexing_duration_seconds": (
        "wait", "wait_source", "alter_wait", "shadow_wait", "rb_shadow_wait",
    ),
    "validation_duration_seconds": (
        "validate", "validate_source", "shadow_verify", "online_validate", "rb_shadow_verify",
        "rb_validate", "query_compare",
    ),
}  # fmt: skip
"""RedisVL's timing key → the ftctl steps (of any mode, apply or rollback) it sums."""


class BenchmarkSummary(msgspec.Struct, frozen=True, kw_only=True):
    documents_indexed_per_second: float | None = None
    """Documents divided by the index build's seconds (RedisVL's meaning)."""
    source_index_size_mb: float | None = None
    target_index_size_mb: float | None = None
    index_size_delta_mb: float | None = None
    documents: int = 0
    docs_per_second: dict[str, float] = msgspec.field(default_factory=dict)
    """Documents per second of each batched step (backup, quantize, renames)."""


class BackupInfo(msgspec.Struct, frozen=True, kw_only=True):
    backup_dir: str = ""
    """The backup directory the run was given (or ftctl's default), absolute."""
    backup_paths: list[str] = msgspec.field(default_factory=list)
    """Where original vectors were backed up: the index's journal directory, which
    :class:`ftctl.backup.VectorBackup` reads; empty when no vector bytes were rewritten."""
    journal: str = ""
    segments: int = 0
    segment_bytes: int = 0


class PacingReport(msgspec.Struct, frozen=True, kw_only=True):
    """How an online run that rewrites documents paced its writes (settings of its latest
    run; what happened over all its runs)."""

    throttle: bool = True
    max_latency_ms: float = 0.0
    max_cpu: float = 0.0
    probe_query: str = ""
    """Empty: a KNN 10 on the live index's vector field (``*`` without one)."""
    slowed: int = 0
    """``pace_changed`` events that slowed the run (a first slowdown or a new low)."""
    lowest_batch: int | None = None
    """The smallest batch the run went down to (None: it never slowed)."""
    longest_sleep_ms: float = 0.0
    highest_latency_ms: float | None = None
    """The highest latency a slowdown was measured at."""
    pauses: int = 0
    """Times an operator paused the run (``ftctl migrate pause``)."""
    paused_seconds: float = 0.0
    """How long it held its writes, all pauses together (one still on: until the last
    event)."""
    paused: bool = False
    """The run was paused when the journal ended."""


def project_pacing(events: Sequence[AnyEvent]) -> PacingReport | None:
    """The pacing of a run's events (None: the run does not pace its writes)."""
    settings = next(
        (
            e.options
            for e in reversed(events)
            if isinstance(e, RunStarted) and "throttle" in e.options
        ),
        None,
    )
    if settings is None:
        return None
    slowed = [e for e in events if isinstance(e, PaceChanged) and e.change == "slowed"]
    latencies = [e.latency_ms for e in slowed if e.latency_ms is not None]
    pauses, held, since = 0, 0.0, None
    for event in events:
        if isinstance(event, RunPaused):
            pauses += 1
            since = event.at
        elif isinstance(event, RunResumed | RunStarted) and since is not None:
            held += _seconds(since, event.at)
            since = None
    if since is not None and events:
        held += _seconds(since, events[-1].at)
    return PacingReport(
        throttle=bool(settings.get("throttle")),
        max_latency_ms=float(settings.get("max_latency_ms") or 0.0),
        max_cpu=float(settings.get("max_cpu") or 0.0),
        probe_query=str(settings.get("probe_query") or ""),
        slowed=len(slowed),
        lowest_batch=min((e.batch for e in slowed), default=None),
        longest_sleep_ms=max((e.sleep_ms for e in slowed), default=0.0),
        highest_latency_ms=max(latencies, default=None),
        pauses=pauses,
        paused_seconds=round(held, 3),
        paused=since is not None,
    )


class MigrationReport(msgspec.Struct, frozen=True, kw_only=True):
    """What happened, from the journal alone."""

    version: int = 1
    index_name: str = ""
    source_index: str = ""
    """The index migrated (RedisVL's name; equals ``index_name``)."""
    target_index: str = ""
    """The index's name after the migration (differs on an index rename)."""
    kind: RunKind = "apply"
    mode: Mode = "drop_recreate"
    result: RunResult = "in_progress"
    """succeeded | failed | refused | interrupted | in_progress | rolled_back |
    awaiting_cutover."""
    error: str = ""
    started_at: str = ""
    finished_at: str = ""
    plan_sha256: str = ""
    timings: ReportTimings = msgspec.field(default_factory=ReportTimings)
    validation: ReportValidation = msgspec.field(default_factory=ReportValidation)
    benchmark_summary: BenchmarkSummary = msgspec.field(default_factory=BenchmarkSummary)
    backup: BackupInfo = msgspec.field(default_factory=BackupInfo)
    conflicts: int = 0
    conflict_sample: list[str] = msgspec.field(default_factory=list)
    warnings: list[str] = msgspec.field(default_factory=list)
    manual_actions: list[str] = msgspec.field(default_factory=list)
    failed_step: str = ""
    """The step that was running when the run failed."""
    down_since: str = ""
    """When the run ended with the index still down (dropped, not rebuilt): since when."""
    gone: int = 0
    """Keys found gone during the run (deleted meanwhile, or lost by the server)."""
    gone_sample: list[str] = msgspec.field(default_factory=list)
    rejected_vectors: dict[str, int] = msgspec.field(default_factory=dict)
    """Vectors the backup could not convert, by kind (wrong_length, unconvertible)."""
    rejected_sample: list[str] = msgspec.field(default_factory=list)
    cutover_at: str = ""
    """Online mode: when the MULTI/EXEC swap's event was journaled (the cut-over instant)."""
    shadow_build_seconds: float = 0.0
    """Online mode: from the shadow's creation to its background scan's end."""
    disk_space_estimate: dict[str, object] | None = None
    """RedisVL's field; ftctl's estimate is ``ftctl migrate estimate`` (never set here)."""
    pacing: PacingReport | None = None
    """Online runs that rewrite documents: their pace and pauses (None: not paced)."""


class ValidationReport(MigrationReport, frozen=True, kw_only=True):
    """What ``MigrationValidator.validate`` returns: the report of a validation run, which
    also unpacks as RedisVL's ``(validation, target_info, validation_duration)``."""

    target_info: dict[str, Any] = msgspec.field(default_factory=dict)
    """The target index's FT.INFO numbers (num_docs, hash_indexing_failures, …)."""

    def __iter__(self) -> Iterator[Any]:
        """``validation, target_info, duration = validator.validate(...)`` (RedisVL's shape)."""
        duration = self.timings.total_migration_duration_seconds
        return iter((self.validation, self.target_info, duration))


def _iso(at: datetime | None) -> str:
    return at.isoformat() if at is not None else ""


def _seconds(a: datetime | None, b: datetime | None) -> float:
    return round((b - a).total_seconds(), 6) if a is not None and b is not None else 0.0


def _step_seconds(state: RunState) -> dict[str, float]:
    return {
        step: _seconds(timing.first, timing.last)
        for step, timing in state.step_times.items()
        if step in state.steps_started
    }


def _validation(events: Sequence[AnyEvent], marks: StepMarks) -> ReportValidation:
    """The checks of the latest validation (earlier attempts are superseded).

    A validation begins where a step of ``marks.validation_starts`` starts (an apply's
    ``wait`` checks the documents while the index builds; ``validate`` adds the index's
    checks); only checks recorded inside validation steps count.
    """
    latest: dict[str, CheckResult] = {}
    queries: dict[str, QueryResult] = {}
    in_validate = False
    validated = False
    for event in events:
        step = step_of(event)
        if step is not None:
            in_validate = step in marks.validation
            if isinstance(event, StepStarted) and step in marks.validation_starts:
                latest = {}
                queries = {}
            validated = validated or (in_validate and isinstance(event, StepStarted))
        if isinstance(event, QueryCompared) and in_validate:
            queries[event.name] = _query_result(event)
        if isinstance(event, CheckPassed | CheckFailed) and in_validate:
            latest[event.check] = CheckResult(
                check=event.check,
                passed=isinstance(event, CheckPassed),
                detail=event.detail,
                count=event.count if isinstance(event, CheckFailed) else 0,
            )

    def passed(name: str) -> bool | None:
        found = latest.get(name)
        return None if found is None else found.passed

    writes = latest.get("concurrent_writes")
    keys = [c.passed for name, c in latest.items() if name in ("keys_exist", KEY_SAMPLE_CHECK)]
    failed = [c for c in latest.values() if not c.passed]
    return ReportValidation(
        schema_match=passed("schema_match"),
        doc_count_match=passed("doc_count"),
        key_sample_exists=all(keys) if keys else validated,
        indexing_failures_delta=_failures_delta(latest.get("indexing_failures")),
        query_checks=[
            QueryCheckResult(name=c.check, passed=c.passed, details=c.detail or None)
            for name, c in latest.items()
            if name.startswith(QUERY_CHECK_PREFIXES)
        ],
        errors=[f"{c.check}: {c.detail}" for c in failed],
        keys_exist=passed("keys_exist"),
        indexing_failures_ok=passed("indexing_failures"),
        vector_sample_match=passed("vector_bytes"),
        knn_self_match=passed("knn_self"),
        concurrent_writes=writes.count if writes is not None else 0,
        checks=list(latest.values()),
        queries=list(queries.values()),
    )


def _query_result(event: QueryCompared) -> QueryResult:
    return QueryResult(
        name=event.name,
        passed=event.passed,
        k=event.k,
        overlap=event.overlap,
        min_overlap=event.min_overlap,
        count_before=event.count_before,
        count_after=event.count_after,
        max_count_change=event.max_count_change,
        index=event.index,
        missing=[_shown(k) for k in event.missing],
        added=[_shown(k) for k in event.added],
        error=event.error,
    )


_FAILURES_DETAIL = re.compile(r"^(\d+) failures \(source had (\d+)\)")
"""The detail the validate step gives its ``indexing_failures`` check
(:mod:`ftctl.steps.validate`): target failures, then the source's."""


def _failures_delta(check: CheckResult | None) -> int:
    """Target failures minus source failures; a decrease shows as a negative number."""
    if check is None:
        return 0
    found = _FAILURES_DETAIL.match(check.detail)
    if found is not None:
        return int(found[1]) - int(found[2])
    return check.count


def _phase_seconds(step_seconds: dict[str, float]) -> dict[str, float | None]:
    """RedisVL's per-phase durations: the seconds of the steps each phase is made of, None
    for a phase none of whose steps ran."""
    out: dict[str, float | None] = {}
    for key, steps in PHASE_STEPS.items():
        ran = [step_seconds[s] for s in steps if s in step_seconds]
        out[key] = round(sum(ran), 6) if ran else None
    return out


def _downtime(state: RunState) -> float:
    """From the first downtime step's start to the last downtime step's last event."""
    spans = [t for step, t in state.step_times.items() if step in state.marks.downtime]
    firsts = [t.first for t in spans if t.first is not None]
    lasts = [t.last for t in spans if t.last is not None]
    return _seconds(min(firsts), max(lasts)) if firsts and lasts else 0.0


def _online_times(events: Sequence[AnyEvent]) -> tuple[str, float]:
    """The latest cut-over instant, and how long the shadow it swapped in took to build."""
    created: datetime | None = None
    ready: datetime | None = None
    cutover: datetime | None = None
    for event in events:
        if isinstance(event, ShadowCreated) and created is None:
            created = event.at
        elif isinstance(event, ShadowReady):
            ready = event.at
        elif isinstance(event, CutoverDone) and not (event.recovered and cutover):
            cutover = event.at  # a resumed run's re-check never hides the real instant
    return _iso(cutover), _seconds(created, ready)


def _shown(key: bytes) -> str:
    """A key as text: UTF-8 where it is, escapes for other bytes and control characters."""
    text = key.decode("utf-8", "backslashreplace")
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


def _down_since(state: RunState, result: str) -> str:
    """The start of a downtime window the run left open (no index answers since then)."""
    marks = state.marks
    opened = [state.step_times[s].first for s in state.steps_started if s in marks.downtime]
    closed = any(s in marks.downtime_closes for s in state.steps_finished)
    if not opened or closed or result in ("succeeded", "rolled_back"):
        return ""
    return _iso(min((t for t in opened if t is not None), default=None))


def _next_actions(state: RunState, kind: RunKind, result: str, where: str) -> list[str]:
    """What the user can do next, for the command that ran and how it ended."""
    out: list[str] = []
    if state.conflicts:
        out.append(
            f"{state.conflicts} keys were written by others during the run and were left as "
            "they are; see the journal (ftctl migrate journal inspect)"
            + (
                f"; 'ftctl migrate rollback --backup-dir {where} --force' overwrites them"
                if kind == "rollback"
                else ""
            )
        )
    if state.paused and result != "succeeded":
        out.append(
            "the run was paused when it stopped (ftctl migrate pause): a run started while the "
            f"flag is there starts paused; 'ftctl migrate unpause --backup-dir {where}' removes it"
        )
    if result == "refused":
        out.append("nothing was changed: fix what the error names, then run the command again")
    elif result == "awaiting_cutover":
        out.append(
            f"'ftctl migrate cutover --backup-dir {where}' swaps the new index in; "
            f"'ftctl migrate abort --backup-dir {where}' drops it"
        )
    elif result == "failed" and kind == "validate":
        out.append(
            "the live index is not the plan's target (yet): an online apply waiting at its "
            "cut-over gate needs 'ftctl migrate cutover --backup-dir <its backup dir>' first; "
            "an apply that failed or was interrupted continues when re-run"
        )
    elif result in ("failed", "interrupted", "in_progress"):
        if kind == "rollback":
            out.append(f"re-run 'ftctl migrate rollback --backup-dir {where}' to continue it")
        else:
            out.append(
                f"re-run the same apply (or 'ftctl migrate resume --backup-dir {where}') to "
                f"continue, or 'ftctl migrate rollback --backup-dir {where}' to undo"
            )
    return out


def _result(state: RunState) -> RunResult:
    if state.result is not None:
        return state.result
    if state.interrupted_at is not None:
        return "interrupted"
    return "in_progress"


def project_report(
    events: Sequence[AnyEvent],
    marks: StepMarks,
    *,
    backup_dir: str | Path = "",
    warnings: Sequence[str] = (),
    kind: RunKind | None = None,
    target_index: str = "",
) -> MigrationReport:
    """The migration report of a journal's events (``kind`` picks apply or rollback runs).

    ``marks`` (from the step tables) say which steps bound the downtime and the validation.
    ``backup_dir`` is the index's journal directory (``<backup-dir>/<index>``);
    ``target_index`` the index's name after the migration (default: the source's).
    """
    first = next((e for e in events if isinstance(e, RunStarted)), None)
    wanted: RunKind = kind or (first.kind if first else "apply")
    selected = run_events(events, wanted)
    state = project_run(selected, marks)
    step_seconds = _step_seconds(state)
    downtime = _downtime(state)
    documents = state.keys_enumerated
    rates: dict[str, float] = {}
    for step, batches in state.batches_done.items():
        seconds = step_seconds.get(step, 0.0)
        if seconds > 0 and batches:
            rates[step] = round(documents / seconds, 1)
    conflict_keys = [
        _shown(key) for e in selected if isinstance(e, ConflictRecorded) for key in e.keys
    ]
    segments = {ref.number: ref.size for ref in state.key_segments}
    for refs in state.batch_segments.values():
        segments.update({ref.number: ref.size for ref in refs.values()})
    root = Path(backup_dir) if backup_dir else None
    result = _result(state)
    where = str(root.parent) if root else "..."
    manual = _next_actions(state, wanted, result, where)
    gone_keys = list(
        dict.fromkeys(_shown(k) for e in selected if isinstance(e, KeysGone) for k in e.keys)
    )
    cutover_at, shadow_seconds = _online_times(selected)
    validation = _validation(selected, marks)
    if state.error and not validation.errors:
        validation = msgspec.structs.replace(validation, errors=[state.error])
    phases = _phase_seconds(step_seconds)
    indexing = phases["initial_indexing_duration_seconds"]
    backed_up = bool(state.batches_done.get("backup"))
    return MigrationReport(
        failed_step=state.failed_step,
        down_since=_down_since(state, result),
        gone=len(gone_keys),
        gone_sample=gone_keys[:20],
        rejected_vectors={kind: r.count for kind, r in state.rejected.items()},
        rejected_sample=[_shown(k) for r in state.rejected.values() for k in r.sample][:20],
        cutover_at=cutover_at,
        shadow_build_seconds=shadow_seconds,
        index_name=state.index_name or "",
        source_index=state.index_name or "",
        target_index=target_index or state.index_name or "",
        kind=wanted,
        mode=state.mode or "drop_recreate",
        result=result,
        error=state.error,
        started_at=_iso(selected[0].at if selected else None),
        finished_at=_iso(state.finished_at),
        plan_sha256=state.plan_sha256 or "",
        timings=ReportTimings(
            total_migration_duration_seconds=_seconds(
                selected[0].at if selected else None, selected[-1].at if selected else None
            ),
            downtime_duration_seconds=downtime,
            steps=step_seconds,
            **phases,
        ),
        validation=validation,
        benchmark_summary=BenchmarkSummary(
            documents_indexed_per_second=(
                round(documents / indexing, 3) if indexing is not None and indexing > 0 else None
            ),
            documents=documents,
            docs_per_second=rates,
        ),
        backup=BackupInfo(
            backup_dir=str(root.parent) if root else "",
            backup_paths=[str(root)] if root and backed_up else [],
            journal=str(root / "journal.log") if root else "",
            segments=len(segments),
            segment_bytes=sum(segments.values()),
        ),
        conflicts=len(conflict_keys),
        conflict_sample=conflict_keys[:20],
        warnings=list(warnings),
        manual_actions=manual,
        pacing=project_pacing(selected),
    )


class StepBenchmark(msgspec.Struct, frozen=True, kw_only=True):
    seconds: float
    batches: int = 0
    documents: int = 0
    docs_per_second: float = 0.0


class BenchmarkReport(msgspec.Struct, frozen=True, kw_only=True):
    version: int = 1
    index_name: str = ""
    documents: int = 0
    total_seconds: float = 0.0
    downtime_seconds: float = 0.0
    steps: dict[str, StepBenchmark] = msgspec.field(default_factory=dict)


def project_benchmark(events: Sequence[AnyEvent], marks: StepMarks) -> BenchmarkReport:
    """Per-step durations and throughput of the apply runs of a journal."""
    report = project_report(events, marks, kind="apply")
    state = project_run(run_events(events, "apply"), marks)
    steps: dict[str, StepBenchmark] = {}
    seconds_of = report.timings.steps
    for step in state.step_times:
        if step not in seconds_of:
            continue
        seconds = seconds_of[step]
        batches = len(state.batches_done.get(step, set()))
        documents = state.keys_enumerated if batches or step == "enumerate" else 0
        steps[step] = StepBenchmark(
            seconds=seconds,
            batches=batches,
            documents=documents,
            docs_per_second=round(documents / seconds, 1) if seconds > 0 and documents else 0.0,
        )
    return BenchmarkReport(
        index_name=report.index_name,
        documents=report.benchmark_summary.documents,
        total_seconds=report.timings.total_migration_duration_seconds,
        downtime_seconds=report.timings.downtime_duration_seconds,
        steps=steps,
    )
