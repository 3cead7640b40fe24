"""Journaled runs: open a journal, pick the mode's step table, drive it, journal the end.

Every verb (apply, resume, rollback, cutover, abort, validate) of both executors comes here:
the sync and the asyncio paths differ only in the driver (:func:`drive_sync`,
:func:`drive_async`). The journal in ``<backup_dir>/<index>/`` is the only state: a run's
:class:`~ftctl.journal.RunState` is folded from it once when the run opens, then kept current
by the table runner as events are appended.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
import redis.asyncio
import structlog

from ftctl.drivers import AsyncDriver, SyncDriver, mask_url
from ftctl.errors import (
    BackupDirError,
    ConnectionFailed,
    FtctlError,
    Interrupted,
    JournalLockedError,
    MigrationFailed,
    RefusedError,
    UsageError,
)
from ftctl.journal import Journal
from ftctl.journal.events import (
    AnyEvent,
    BatchDone,
    CheckFailed,
    CheckPassed,
    ConflictRecorded,
    KeysEnumerated,
    Note,
    RunFinished,
    RunInterrupted,
    RunKind,
    RunStarted,
    SegmentRef,
    StepFinished,
    StepName,
    StepSkipped,
    StepsReopened,
    StepStarted,
    event_tag,
    step_of,
)
from ftctl.journal.layout import (
    backup_root,
    index_journal_dir,
    is_batch_journal,
    is_index_journal_of,
    journal_dirs,
)
from ftctl.journal.projections import RunState, StepMarks, project_run, run_events
from ftctl.journal.report import MigrationReport, project_report
from ftctl.journal.safefs import nothing_changed
from ftctl.logs import PROGRESS_LOGGER, get_logger
from ftctl.plan.codecs import CodecError
from ftctl.plan.models import MigrationPlan, dump_plan, load_plan, plan_digest
from ftctl.progress import Meter
from ftctl.steps.effects import Progress
from ftctl.steps.query_checks import ExtraChecks, after_validation
from ftctl.steps.runner import Outcome, RunContext, run_table
from ftctl.steps.spec import RunSpec, run_spec
from ftctl.steps.tables import marks_for, table_for
from ftctl.version import ftctl_version

log = get_logger("ftctl.run")
progress_log = get_logger(PROGRESS_LOGGER)

ProgressCallback = Callable[[str, int, int], None]
"""``(step, documents done, documents total)``: called as each batch is journaled and as
polled work (the index build) moves; a resumed step starts from what was already done."""

PROGRESS_INTERVAL_ENV = "FTCTL_PROGRESS_INTERVAL"
"""Seconds between a step's periodic ``progress`` log lines (default
:data:`PROGRESS_INTERVAL`; 0: one line per progress report)."""
PROGRESS_INTERVAL = 5.0


def progress_interval() -> float:
    """:data:`PROGRESS_INTERVAL_ENV`, or its default when unset or not a number."""
    try:
        return max(0.0, float(os.environ.get(PROGRESS_INTERVAL_ENV) or PROGRESS_INTERVAL))
    except ValueError:
        return PROGRESS_INTERVAL


RUN_SOCKET_TIMEOUT = 60.0
"""Seconds a run's own connections wait for a reply (redis-py's default, 5 s, turns a server
stall — a fork, DEBUG SLEEP, CLIENT PAUSE, a slow FT.DROPINDEX — into a failure)."""

RUN_PROTOCOL = 2
"""RESP version of the connections a run opens itself: bulk replies (aggregate pages, batch
reads) parse 2.5x faster as RESP2 arrays than as RESP3 maps. Every step reads both shapes,
so a client passed in by the caller is used with whatever protocol it speaks."""

FAULT_ENV = "FTCTL_FAULT"
"""Fault injection for crash tests: ``before|after:<event tag>:<step>[:<batch>]`` SIGKILLs
the process just before or after that event is appended (e.g. ``before:batch_done:quantize:1``
is the middle of quantize batch 1: its writes are in Redis, its event is not;
``after:check_passed:validate`` is the middle of validation). An event without a step field
matches the step that is running. :data:`FAULT_SIGNAL_ENV` picks another signal (``SIGINT``:
Ctrl+C); :data:`FAULT_RAISE_ENV` fails the run there with an error instead (codec, oom,
connection, timeout) or a failed check (validation, verification)."""

FAULT_SIGNAL_ENV = "FTCTL_FAULT_SIGNAL"
"""The signal :data:`FAULT_ENV` sends (default ``SIGKILL``); ``SIGINT`` plays a Ctrl+C at an
exact point of the run."""

FAULT_RAISE_ENV = "FTCTL_FAULT_RAISE"
"""With :data:`FAULT_ENV`: fail the run there the way a real failure of this kind does,
instead of sending a signal. ``codec`` raises a CodecError, ``oom`` the MigrationFailed of a
Redis OOM error reply, ``connection`` ConnectionFailed (the run reconnects and resumes until
its reconnect timeout, meeting the fault again each time), ``timeout`` the MigrationFailed of
an index wait that timed out. ``validation`` appends a failed check beside the event (named
after the event's check when it is one, else ``injected``), so the run goes on and ends
``failed`` as after a validation step's failed check (it counts only inside validation: a
validation step starting clears earlier checks); ``verification`` appends it and raises
MigrationFailed, as a shadow that fails verification."""


# --- the journal, seen by the drivers -------------------------------------------------------


def _fault_matches(spec: str, phase: str, event: AnyEvent, step: str) -> bool:
    """Whether ``event`` is the one :data:`FAULT_ENV` names; ``step`` is the step running.

    Events without a step of their own (``check_passed``, ``note``…) belong to the step
    running when they are appended.
    """
    parts = spec.split(":")
    if len(parts) < 3 or parts[0] != phase:
        return False
    if parts[1] != event_tag(event) or parts[2] != (step_of(event) or step):
        return False
    return len(parts) < 4 or str(getattr(event, "batch", "")) == parts[3]


def _injected_error(kind: str, where: str, check: str) -> FtctlError | CheckFailed:
    """What :data:`FAULT_RAISE_ENV` ``kind`` raises (or, for a failed ``check``, records)."""
    said = f"(injected by {FAULT_RAISE_ENV}={kind} at {where})"
    match kind:
        case "codec":
            return CodecError(f"1 NaN or infinite values cannot be quantized {said}")
        case "oom":
            return MigrationFailed(
                f"HSET failed: OOM command not allowed when used memory > 'maxmemory'. {said}"
            )
        case "connection":
            return ConnectionFailed(
                f"lost the connection to Redis: Connection reset by peer {said}",
                "check the server; re-running the same command resumes from the journal",
            )
        case "timeout":
            return MigrationFailed(
                f"timeout waiting for index ready {said}",
                "re-run the same command to keep waiting, or pass a larger --timeout",
            )
        case "validation" | "verification":
            return CheckFailed(check=check, detail=f"the check failed {said}", count=1)
    raise UsageError(
        f"{FAULT_RAISE_ENV}={kind!r} is not a failure kind",
        "use codec, oom, connection, timeout, validation or verification",
    )


@dataclass
class _StepProgress:
    """A running step's progress, as the tap measures it."""

    started: float
    meter: Meter
    logged: float
    """When its last ``progress`` line was written (its start, before the first)."""
    detail: dict[str, float | int | str] = field(default_factory=dict)


