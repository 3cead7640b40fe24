"""MigrationExecutor / AsyncMigrationExecutor: open the journal, check the plan, run the steps.

Both executors share everything but the driver: the step sequence is one sans-IO generator
(:mod:`ftctl.steps.sequence`) that the sync or the asyncio driver runs. The journal in
``<backup_dir>/<index>/`` is the only state: re-running ``apply`` with the same plan resumes,
``resume`` needs only the backup directory, and reports are projections of its events.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

import redis
import redis.asyncio

from ftctl.drivers import AsyncDriver, SyncDriver, async_connect, connect, mask_url
from ftctl.errors import FtctlError, Interrupted, MigrationFailed, RefusedError, UsageError
from ftctl.journal import Journal
from ftctl.journal.events import (
    AnyEvent,
    BatchDone,
    KeysEnumerated,
    RunFinished,
    RunStarted,
    StepFinished,
    StepSkipped,
    StepStarted,
)
from ftctl.journal.events import (
    Interrupted as InterruptedEvent,
)
from ftctl.journal.projections import RunState, project_run, run_events
from ftctl.journal.report import MigrationReport, project_report
from ftctl.plan.models import MigrationPlan, dump_plan, load_plan, plan_digest
from ftctl.steps.effects import Step
from ftctl.steps.rollback import rollback_sequence
from ftctl.steps.sequence import drop_recreate
from ftctl.steps.spec import Conversion, DocFieldRename, PrefixChange, RunSpec

ProgressCallback = Callable[[str, int, int], None]
"""``(step, documents done, documents total)``."""

FAULT_ENV = "FTCTL_FAULT"
"""Fault injection for crash tests: ``before|after:<event tag>:<step>[:<batch>]`` SIGKILLs
the process just before or after that event is appended (e.g. ``before:batch_done:quantize:1``
is the middle of quantize batch 1: its writes are in Redis, its event is not;
``after:check_passed:validate`` is the middle of validation). An event without a step field
matches the step that is running."""


RUN_PROTOCOL = 2
"""RESP version of the connections a run opens itself: bulk replies (aggregate pages, batch
reads) parse 2.5x faster as RESP2 arrays than as RESP3 maps. Every step reads both shapes,
so a client passed in by the caller is used with whatever protocol it speaks."""

FAULT_SIGNAL_ENV = "FTCTL_FAULT_SIGNAL"
"""The signal :data:`FAULT_ENV` sends (default ``SIGKILL``); ``SIGINT`` plays a Ctrl+C at an
exact point of the run."""


def ftctl_version() -> str:
    try:
        return package_version("ftctl")
    except Exception:  # pragma: no cover - running from a source tree without metadata
        return "0+unknown"


# --- plan → what the steps need ------------------------------------------------------------


def spec_from_plan(
    plan: MigrationPlan, *, batch_size: int = 500, timeout: float = 3600.0
) -> RunSpec:
    """The document-level :class:`RunSpec` of a plan (hash fields / JSON paths, key prefixes)."""
    source = plan.source.schema_snapshot
    target = plan.merged_target_schema
    renames = plan.rename_operations
    prefix_change = None
    if renames.change_prefix is not None:
        prefixes = source.prefixes
        if len(prefixes) != 1:
            raise RefusedError(
                f"index '{source.name}' has {len(prefixes)} prefixes; a prefix change needs exactly one",
                "change the prefix of an index with a single prefix",
            )
        prefix_change = PrefixChange(old=prefixes[0], new=renames.change_prefix)
    field_renames = []
    new_names = {r.old_name: r.new_name for r in renames.rename_fields}
    for old_name, new_name in new_names.items():
        old_field, new_field = source.field(old_name), target.field(new_name)
        if old_field is None or new_field is None:
            raise UsageError(
                f"plan renames field '{old_name}' → '{new_name}' but the schemas do not have both",
                "re-create the plan with 'ftctl migrate plan'",
            )
        old_path, new_path = source.field_path(old_field), target.field_path(new_field)
        if old_path != new_path:
            field_renames.append(DocFieldRename(old=old_path, new=new_path))
    conversions = []
    for change in plan.vector_changes:
        if not change.reencode_documents:
            continue
        source_name = change.source_field or change.field
        old_field, new_field = source.field(source_name), target.field(change.field)
        if old_field is None or new_field is None:
            raise UsageError(
                f"plan re-encodes field '{change.field}' but the schemas do not have it",
                "re-create the plan with 'ftctl migrate plan'",
            )
        conversions.append(
            Conversion(
                backup_field=source.field_path(old_field),
                field=target.field_path(new_field),
                source=change.source_datatype,
                target=change.target_datatype,
                dims=change.dims,
                params=change.params,
            )
        )
    return RunSpec(
        source_index=plan.source.index_name,
        target_index=target.name,
        storage_type=plan.source.keyspace.storage_type,
        source_schema=source,
        target_schema=target,
        prefix_change=prefix_change,
        field_renames=field_renames,
        conversions=conversions,
        batch_size=batch_size,
        timeout=timeout,
    )


def expected_docs(plan: MigrationPlan) -> int:
    stats = plan.source.stats_snapshot
    return stats.num_docs + stats.hash_indexing_failures


def check_plan(plan: MigrationPlan, *, accept_data_loss: bool) -> None:
    """Refuse (exit 2, nothing changed) a plan that must not run."""
    if not plan.supported:
        reasons = "; ".join(plan.diff_classification.blocked_reasons) or "no reason given"
        raise RefusedError(f"the plan is blocked: {reasons}", "fix the blocked changes and re-plan")
    if plan.mode not in ("drop_recreate", "online") or (
        plan.mode == "online" and plan.online is None
    ):
        raise RefusedError(
            f"mode '{plan.mode}' is not supported by this version of apply",
            "re-plan with --mode drop_recreate",
        )
    if plan.requires_data_loss_ack and not accept_data_loss:
        lossy = ", ".join(
            f"{v.field} {v.source_datatype}→{v.target_datatype}"
            for v in plan.vector_changes
            if v.lossy
        )
        raise RefusedError(
            f"the plan changes vectors lossily ({lossy})",
            "review the plan's warnings and pass --accept-data-loss",
        )


# --- the journal, seen by the drivers -------------------------------------------------------


def _fault_matches(spec: str, phase: str, event: object, step: str) -> bool:
    """Whether ``event`` is the one :data:`FAULT_ENV` names; ``step`` is the step running.

    Events without a step of their own (``keys_enumerated``, ``check_passed``, ``note``…)
    belong to the step running when they are appended.
    """
    parts = spec.split(":")
    if len(parts) < 3 or parts[0] != phase:
        return False
    tag = type(event).__struct_config__.tag  # type: ignore[attr-defined]
    if parts[1] != tag or parts[2] != getattr(event, "step", step):
        return False
    return len(parts) < 4 or str(getattr(event, "batch", "")) == parts[3]


@dataclass
class JournalTap:
    """The journal as the drivers see it: progress, Ctrl+C at batch boundaries, faults."""

    journal: Journal
    progress: ProgressCallback | None = None
    total: int = 0
    stop: threading.Event = field(default_factory=threading.Event)
    _done: dict[str, int] = field(default_factory=dict)
    _fault: str = field(default_factory=lambda: os.environ.get(FAULT_ENV, ""))
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _step: str = ""
    _signal: signal.Signals = field(
        default_factory=lambda: signal.Signals[os.environ.get(FAULT_SIGNAL_ENV) or "SIGKILL"]
    )

    def append(self, events: Sequence[Any]) -> list[Any]:
        self._maybe_fault("before", events)
        stamped = self.journal.append(events)
        for event in stamped:
            if isinstance(event, StepStarted):
                self._step = event.step
        self._maybe_fault("after", events)
        boundary = False
        for event in stamped:
            if isinstance(event, StepFinished | StepSkipped):
                boundary = True  # between steps: as safe a place to stop as a batch's end
            elif isinstance(event, BatchDone | KeysEnumerated):
                boundary = True
                step = event.step if isinstance(event, BatchDone) else "enumerate"
                with self._lock:
                    self._done[step] = self._done.get(step, 0) + event.keys
                    done = self._done[step]
                if self.progress is not None:
                    self.progress(step, done, self.total)
            elif isinstance(event, StepStarted):
                with self._lock:
                    self._done.setdefault(event.step, 0)
        if boundary and self.stop.is_set():
            raise Interrupted("interrupted at a batch boundary")
        return stamped

    def _maybe_fault(self, phase: str, events: Sequence[Any]) -> None:
        if self._fault and any(_fault_matches(self._fault, phase, e, self._step) for e in events):
            os.kill(os.getpid(), self._signal)

    def write_segment(self, payload: Any, *, durable: bool = True) -> Any:
        return self.journal.write_segment(payload, durable=durable)

    def read_segment(self, ref: Any) -> Any:
        return self.journal.read_segment(ref)


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
class Run:
    """An open journal with the state of its apply runs and rollback runs."""

    journal: Journal
    plan: MigrationPlan
    directory: Path

    def events(self) -> list[AnyEvent]:
        return self.journal.events()

    def applied(self) -> RunState:
        return project_run(run_events(self.events(), "apply"))

    def rolled_back(self) -> RunState:
        return project_run(run_events(self.events(), "rollback"))


def journal_dir(backup_dir: str | os.PathLike[str], index_name: str) -> Path:
    if not str(backup_dir):
        raise UsageError("--backup-dir is required", "pass a directory for the journal and backups")
    return Path(backup_dir) / index_name


def _run_started(plan: MigrationPlan, kind: str, url: str, options: dict[str, Any]) -> RunStarted:
    return RunStarted(
        run_id=secrets.token_hex(8),
        kind=kind,
        index_name=plan.source.index_name,
        plan_yaml=dump_plan(plan).decode(),
        plan_sha256=plan_digest(plan),
        mode=plan.mode,
        options=options,
        redis_url=mask_url(url),
        ftctl_version=ftctl_version(),
    )


def open_for_apply(
    plan: MigrationPlan, backup_dir: str | os.PathLike[str], url: str, options: dict[str, Any]
) -> Run:
    """Create the journal, or open it to resume: refused when it belongs to another plan."""
    directory = journal_dir(backup_dir, plan.source.index_name)
    first = _run_started(plan, "apply", url, options)
    if not Journal.exists(directory):
        return Run(Journal.create(directory, first=first), plan, directory)
    journal = Journal.open(directory)
    try:
        recorded = journal.run_started
        if recorded.plan_sha256 != first.plan_sha256:
            raise RefusedError(
                f"backup does not match plan: {directory} holds the journal of another plan",
                "use a new --backup-dir for a new plan (backups are never overwritten)",
            )
        if "rollback" in project_run(journal.events()).runs:
            raise RefusedError(
                f"{directory} holds a migration that was rolled back",
                "use a new --backup-dir to apply the plan again",
            )
        journal.append([first])
    except BaseException:
        journal.close()
        raise
    return Run(journal, plan, directory)


def open_existing(directory: Path, kind: str, url: str, options: dict[str, Any]) -> Run:
    """Open a journal for resume or rollback; the plan comes from the journal itself."""
    journal = Journal.open(directory)
    try:
        plan = load_plan(journal.run_started.plan_yaml.encode())
        journal.append([_run_started(plan, kind, url, options)])
    except BaseException:
        journal.close()
        raise
    return Run(journal, plan, directory)


def find_journals(
    backup_dir: str | os.PathLike[str], index: str | None = None, *, batches: bool = False
) -> list[Path]:
    """The index journal directories under a backup dir (``--index`` picks one).

    A batch's own journal (``batch-<id>/``) is listed only with ``batches`` (inspect):
    resume and rollback work on index journals.
    """
    root = Path(backup_dir)
    if index is not None:
        found = [root / index]
    else:
        found = sorted(p.parent for p in root.glob("*/journal.log"))
        if Journal.exists(root):
            found.insert(0, root)

    def wanted(directory: Path) -> bool:
        first = Journal.first_run(directory)
        return first is not None and (batches or first.kind != "batch")

    found = [p for p in found if wanted(p)]
    if not found:
        raise UsageError(
            f"no migration journal under {root}" + (f" for index '{index}'" if index else ""),
            "pass the --backup-dir given to apply (and --index when it holds several)",
        )
    return found


def only_journal(backup_dir: str | os.PathLike[str], index: str | None) -> Path:
    found = find_journals(backup_dir, index)
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise UsageError(
            f"{backup_dir} holds journals of several indexes ({names})", "pass --index NAME"
        )
    return found[0]


# --- running --------------------------------------------------------------------------------


@dataclass
class Options:
    batch_size: int = 500
    workers: int = 1
    timeout: float = 3600.0
    force: bool = False
    accept_data_loss: bool = False
    progress: ProgressCallback | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "batch_size": self.batch_size,
            "workers": self.workers,
            "timeout": self.timeout,
            "force": self.force,
        }


def _apply_step(run: Run, tap: JournalTap, options: Options) -> Step[bool]:
    spec = spec_from_plan(run.plan, batch_size=options.batch_size, timeout=options.timeout)
    state = run.applied()
    tap.total = state.keys_enumerated or expected_docs(run.plan)
    return drop_recreate(
        spec,
        state,
        source_failures=run.plan.source.stats_snapshot.hash_indexing_failures,
        expected_docs=expected_docs(run.plan),
        reload=lambda: run_events(run.events(), "apply"),
    )


def _rollback_step(run: Run, tap: JournalTap, options: Options) -> Step[bool]:
    spec = spec_from_plan(run.plan, batch_size=options.batch_size, timeout=options.timeout)
    applied = run.applied()
    tap.total = applied.keys_enumerated or expected_docs(run.plan)
    return rollback_sequence(
        spec,
        applied,
        run.rolled_back(),
        force=options.force,
        source_failures=run.plan.source.stats_snapshot.hash_indexing_failures,
        expected_docs=expected_docs(run.plan),
        reload=lambda: run_events(run.events(), "rollback"),
    )


def finish_run(run: Run, kind: str, passed: bool) -> MigrationReport:
    state = project_run(run_events(run.events(), kind))
    failed = [f"{c.check}: {c.detail}" for c in state.checks_failed]
    result = ("rolled_back" if kind == "rollback" else "succeeded") if passed else "failed"
    run.journal.append(
        [
            RunFinished(
                result=result, error="" if passed else "validation failed: " + "; ".join(failed)
            )
        ]
    )
    return report_of(run, kind)


def _fail(run: Run, kind: str, exc: FtctlError) -> MigrationReport:
    run.journal.append([RunFinished(result="failed", error=exc.one_line())])
    return report_of(run, kind)


def _interrupted(run: Run, kind: str) -> None:
    state = project_run(run_events(run.events(), kind))
    step = next((s for s in reversed(state.steps_started) if s not in state.steps_finished), "")
    run.journal.append([InterruptedEvent(step=step)])


def report_of(run: Run, kind: str = "apply") -> MigrationReport:
    warnings = run.plan.warnings if kind == "apply" else []
    return project_report(run.events(), backup_dir=run.directory, warnings=warnings, kind=kind)


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


def stopped_run(run: Run, kind: str, exc: BaseException) -> MigrationReport:
    """Journal how a run ended early: interrupted (raise, resumable), refused (raise, nothing
    changed) or failed (return the report, result ``failed``)."""
    if isinstance(exc, Interrupted | KeyboardInterrupt | asyncio.CancelledError):
        _interrupted(run, kind)
        raise Interrupted(
            f"interrupted; the journal in {run.directory} records where",
            f"resume with: ftctl migrate resume --backup-dir {run.directory.parent}",
        ) from None
    if isinstance(exc, RefusedError | UsageError):
        run.journal.append([RunFinished(result="refused", error=exc.one_line())])
        raise exc
    if isinstance(exc, FtctlError):
        return _fail(run, kind, exc)
    raise exc


def _run_sync(
    run: Run,
    kind: str,
    client: redis.Redis,
    options: Options,
    build: Callable[[Run, JournalTap, Options], Step[bool]],
) -> MigrationReport:
    tap = JournalTap(run.journal, progress=options.progress)
    driver = SyncDriver(
        client,
        tap,
        workers=options.workers,
        connect_worker=_worker_factory(client),
        stop=tap.stop,
    )
    try:
        with ctrl_c_stops(tap.stop):
            passed = driver.run(build(run, tap, options))
    except (FtctlError, KeyboardInterrupt) as exc:
        return stopped_run(run, kind, exc)
    finally:
        driver.close()
    return finish_run(run, kind, passed)


async def _run_async(
    run: Run,
    kind: str,
    client: redis.asyncio.Redis,
    options: Options,
    build: Callable[[Run, JournalTap, Options], Step[bool]],
) -> MigrationReport:
    tap = JournalTap(run.journal, progress=options.progress)
    driver = AsyncDriver(
        client,
        tap,
        workers=options.workers,
        connect_worker=_async_worker_factory(client),
        stop=tap.stop,
    )
    try:
        with _async_ctrl_c_stops(tap.stop):
            passed = await driver.run(build(run, tap, options))
    except (FtctlError, KeyboardInterrupt, asyncio.CancelledError) as exc:
        return stopped_run(run, kind, exc)
    finally:
        await driver.close()
    return finish_run(run, kind, passed)


def _plan_of(plan: MigrationPlan | str | os.PathLike[str]) -> MigrationPlan:
    return plan if isinstance(plan, MigrationPlan) else load_plan(Path(plan))


def _already_done(run: Run, kind: str) -> MigrationReport | None:
    state = project_run(run_events(run.events()[:-1], kind))
    done = "succeeded" if kind == "apply" else "rolled_back"
    if state.result == done:
        run.journal.append([RunFinished(result=done, error="")])
        return report_of(run, kind)
    return None


class MigrationExecutor:
    """Applies a plan with redis-py; the same API as RedisVL's executor."""

    def apply(
        self,
        plan: MigrationPlan | str | os.PathLike[str],
        *,
        redis_url: str | None = None,
        client: redis.Redis | None = None,
        backup_dir: str | os.PathLike[str],
        batch_size: int = 500,
        num_workers: int = 1,
        progress_callback: ProgressCallback | None = None,
        accept_data_loss: bool = False,
        timeout: float = 3600.0,
    ) -> MigrationReport:
        """Apply (or resume) ``plan``; returns the report (``result`` says how it ended).

        Raises RefusedError (nothing changed) for a blocked plan, a lossy plan without
        ``accept_data_loss``, a backup dir of another plan, or a failed preflight; Interrupted
        on Ctrl+C (at a batch boundary, resumable).
        """
        resolved = _plan_of(plan)
        check_plan(resolved, accept_data_loss=accept_data_loss)
        options = Options(
            batch_size, num_workers, timeout, False, accept_data_loss, progress_callback
        )
        redis_client = client or connect(redis_url, protocol=RUN_PROTOCOL)
        url = redis_url or client_url(redis_client)
        run = open_for_apply(resolved, backup_dir, url, options.as_dict())
        try:
            done = _already_done(run, "apply")
            if done is not None:
                return done
            if run.plan.mode == "online":  # ftctl.online: shadow index + cut-over
                from ftctl.online import run_online

                return run_online(run, "apply", redis_client, options)
            return _run_sync(run, "apply", redis_client, options, _apply_step)
        finally:
            run.journal.close()
            if client is None:
                redis_client.close()

    def resume(
        self,
        backup_dir: str | os.PathLike[str],
        *,
        index: str | None = None,
        redis_url: str | None = None,
        client: redis.Redis | None = None,
        batch_size: int = 500,
        num_workers: int = 1,
        progress_callback: ProgressCallback | None = None,
        accept_data_loss: bool = True,
        timeout: float = 3600.0,
    ) -> MigrationReport:
        """Resume the apply recorded in ``backup_dir`` from its journal alone."""
        directory = only_journal(backup_dir, index)
        redis_client = client or connect(redis_url, protocol=RUN_PROTOCOL)
        url = redis_url or client_url(redis_client)
        options = Options(
            batch_size, num_workers, timeout, False, accept_data_loss, progress_callback
        )
        run = open_existing(directory, "apply", url, options.as_dict())
        try:
            if "rollback" in project_run(run.events()).runs:
                raise RefusedError(
                    f"{directory} holds a migration that was rolled back",
                    "resume the rollback with 'ftctl migrate rollback', or apply into a new --backup-dir",
                )
            check_plan(run.plan, accept_data_loss=accept_data_loss)
            done = _already_done(run, "apply")
            if done is not None:
                return done
            if run.plan.mode == "online":  # ftctl.online: shadow index + cut-over
                from ftctl.online import run_online

                return run_online(run, "apply", redis_client, options)
            return _run_sync(run, "apply", redis_client, options, _apply_step)
        finally:
            run.journal.close()
            if client is None:
                redis_client.close()