@dataclass
class JournalTap:
    """The journal as the drivers see it: logs, progress, Ctrl+C at batch boundaries, faults.

    Every journaled action is a log line. Progress comes from the events that count
    documents (``batch_done``, ``keys_enumerated``) and from the steps' :class:`Progress`
    effects (:meth:`report`); it goes to the caller's callback at once, and every
    ``interval`` seconds to a ``progress`` log line with rate and ETA (logger
    :data:`~ftctl.logs.PROGRESS_LOGGER`).
    """

    journal: Journal
    log: Any
    progress: ProgressCallback | None = None
    total: int = 0
    """The run's documents: what a step that names no total of its own counts towards."""
    baseline: Mapping[str, int] = field(default_factory=dict)
    """Documents each step's batches did in earlier runs of this kind: a resumed step
    counts on from there, and its rate counts only this run's work."""
    progress_log: Any = field(default_factory=lambda: progress_log)
    interval: float = field(default_factory=progress_interval)
    stop: threading.Event = field(default_factory=threading.Event)
    _steps: dict[str, _StepProgress] = field(default_factory=dict)
    _fault: str = field(default_factory=lambda: os.environ.get(FAULT_ENV, ""))
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _step: str = ""
    _signal: signal.Signals = field(
        default_factory=lambda: signal.Signals[os.environ.get(FAULT_SIGNAL_ENV) or "SIGKILL"]
    )
    _raise: str = field(default_factory=lambda: os.environ.get(FAULT_RAISE_ENV, ""))

    @property
    def step(self) -> str:
        """The step running (or the last one that ran)."""
        return self._step

    def append(self, events: Sequence[AnyEvent]) -> list[AnyEvent]:
        injected = self._maybe_fault("before", events)
        stamped = self.journal.append([*injected, *events])
        for event in stamped:
            if isinstance(event, StepStarted):
                self._step = event.step
                self._begin(event.step)
        injected = self._maybe_fault("after", events)
        if injected:
            stamped += self.journal.append(injected)
        boundary = False
        counted: dict[StepName, int] = {}
        for event in stamped:
            self._log(event)
            if isinstance(event, StepFinished | StepSkipped):
                boundary = True  # between steps: as safe a place to stop as a batch's end
                with self._lock:
                    self._steps.pop(event.step, None)
                if isinstance(event, StepFinished) and event.step == "enumerate":
                    self.total = event.counts.get("keys", self.total)
            elif isinstance(event, BatchDone | KeysEnumerated):
                boundary = True
                step = event.step if isinstance(event, BatchDone) else "enumerate"
                counted[step] = counted.get(step, 0) + event.keys
        for name, keys in counted.items():  # events appended together count as one move
            self._count(name, advance=keys)
        if boundary and self.stop.is_set():
            raise Interrupted("interrupted at a batch boundary")
        return stamped

    def report(self, effect: Progress) -> None:
        """A :class:`Progress` effect of the running step (the drivers call this)."""
        self._count(
            self._step,
            done=effect.done,
            advance=effect.advance,
            total=effect.total,
            detail=effect.detail,
        )

    def _begin(self, step: str) -> None:
        now = time.monotonic()
        meter = Meter(now, done=self.baseline.get(step, 0), total=self.total)
        with self._lock:
            self._steps[step] = _StepProgress(started=now, meter=meter, logged=now)

    def _count(
        self,
        step: str,
        *,
        done: int | None = None,
        advance: int = 0,
        total: int = 0,
        detail: Mapping[str, float | int | str] | None = None,
    ) -> None:
        """Move ``step``'s count; call back; write a ``progress`` line when one is due."""
        now = time.monotonic()
        line: dict[str, Any] | None = None
        with self._lock:
            current = self._steps.get(step)
            if current is None:
                return  # progress of a step that is not running: nothing to measure against
            meter = current.meter
            meter.update(now, meter.done + advance if done is None else done, total or self.total)
            if detail:
                current.detail = dict(detail)
            if now - current.logged >= self.interval:
                current.logged = now
                line = {**meter.fields(), **current.detail}
            count, of = meter.done, meter.total
        if self.progress is not None:
            self.progress(step, count, of)
        if line is not None:
            self.progress_log.info("progress", step=step, **line)

    def _finished(self, step: str) -> dict[str, Any]:
        """Duration and documents per second of a step that just finished."""
        with self._lock:
            current = self._steps.get(step)
        if current is None:
            return {}
        seconds = time.monotonic() - current.started
        meter = current.meter
        fields: dict[str, Any] = {"seconds": round(seconds, 3)}
        worked = meter.done - meter.origin[1]
        if worked > 0 and seconds > 0:
            fields["docs"] = meter.done
            fields["rate"] = round(worked / seconds, 1)
        return fields

    def _log(self, event: AnyEvent) -> None:
        """Every journaled action, as a log line (the journal stays the record)."""
        match event:
            case StepStarted():
                self.log.info("step started", step=event.step)
            case StepFinished():
                self.log.info(
                    "step finished", step=event.step, **event.counts, **self._finished(event.step)
                )
            case StepSkipped():
                self.log.info("step skipped", step=event.step, reason=event.reason)
            case BatchDone():
                self.log.debug(
                    "batch done", step=event.step, batch=event.batch, keys=event.keys,
                    **event.counts,
                )  # fmt: skip
                retries = event.counts.get("cas_retries", 0)
                fallbacks = event.counts.get("cas_fallbacks", 0)
                if retries or fallbacks:
                    # Keys written by someone else between a read and its EXEC: the group
                    # was read and decided again; after RETRIES, the script wrote it.
                    self.log.info(
                        "compare-and-set retried", step=event.step, batch=event.batch,
                        retries=retries, script_fallbacks=fallbacks,
                    )  # fmt: skip
            case KeysEnumerated():
                self.log.debug(
                    "keys enumerated", step="enumerate", batch=event.batch, keys=event.keys
                )
            case CheckPassed():
                shown = {"detail": event.detail} if event.detail else {}
                self.log.info("check passed", step=self._step, check=event.check, **shown)
            case CheckFailed():
                self.log.warning(
                    "check failed", step=self._step, check=event.check, detail=event.detail
                )
            case ConflictRecorded():
                self.log.warning(
                    "concurrent writes kept", step=event.step, keys=len(event.keys),
                    reason=event.reason,
                )  # fmt: skip
            case Note():
                self.log.info(event.message, step=self._step, **event.data)
            case _:
                self.log.debug(
                    event_tag(event).replace("_", " "), step=step_of(event) or self._step
                )

    def _maybe_fault(self, phase: str, events: Sequence[AnyEvent]) -> list[AnyEvent]:
        """When ``events`` hold the fault's: send the fault signal, raise the injected error,
        or return the failed check to record with them (:data:`FAULT_RAISE_ENV`)."""
        if not self._fault or not any(
            _fault_matches(self._fault, phase, e, self._step) for e in events
        ):
            return []
        if not self._raise:
            os.kill(os.getpid(), self._signal)
            return []
        checks = (e.check for e in events if isinstance(e, CheckPassed | CheckFailed))
        injected = _injected_error(self._raise, self._fault, next(checks, "injected"))
        if not isinstance(injected, CheckFailed):
            raise injected
        if self._raise == "validation":
            return [injected]
        self.journal.append([injected])
        raise MigrationFailed(f"verification failed: {injected.check}: {injected.detail}")

    def write_segment(self, payload: Any, *, durable: bool = True) -> Any:
        return self.journal.write_segment(payload, durable=durable)

    def read_segment(self, ref: Any) -> Any:
        return self.journal.read_segment(ref)

    def verify_segments(self, refs: Sequence[SegmentRef]) -> list[str]:
        problems = []
        for ref in refs:
            try:
                self.journal.read_segment(ref)
            except FtctlError as exc:
                problems.append(exc.one_line())
        return problems


@contextlib.contextmanager
def ctrl_c_stops(stop: threading.Event) -> Iterator[None]:
    """First Ctrl+C: stop at the next batch boundary; second: interrupt at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def _async_ctrl_c_stops(stop: threading.Event) -> Iterator[None]:
    """The asyncio twin of :func:`ctrl_c_stops`: the first Ctrl+C stops at the next
    boundary, a second one cancels the run (both end in an ``interrupted`` event)."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()

    def handler() -> None:
        if stop.is_set() and task is not None:
            task.cancel()
        stop.set()

    try:
        loop.add_signal_handler(signal.SIGINT, handler)
    except (NotImplementedError, RuntimeError, ValueError):  # not the main thread / platform
        yield
        return
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGINT)


# --- opening a run --------------------------------------------------------------------------


@dataclass
class Options:
    """How a run goes (recorded in its ``run_started``), not what it does (the plan)."""

    batch_size: int = 500
    workers: int = 1
    timeout: float = 3600.0
    force: bool = False
    accept_data_loss: bool = False
    progress: ProgressCallback | None = None
    skip_invalid_vectors: bool = False
    reconnect_timeout: float = 60.0
    """Seconds a run keeps reconnecting (and resuming from its journal) after losing the
    server, before it stops as failed."""
    extra_checks: ExtraChecks | None = None
    """An apply's checks after its validation: RedisVL's key sample and wildcard search,
    and the ``query_check_file``'s (see :mod:`ftctl.steps.query_checks`)."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "batch_size": self.batch_size,
            "workers": self.workers,
            "timeout": self.timeout,
            "force": self.force,
            "skip_invalid_vectors": self.skip_invalid_vectors,
            "reconnect_timeout": self.reconnect_timeout,
        }


@dataclass
class Run:
    """An open journal (holding its lock) with the plan it belongs to."""

    journal: Journal
    plan: MigrationPlan
    directory: Path
    kind: RunKind
    """The kind of the run this process appended (``apply`` or ``rollback``)."""

    def events(self) -> list[AnyEvent]:
        return self.journal.events()

    def state(self, kind: RunKind) -> RunState:
        """The projection of every run of ``kind`` in the journal."""
        marks = plan_marks(self.plan, kind)
        return project_run(run_events(self.events(), kind), marks)

    def report(self, kind: RunKind | None = None) -> MigrationReport:
        return report_of(self.events(), self.plan, self.directory, kind or self.kind)


def plan_marks(plan: MigrationPlan, kind: RunKind) -> StepMarks:
    """The step marks of the table ``plan``'s runs of ``kind`` walk."""
    strategy = plan.online.strategy if plan.online is not None else None
    return marks_for(plan.mode, kind, strategy)