class AsyncMigrationExecutor:
    """The asyncio twin of :class:`MigrationExecutor` (same steps, asyncio driver)."""

    async def apply(
        self,
        plan: MigrationPlan | str | os.PathLike[str],
        *,
        redis_url: str | None = None,
        client: redis.asyncio.Redis | None = None,
        backup_dir: str | os.PathLike[str],
        batch_size: int = 500,
        num_workers: int = 1,
        progress_callback: ProgressCallback | None = None,
        accept_data_loss: bool = False,
        timeout: float = 3600.0,
    ) -> MigrationReport:
        """Apply (or resume) ``plan``; see :meth:`MigrationExecutor.apply`."""
        resolved = _plan_of(plan)
        check_plan(resolved, accept_data_loss=accept_data_loss)
        options = Options(
            batch_size, num_workers, timeout, False, accept_data_loss, progress_callback
        )
        redis_client = client or await async_connect(redis_url, protocol=RUN_PROTOCOL)
        url = redis_url or client_url(redis_client)

        run = await asyncio.to_thread(open_for_apply, resolved, backup_dir, url, options.as_dict())
        try:
            done = _already_done(run, "apply")
            if done is not None:
                return done
            if run.plan.mode == "online":
                raise RefusedError(
                    "online plans run with the sync executor in this version",
                    "use MigrationExecutor (or 'ftctl migrate apply' without --async)",
                )
            return await _run_async(run, "apply", redis_client, options, _apply_step)
        finally:
            run.journal.close()
            if client is None:
                await redis_client.aclose()