def report_of(
    events: list[AnyEvent], plan: MigrationPlan, directory: Path | str, kind: RunKind
) -> MigrationReport:
    """The report of ``kind``'s runs in a journal (a projection; regenerate it any time)."""
    warnings = plan.warnings if kind == "apply" else []
    marks = plan_marks(plan, kind)
    target = plan.merged_target_schema.name if kind == "apply" else plan.source.index_name
    return project_report(
        events, marks, backup_dir=directory, warnings=warnings, kind=kind, target_index=target
    )


def journal_dir(backup_dir: str | os.PathLike[str], index_name: str) -> Path:
    """The journal directory of ``index_name`` in ``backup_dir`` (see
    :mod:`ftctl.journal.layout`): one entry of the backup dir whatever the name, or the
    directory an earlier release named after the index when it holds that index's journal.

    An empty ``backup_dir`` is a UsageError: it would mean the current directory.
    """
    return index_journal_dir(backup_root(backup_dir), index_name)


def run_started(plan: MigrationPlan, kind: RunKind, url: str, options: Options) -> RunStarted:
    """The first event of a run: the whole plan, its digest, the options, the masked URL."""
    return RunStarted(
        run_id=secrets.token_hex(8),
        kind=kind,
        index_name=plan.source.index_name,
        plan_yaml=dump_plan(plan).decode(),
        plan_sha256=plan_digest(plan),
        mode=plan.mode,
        options=options.as_dict(),
        redis_url=mask_url(url),
        ftctl_version=ftctl_version(),
    )


def rolled_back(run: Run) -> bool:
    """Whether a rollback (or abort) of this journal began undoing: apply may not go on then.

    A rollback refused before it changed anything (by its own preflight, an abort after the
    cut-over, a rollback of a run that never started) does not count.
    """
    undo = run.state("rollback")
    steps = [*undo.steps_started, *undo.steps_skipped]
    return any(step != "rollback_preflight" for step in steps)


def note_recovered(journal: Journal) -> None:
    """Say that opening the journal cut a torn last record (a crash in mid-append)."""
    if journal.recovered_tail:
        log.warning(
            "journal torn tail cut", journal=str(journal.path), detail=journal.recovered_tail
        )


def _append_opening(journal: Journal, event: RunStarted) -> None:
    """Append a run's first event: failing here changed nothing, so it is exit 2."""
    try:
        journal.append([event])
    except BackupDirError as exc:
        raise nothing_changed(exc) from None


@contextlib.contextmanager
def _lock_refusal_logged(directory: Path) -> Iterator[None]:
    """Log a refusal to open a journal another process holds (then let it through)."""
    try:
        yield
    except JournalLockedError as exc:
        log.warning(
            "journal locked", index=directory.name, directory=str(directory), error=str(exc)
        )
        raise


def open_for_apply(
    plan: MigrationPlan, backup_dir: str | os.PathLike[str], url: str, options: Options
) -> Run:
    """Create the journal, or open it to resume: refused when it belongs to another plan."""
    directory = journal_dir(backup_dir, plan.source.index_name)
    first = run_started(plan, "apply", url, options)
    with _lock_refusal_logged(directory):
        if not Journal.exists(directory):
            return Run(Journal.create(directory, first=first), plan, directory, "apply")
        journal = Journal.open(directory)
    try:
        note_recovered(journal)
        if journal.run_started.index_name != first.index_name:
            raise RefusedError(
                f"{directory} holds the journal of index '{journal.run_started.index_name}', "
                f"not '{first.index_name}'",
                "the file system folds the two names together (case-insensitive?): use "
                "another --backup-dir for this index",
            )
        if journal.run_started.plan_sha256 != first.plan_sha256:
            raise RefusedError(
                f"backup does not match plan: {directory} holds the journal of another plan",
                "use a new --backup-dir for a new plan (backups are never overwritten)",
            )
        run = Run(journal, plan, directory, "apply")
        if rolled_back(run):
            raise RefusedError(
                f"{directory} holds a migration that was rolled back",
                "use a new --backup-dir to apply the plan again",
            )
        _append_opening(journal, first)
    except BaseException:
        journal.close()
        raise
    return run


def open_existing(directory: Path, kind: RunKind, url: str, options: Options) -> Run:
    """Open a journal for resume, rollback, cutover or abort; the plan comes from the journal."""
    with _lock_refusal_logged(directory):
        journal = Journal.open(directory)
    try:
        note_recovered(journal)
        plan = load_plan(journal.run_started.plan_yaml.encode())
        _append_opening(journal, run_started(plan, kind, url, options))
    except BaseException:
        journal.close()
        raise
    return Run(journal, plan, directory, kind)