def client_url(client: redis.Redis | redis.asyncio.Redis) -> str:
    kwargs = client.connection_pool.connection_kwargs
    if "path" in kwargs:
        return f"unix://{kwargs['path']}"
    return f"redis://{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}/{kwargs.get('db', 0)}"


def rollback(
    backup_dir: str | os.PathLike[str],
    *,
    index: str | None = None,
    redis_url: str | None = None,
    client: redis.Redis | None = None,
    force: bool = False,
    batch_size: int = 500,
    num_workers: int = 1,
    progress_callback: ProgressCallback | None = None,
    timeout: float = 3600.0,
) -> MigrationReport:
    """Undo the migration recorded in ``backup_dir`` from its journal alone.

    Restores vector bytes (never over a later write unless ``force``), renames keys and fields
    back, drops the target index, recreates the source index, waits and validates it.
    Journaled and resumable like apply.
    """
    directory = only_journal(backup_dir, index)
    redis_client = client or connect(redis_url, protocol=RUN_PROTOCOL)
    url = redis_url or client_url(redis_client)
    options = Options(batch_size, num_workers, timeout, force, True, progress_callback)
    run = open_existing(directory, "rollback", url, options.as_dict())
    try:
        if not run.applied().steps_started:
            raise RefusedError(
                f"the migration in {directory} never started: nothing to roll back",
                "nothing was changed by it",
            )
        done = _already_done(run, "rollback")
        if done is not None:
            return done
        if run.plan.mode == "online":  # ftctl.online: shadow index + cut-over
            from ftctl.online import run_online

            return run_online(run, "rollback", redis_client, options)
        return _run_sync(run, "rollback", redis_client, options, _rollback_step)
    finally:
        run.journal.close()
        if client is None:
            redis_client.close()


__all__ = [
    "FAULT_ENV",
    "FAULT_SIGNAL_ENV",
    "AsyncMigrationExecutor",
    "MigrationExecutor",
    "MigrationFailed",
    "ProgressCallback",
    "check_plan",
    "find_journals",
    "rollback",
    "spec_from_plan",
]