def find_journals(
    backup_dir: str | os.PathLike[str], index: str | None = None, *, batches: bool = False
) -> list[Path]:
    """The index journal directories under a backup dir (``--index`` picks one by the
    index's real name, whatever its directory is called).

    A batch's own journal (``batch-<id>/``) is listed only with ``batches`` (inspect):
    resume and rollback work on index journals. ``backup_dir`` may itself be a journal
    directory (a report's ``backup.journal``). A damaged journal raises
    JournalCorruptError instead of being taken for none.
    """
    root = backup_root(backup_dir)
    if index is not None:
        directory = index_journal_dir(root, index)
        found = [directory] if is_index_journal_of(directory, index) else []
    else:
        found = [p for p in journal_dirs(root) if batches or not is_batch_journal(p)]
        found = [p for p in found if Journal.first_run(p) is not None]
        # The backup dir given is the user's: when it is itself a journal directory, it is
        # used through its real path (it may be a symbolic link the user chose).
        real = Path(os.path.realpath(root))
        if Journal.exists(real) and (batches or not is_batch_journal(real)):
            found.insert(0, root if real == root.absolute() else real)
    if not found:
        raise UsageError(
            f"no migration journal under {root}" + (f" for index '{index}'" if index else ""),
            "pass the --backup-dir given to apply (and --index when it holds several)",
        )
    return found


def only_journal(backup_dir: str | os.PathLike[str], index: str | None) -> Path:
    found = find_journals(backup_dir, index)
    if len(found) > 1:
        names = ", ".join(_index_name(p) for p in found)
        raise UsageError(
            f"{backup_dir} holds journals of several indexes ({names})", "pass --index NAME"
        )
    return found[0]


def _index_name(directory: Path) -> str:
    first = Journal.first_run(directory)
    name = first.index_name if isinstance(first, RunStarted) else directory.name
    return repr(name) if not name.isprintable() or "," in name else name


# --- driving a run --------------------------------------------------------------------------


@dataclass
class _Prepared:
    table_name: str
    step: Any
    ctx: RunContext
    tap: JournalTap


def _prepare(run: Run, options: Options, *, abort_only: bool, stop: threading.Event) -> _Prepared:
    spec: RunSpec = run_spec(
        run.plan,
        batch_size=options.batch_size,
        timeout=options.timeout,
        skip_invalid=options.skip_invalid_vectors,
    )
    events = run.events()
    applied = project_run(run_events(events, "apply"), plan_marks(run.plan, "apply"))
    state = (
        applied
        if run.kind == "apply"
        else project_run(run_events(events, run.kind), plan_marks(run.plan, run.kind))
    )
    ctx = RunContext(
        spec=spec, state=state, applied=applied, force=options.force, abort_only=abort_only
    )
    table = table_for(spec, run.kind)
    ids = {"index": spec.source_index, "run_id": state.run_id, "kind": run.kind}
    bound = log.bind(**ids)
    this_run = next(e for e in reversed(events) if isinstance(e, RunStarted))
    first = next((s.name for s in table.steps if not state.step_done(s.name)), None)
    bound.info(
        "run started",
        step=first,
        mode=run.plan.mode,
        table=table.name,
        resumed=bool(state.steps_started),
        workers=options.workers,
        batch_size=options.batch_size,
        url=this_run.redis_url,  # masked when it was journaled
    )
    tap = JournalTap(
        run.journal,
        bound,
        progress=options.progress,
        total=applied.keys_enumerated or spec.expected_docs,
        stop=stop,
        baseline=_documents_done(run_events(events, run.kind)),
        progress_log=progress_log.bind(**ids),
    )
    tap._step = first or ""  # what the lines before the first step_started belong to
    step = run_table(table, ctx)
    if options.extra_checks is not None and run.kind == "apply":
        step = after_validation(step, state, options.extra_checks)
    return _Prepared(table.name, step, ctx, tap)


def _documents_done(events: Sequence[AnyEvent]) -> dict[str, int]:
    """Documents of each step's batches recorded as done (each batch counted once)."""
    seen: set[tuple[str, int]] = set()
    done: dict[str, int] = {}
    for event in events:
        if isinstance(event, BatchDone) and (event.step, event.batch) not in seen:
            seen.add((event.step, event.batch))
            done[event.step] = done.get(event.step, 0) + event.keys
    return done


@contextlib.contextmanager
def _run_context(prepared: _Prepared) -> Iterator[None]:
    """Bind the run's ``index`` and ``run_id`` to every log line written while it runs,
    by the drivers and by whatever library they call, in worker threads too."""
    state = prepared.ctx.state
    with structlog.contextvars.bound_contextvars(
        index=prepared.ctx.spec.source_index, run_id=state.run_id
    ):
        yield


def _already_done(run: Run) -> MigrationReport | None:
    """A run whose previous attempt already finished: journal that and return its report."""
    previous = project_run(run_events(run.events()[:-1], run.kind))
    done = "succeeded" if run.kind == "apply" else "rolled_back"
    if previous.result == done:
        run.journal.append([RunFinished(result=done, error="")])
        return run.report()
    return None


def _revalidate(run: Run) -> None:
    """Reopen the closing validation of a run whose previous attempt failed its checks.

    Its report says to re-run the command, and a check that failed (a count read while a
    writer was busy, a key put back since) may pass now: without this, every re-run found
    the validation done and repeated the stale failure. Steps inside the downtime window
    (drop_recreate's ``wait``) stay done: running them again would stretch the recorded
    downtime to this run.
    """
    events = run.events()[:-1]  # before this run's run_started
    previous = project_run(run_events(events, run.kind), marks_for(run.plan.mode, run.kind))
    if previous.result != "failed" or not previous.checks_failed:
        return
    closing: list[StepName] = []
    for step in reversed(table_for(run_spec(run.plan), run.kind).steps):
        if not step.validation or step.downtime:
            break
        closing.insert(0, step.name)
    again = [s for s in closing if s in previous.steps_finished]
    if again:
        reason = "the last run failed its checks: validate again"
        run.journal.append([StepsReopened(steps=again, reason=reason)])


def _finish(run: Run, prepared: _Prepared, outcome: Outcome) -> MigrationReport:
    state = prepared.ctx.state
    if outcome == "awaiting":
        event = RunFinished(result="awaiting_cutover")
    elif outcome == "passed":
        event = RunFinished(result="rolled_back" if run.kind == "rollback" else "succeeded")
    else:
        failed = "; ".join(f"{c.check}: {c.detail}" for c in state.checks_failed)
        event = RunFinished(result="failed", error="validation failed: " + failed)
    run.journal.append([event])
    tap = prepared.tap
    if event.result == "failed":
        tap.log.error("run finished", step=tap.step, result=event.result, error=event.error)
    else:
        tap.log.info("run finished", step=tap.step, result=event.result)
    return run.report()


def _interrupted_step(state: RunState) -> StepName | None:
    return next((s for s in reversed(state.steps_started) if s not in state.steps_finished), None)


def _stopped(run: Run, prepared: _Prepared, exc: BaseException) -> MigrationReport:
    """Journal how a run ended early: interrupted (raise, resumable), refused (raise, nothing
    changed) or failed (return the report, result ``failed``)."""
    bound = prepared.tap.log
    state = prepared.ctx.state
    step = _interrupted_step(state)
    if isinstance(exc, Interrupted | KeyboardInterrupt | asyncio.CancelledError):
        run.journal.append([RunInterrupted(step=step or "")])
        bound.warning("run interrupted", step=step or prepared.tap.step)
        raise Interrupted(
            f"interrupted; the journal in {run.directory} records where",
            f"continue with: {again(run)}",
        ) from None
    if isinstance(exc, BackupDirError) and not _changed(state):
        bound.warning("run stopped: the backup dir cannot be written", error=exc.one_line())
        raise nothing_changed(exc) from None  # the journal cannot take an end event either
    if isinstance(exc, RefusedError | UsageError) and not _changed(state):
        run.journal.append([RunFinished(result="refused", error=exc.one_line(), step=step or "")])
        bound.warning("run refused", step=step or prepared.tap.step, error=exc.one_line())
        raise exc
    if isinstance(exc, FtctlError):
        run.journal.append([RunFinished(result="failed", error=exc.one_line(), step=step or "")])
        bound.error("run failed", step=step or prepared.tap.step, error=exc.one_line())
        return run.report()
    raise exc


def _changed(state: RunState) -> bool:
    """Whether the run started a step that writes to Redis (a refusal after one is a
    failure: something changed)."""
    return any(step in state.marks.redo_on_change for step in state.steps_started)


def again(run: Run) -> str:
    """The command that continues ``run`` from its journal."""
    verb = "rollback" if run.kind == "rollback" else "resume"
    return f"ftctl migrate {verb} --backup-dir {run.directory.parent}"


def _worker_factory(client: redis.Redis) -> Callable[[], redis.Redis]:
    """Extra connections to the same server, with the same settings, for worker threads."""
    pool = client.connection_pool
    kwargs = dict(pool.connection_kwargs)
    # from_pool: the client owns the pool, so closing the client closes its connections.
    return lambda: redis.Redis.from_pool(
        redis.ConnectionPool(connection_class=pool.connection_class, **kwargs)
    )


def _async_worker_factory(client: redis.asyncio.Redis) -> Callable[[], Any]:
    pool = client.connection_pool
    kwargs = dict(pool.connection_kwargs)

    async def make() -> redis.asyncio.Redis:
        return redis.asyncio.Redis.from_pool(
            redis.asyncio.ConnectionPool(connection_class=pool.connection_class, **kwargs)
        )

    return make


class _Reconnects:
    """When a run that lost the server tries again: backing off, until the deadline."""

    def __init__(self, options: Options) -> None:
        self.timeout = options.reconnect_timeout
        self.deadline = time.monotonic() + options.reconnect_timeout
        self.wait = 0.25

    def next_wait(self, exc: ConnectionFailed) -> float:
        """Seconds to wait before resuming; raises the final error past the deadline."""
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise ConnectionFailed(
                f"Redis did not answer for {self.timeout:g} s: {exc.message}",
                "the server is stalled or down; re-run the same command to resume from the "
                "journal, or pass --reconnect-timeout SECONDS to wait longer",
            )
        wait, self.wait = min(self.wait, left), min(self.wait * 2, 5.0)
        return wait


def drive_sync(
    run: Run, client: redis.Redis, options: Options, *, abort_only: bool = False
) -> MigrationReport:
    """Run ``run``'s table with the sync driver; closes the journal.

    A lost connection (or a reply slower than the socket timeout) does not end the run:
    it reconnects and resumes from the journal (every batch is idempotent) for up to
    ``options.reconnect_timeout`` seconds.
    """
    try:
        done = _already_done(run)
        if done is not None:
            return done
        _revalidate(run)
        stop = threading.Event()
        reconnects = _Reconnects(options)
        while True:
            prepared = _prepare(run, options, abort_only=abort_only, stop=stop)
            driver = SyncDriver(
                client,
                prepared.tap,
                workers=options.workers,
                connect_worker=_worker_factory(client),
                stop=stop,
                progress=prepared.tap.report,
            )
            try:
                with _run_context(prepared), ctrl_c_stops(stop):
                    outcome = driver.run(prepared.step)
            except ConnectionFailed as exc:
                try:
                    wait = reconnects.next_wait(exc)
                except ConnectionFailed as final:
                    return _stopped(run, prepared, final)
                prepared.tap.log.warning(
                    "lost the server; resuming from the journal", error=exc.message, retry_in=wait
                )
                if stop.wait(wait):
                    return _stopped(run, prepared, Interrupted("interrupted while reconnecting"))
                continue
            except (FtctlError, KeyboardInterrupt) as exc:
                return _stopped(run, prepared, exc)
            finally:
                driver.close()
            return _finish(run, prepared, outcome)
    finally:
        run.journal.close()


async def drive_async(
    run: Run, client: redis.asyncio.Redis, options: Options, *, abort_only: bool = False
) -> MigrationReport:
    """Run ``run``'s table with the asyncio driver; closes the journal (see
    :func:`drive_sync` for what happens when the server is lost)."""
    try:
        done = await asyncio.to_thread(_already_done, run)
        if done is not None:
            return done
        await asyncio.to_thread(_revalidate, run)
        stop = threading.Event()
        reconnects = _Reconnects(options)
        while True:
            prepared = await asyncio.to_thread(
                _prepare, run, options, abort_only=abort_only, stop=stop
            )
            driver = AsyncDriver(
                client,
                prepared.tap,
                workers=options.workers,
                connect_worker=_async_worker_factory(client),
                stop=stop,
                progress=prepared.tap.report,
            )
            try:
                with _run_context(prepared), _async_ctrl_c_stops(stop):
                    outcome = await driver.run(prepared.step)
            except ConnectionFailed as exc:
                try:
                    wait = reconnects.next_wait(exc)
                except ConnectionFailed as final:
                    return await asyncio.to_thread(_stopped, run, prepared, final)
                prepared.tap.log.warning(
                    "lost the server; resuming from the journal", error=exc.message, retry_in=wait
                )
                await asyncio.sleep(wait)
                if stop.is_set():
                    interrupted = Interrupted("interrupted while reconnecting")
                    return await asyncio.to_thread(_stopped, run, prepared, interrupted)
                continue
            except (FtctlError, KeyboardInterrupt, asyncio.CancelledError) as exc:
                return await asyncio.to_thread(_stopped, run, prepared, exc)
            finally:
                await driver.close()
            return await asyncio.to_thread(_finish, run, prepared, outcome)
    finally:
        run.journal.close()


__all__ = [
    "FAULT_ENV",
    "FAULT_RAISE_ENV",
    "FAULT_SIGNAL_ENV",
    "PROGRESS_INTERVAL_ENV",
    "RUN_PROTOCOL",
    "JournalTap",
    "Options",
    "ProgressCallback",
    "Run",
    "drive_async",
    "drive_sync",
    "find_journals",
    "journal_dir",
    "note_recovered",
    "only_journal",
    "open_existing",
    "open_for_apply",
    "progress_interval",
    "report_of",
    "run_started",
]
