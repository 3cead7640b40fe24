"""BatchMigrationPlanner / BatchMigrationExecutor: one shared patch over many indexes.

Planning snapshots and plans each selected index with the single-index planner's steps and
its pure :func:`~ftctl.plan.build.build_plan`; every applicable index gets a full
:class:`~ftctl.plan.models.MigrationPlan` written to ``plans/<index>.yaml`` beside the batch
plan, referenced there by path and sha256. Applying runs exactly those reviewed plans, one
index after another, each through :class:`~ftctl.executor.MigrationExecutor` with its own
journal; the batch's own journal (``<backup-dir>/batch-<batch_id>/journal.log``) records
each index's start, end and journal. ``batch_state.yaml`` and ``batch_report.yaml`` are
rendered from that journal after every event (see :mod:`ftctl.journal.batch`).

This module is the orchestration only: the batch plan itself (selection, overlap check,
classification, the YAML) is pure and lives in :mod:`ftctl.plan.batch`; the server read is
the sans-IO :func:`~ftctl.steps.batch.batch_snapshot_step`; ``batch-status`` text is the
CLI's. What stays here is what touches Redis clients or files: writing the plans, the batch
journal and the state/report files rendered from it.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import msgspec
import redis
import structlog

from ftctl.drivers import SyncDriver, client_url, connect, given_client, mask_url
from ftctl.drivers.connect import resolve_url
from ftctl.errors import FtctlError, Interrupted, RefusedError, UsageError
from ftctl.executor import MigrationExecutor, check_plan
from ftctl.journal import Journal, RunFinished, RunStarted
from ftctl.journal.backup import default_backup_root, ensure_backup_dir
from ftctl.journal.batch import (
    FAILED,
    SUCCESS,
    BatchIndexEntry,
    BatchIndexFinished,
    BatchIndexInterrupted,
    BatchIndexStarted,
    BatchProgress,
    BatchReport,
    BatchStarted,
    BatchState,
    IndexProgress,
    project_batch,
    project_batch_report,
    project_batch_state,
)
from ftctl.journal.events import AnyEvent, BatchIndexStatus, BatchRunStarted, RunResult
from ftctl.journal.layout import (
    backup_root,
    batch_dir_name,
    index_dir_name,
    is_batch_journal,
    journal_dirs,
)
from ftctl.journal.report import MigrationReport
from ftctl.logs import get_logger
from ftctl.plan.batch import (
    BatchPlan,
    BatchPlanIndex,
    FailurePolicy,
    batch_plan_digest,
    classify,
    dump_batch_plan,
    load_batch_plan,
    new_batch_id,
)
from ftctl.plan.models import (
    MigrationPlan,
    SchemaPatch,
    dump_plan,
    load_patch,
    load_plan,
    plan_digest,
)
from ftctl.runs import RUN_PROTOCOL, journal_dir, note_recovered, report_of
from ftctl.steps.batch import batch_snapshot_step, sealed_batch
from ftctl.version import ftctl_version

BatchProgressCallback = Callable[[str, int, int, str], None]
"""``(index name, position, total, status)``; status is ``starting`` (RedisVL's word), then
``success`` or ``failed``."""

PLANS_DIR = "plans"
BATCH_JOURNAL_PREFIX = "batch-"
REPORT_NAME = "batch_report.yaml"

log = get_logger("ftctl.batch")


# --- writing the batch plan -----------------------------------------------------------------


def _plan_file_name(name: str) -> str:
    """``<name>.yaml`` for ordinary names; any other name is made one safe, bounded,
    collision-free file name (:func:`~ftctl.journal.layout.index_dir_name`)."""
    return index_dir_name(name) + ".yaml"


def write_batch_plan(batch: BatchPlan, path: str | os.PathLike[str]) -> BatchPlan:
    """Write each applicable index's plan to ``plans/<index>.yaml`` beside ``path``, then the
    batch plan referencing them by relative path and sha256; returns the plan as written."""
    target = Path(path)
    plans_dir = target.parent / PLANS_DIR
    entries: list[BatchPlanIndex] = []
    used: set[str] = set()
    try:
        for entry in batch.indexes:
            if not entry.applicable:
                entries.append(entry)
                continue
            plan = batch.plans.get(entry.name)
            if plan is None:
                raise UsageError(
                    f"the batch plan has no plan for index '{entry.name}'",
                    "create it with BatchMigrationPlanner().create_batch_plan",
                )
            file_name = _plan_file_name(entry.name)
            while file_name in used:
                file_name = "_" + file_name
            used.add(file_name)
            plans_dir.mkdir(parents=True, exist_ok=True)
            data = dump_plan(plan)
            (plans_dir / file_name).write_bytes(data)
            digest = plan_digest(load_plan(data))
            entries.append(
                msgspec.structs.replace(
                    entry, plan_path=f"{PLANS_DIR}/{file_name}", plan_sha256=digest
                )
            )
        written = msgspec.structs.replace(batch, indexes=entries, source_path=str(target.resolve()))
        target.write_bytes(dump_batch_plan(written))
    except OSError as exc:
        raise UsageError(
            f"cannot write the batch plan to '{target}': {exc.strerror}", "check --plan-out"
        ) from None
    return written


# --- planning -------------------------------------------------------------------------------


class BatchMigrationPlanner:
    """Plans one shared patch over many indexes (RedisVL's ``BatchMigrationPlanner``)."""

    def create_batch_plan(
        self,
        *,
        redis_url: str | None = None,
        redis_client: redis.Redis | None = None,
        pattern: str | None = None,
        indexes: str | Sequence[str] | None = None,
        indexes_file: str | os.PathLike[str] | None = None,
        schema_patch_path: str | os.PathLike[str] | None = None,
        schema_patch: SchemaPatch | None = None,
        failure_policy: FailurePolicy = "fail_fast",
        plan_out: str | os.PathLike[str] | None = None,
        batch_id: str | None = None,
    ) -> BatchPlan:
        """Snapshot and plan every selected index; changes nothing in Redis.

        With ``plan_out`` the batch plan and ``plans/<index>.yaml`` are written (the
        returned plan then carries their paths and digests). Raises
        :class:`~ftctl.plan.batch.OverlapError`
        (exit 2) when applicable indexes share key prefixes, or an outside index shares
        keys and a re-encoded vector field with one; UsageError for bad input.
        """
        if (schema_patch is None) == (schema_patch_path is None):
            raise UsageError("give exactly one schema patch", "use --schema-patch FILE")
        if failure_policy not in ("fail_fast", "continue_on_error"):
            raise UsageError(
                f"unknown failure policy '{failure_policy}'", "use fail_fast or continue_on_error"
            )
        patch = schema_patch if schema_patch is not None else load_patch(str(schema_patch_path))
        selector: dict[str, Any] = {
            "pattern": pattern,
            "indexes": indexes,
            "indexes_file": indexes_file,
        }
        url = resolve_url(redis_url) if redis_client is None else (redis_url or "")
        client = redis_client or connect(url)
        try:
            snapped, capabilities = SyncDriver(client).run(
                batch_snapshot_step(selector, patch, redis_url=mask_url(url))
            )
            now = datetime.now(UTC)
            batch = classify(
                snapped,
                patch,
                capabilities,
                batch_id=batch_id or new_batch_id(now),
                failure_policy=failure_policy,
                created_at=now.isoformat(timespec="seconds").replace("+00:00", "Z"),
                ftctl_version=ftctl_version(),
                redis_url=mask_url(url),
            )
            batch = SyncDriver(client).run(sealed_batch(batch))
        finally:
            if redis_client is None:
                client.close()
        if plan_out is not None:
            batch = write_batch_plan(batch, plan_out)
        return batch

    def write_batch_plan(self, batch_plan: BatchPlan, path: str | os.PathLike[str]) -> BatchPlan:
        """Write ``batch_plan`` and its per-index plans (RedisVL's ``write_batch_plan``);
        returns the plan as written (with the per-index plans' paths and digests)."""
        return write_batch_plan(batch_plan, path)


# --- files rendered from the batch journal -------------------------------------------------


def _write_atomic(path: Path, data: bytes) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as exc:
        raise UsageError(
            f"cannot write '{path}': {exc.strerror}", "check --state / --report-dir"
        ) from None


def batch_journal_dir(backup_dir: str | os.PathLike[str], batch_id: str) -> Path:
    """``<backup-dir>/batch-<batch_id>`` (DESIGN §4); an id that is not an ordinary name is
    made one safe entry of the backup dir (:func:`~ftctl.journal.layout.batch_dir_name`)."""
    return backup_root(backup_dir) / batch_dir_name(batch_id)


def render_state(events: Sequence[AnyEvent], journal: Path) -> bytes:
    """``batch_state.yaml`` bytes of a batch journal's events."""
    return msgspec.yaml.encode(project_batch_state(events, journal=str(journal)))


def render_report(events: Sequence[AnyEvent]) -> bytes:
    """``batch_report.yaml`` bytes of a batch journal's events."""
    return msgspec.yaml.encode(project_batch_report(events))


def write_rendered(events: Sequence[AnyEvent], journal: Path) -> tuple[Path, Path]:
    """Render state and report to the paths the latest run recorded; returns them."""
    options = project_batch(events).options
    state_path = Path(str(options.get("state_path", "batch_state.yaml")))
    report_path = Path(str(options.get("report_dir", "reports"))) / REPORT_NAME
    _write_atomic(state_path, render_state(events, journal))
    _write_atomic(report_path, render_report(events))
    return state_path, report_path


def load_state(path: str | os.PathLike[str]) -> BatchState:
    """Read ``batch_state.yaml``; a missing or bad file is a UsageError."""
    try:
        return msgspec.yaml.decode(Path(path).read_bytes(), type=BatchState)
    except OSError as exc:
        raise UsageError(
            f"cannot read batch state '{path}': {exc.strerror}",
            "pass the --state written by batch-apply, or --backup-dir to read the journal",
        ) from None
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise UsageError(f"'{path}' is not a batch state file: {exc}", "check --state") from None


def find_batch_journal(
    state_path: str | os.PathLike[str] | None = None,
    backup_dir: str | os.PathLike[str] | None = None,
) -> Path:
    """The batch journal directory: from the state file, else the only one in ``backup_dir``."""
    if state_path is not None and Path(state_path).is_file():
        state = load_state(state_path)
        journal = Path(state.journal)
        if backup_dir is not None and Path(backup_dir).resolve() != Path(state.backup_dir):
            raise RefusedError(
                f"the checkpoint {state_path} belongs to backup dir {state.backup_dir}, "
                f"not {Path(backup_dir).resolve()}",
                "resume with the backup dir the batch was applied with (or omit --backup-dir)",
            )
        if state.journal and Journal.exists(journal):
            if not is_batch_journal(journal):
                raise UsageError(
                    f"the checkpoint {state_path} names {journal}, which is not a batch journal",
                    "pass the --state written by batch-apply, or --backup-dir",
                )
            return journal
    if backup_dir is None:
        if state_path is not None:
            load_state(state_path)  # the error for a missing state file
        raise UsageError("no batch state and no backup dir", "pass --state or --backup-dir")
    found = [p for p in journal_dirs(backup_root(backup_dir)) if is_batch_journal(p)]
    if len(found) != 1:
        what = "no batch journal" if not found else f"{len(found)} batch journals"
        raise UsageError(
            f"{what} in {backup_dir}", "pass the --state written by the batch you mean"
        )
    return found[0]


def batch_status(
    state_path: str | os.PathLike[str] | None = None,
    *,
    backup_dir: str | os.PathLike[str] | None = None,
) -> BatchState:
    """The batch's state, projected from its journal (no Redis); the state file is only
    used to find the journal, and read as is when the journal is gone."""
    try:
        journal = find_batch_journal(state_path, backup_dir)
    except UsageError:
        if state_path is not None and Path(state_path).is_file():
            return load_state(state_path)
        raise
    return project_batch_state(Journal.read(journal), journal=str(journal))


def regenerate(
    state_path: str | os.PathLike[str] | None = None,
    *,
    backup_dir: str | os.PathLike[str] | None = None,
) -> tuple[Path, Path]:
    """Re-render ``batch_state.yaml`` and ``batch_report.yaml`` from the batch journal."""
    journal = find_batch_journal(state_path, backup_dir)
    return write_rendered(Journal.read(journal), journal)


# --- applying -------------------------------------------------------------------------------


@dataclass
class _Settings:
    client: redis.Redis
    backup_dir: Path
    accept_data_loss: bool
    batch_size: int
    num_workers: int
    timeout: float
    retry_failed: bool
    progress: BatchProgressCallback | None
    allow_other_server: bool = False


def _resolve_plan(entry: IndexProgress, backup_dir: Path) -> MigrationPlan:
    """The reviewed plan of an index, checked against the digest recorded at batch-plan.

    When its file is gone, the plan embedded in the index's own journal is used if it has the
    same digest (an index interrupted mid-migration resumes from its journal alone).
    """
    try:
        plan = load_plan(Path(entry.plan_path))
    except UsageError:
        index_dir = journal_dir(backup_dir, entry.name)
        if not Journal.exists(index_dir) and not entry.plan_sha256:
            raise UsageError(
                f"the batch plan has no reviewed plan for index '{entry.name}'",
                "a batch plan written by RedisVL holds none (RedisVL plans each index while "
                "it applies): run batch-plan with ftctl, which writes plans/<index>.yaml",
            ) from None
        if not Journal.exists(index_dir):
            raise
        first = Journal.read(index_dir)[0]
        assert isinstance(first, RunStarted)
        plan = load_plan(first.plan_yaml.encode())
    digest = plan_digest(plan)
    if digest != entry.plan_sha256:
        raise RefusedError(
            f"the plan of index '{entry.name}' ({entry.plan_path}) changed after batch-plan "
            f"(sha256 {digest[:12]}…, batch plan says {entry.plan_sha256[:12]}…)",
            "re-run batch-plan and review the new plans",
        )
    if plan.index_name != entry.name:
        raise RefusedError(
            f"{entry.plan_path} plans index '{plan.index_name}', not '{entry.name}'",
            "re-run batch-plan",
        )
    return plan


class _BatchRun:
    """An open batch journal: appends events and re-renders the files after each one."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    def record(self, *events: Any) -> BatchProgress:
        self.journal.append(list(events))
        all_events = self.journal.events()
        write_rendered(all_events, self.journal.directory)
        return project_batch(all_events)

    def progress(self) -> BatchProgress:
        return project_batch(self.journal.events())


def _index_report(
    name: str, backup_dir: Path, report_dir: Path, report: MigrationReport | None
) -> str:
    index_dir = journal_dir(backup_dir, name)
    if report is None:
        if not Journal.exists(index_dir):
            return ""
        events = Journal.read(index_dir)
        first = events[0]
        assert isinstance(first, RunStarted)
        report = report_of(events, load_plan(first.plan_yaml.encode()), index_dir, "apply")
    path = report_dir / f"{index_dir_name(name)}_report.yaml"
    _write_atomic(path, msgspec.yaml.encode(report))
    return str(path)


def _run_batch(run: _BatchRun, plans: dict[str, MigrationPlan], settings: _Settings) -> BatchReport:
    """Run the batch's indexes in order; every log line of it carries ``batch_id``."""
    batch_id = run.progress().batch_id
    with structlog.contextvars.bound_contextvars(batch_id=batch_id):
        log.info("batch started", directory=str(run.journal.directory))
        report = _run_indexes(run, plans, settings)
        failed = [i.name for i in report.indexes if i.status == FAILED]
        finished = log.info if report.status == "completed" else log.error
        finished("batch finished", status=report.status, failed=failed or None)
        return report


def _run_indexes(
    run: _BatchRun, plans: dict[str, MigrationPlan], settings: _Settings
) -> BatchReport:
    progress = run.progress()
    applicable = [i for i in progress.indexes.values() if i.applicable]
    total = len(applicable)
    report_dir = Path(str(progress.options.get("report_dir", "reports")))
    policy = progress.failure_policy
    stopped = False
    try:
        for position, index in enumerate(applicable, start=1):
            retry = index.status == FAILED and settings.retry_failed
            if index.status in (SUCCESS, FAILED) and not retry:
                continue
            index_dir = journal_dir(settings.backup_dir, index.name)
            run.record(
                BatchIndexStarted(
                    name=index.name,
                    position=position,
                    total=total,
                    journal=str(index_dir),
                    plan_sha256=index.plan_sha256,
                    retry=retry,
                )
            )
            log.info(
                "batch index started", index=index.name, position=position, total=total,
                retry=retry,
            )  # fmt: skip
            if settings.progress is not None:
                settings.progress(index.name, position, total, "starting")
            report: MigrationReport | None = None
            error = ""
            result: RunResult | Literal[""] = ""
            try:
                report = MigrationExecutor().apply(
                    plans[index.name],
                    client=settings.client,
                    backup_dir=settings.backup_dir,
                    batch_size=settings.batch_size,
                    num_workers=settings.num_workers,
                    accept_data_loss=settings.accept_data_loss,
                    timeout=settings.timeout,
                    allow_other_server=settings.allow_other_server,
                )
                result, error = report.result, report.error
            except Interrupted as exc:
                run.record(BatchIndexInterrupted(name=index.name, error=exc.one_line()))
                raise
            except FtctlError as exc:
                result = "refused" if isinstance(exc, RefusedError | UsageError) else "failed"
                error = exc.one_line()
            status: BatchIndexStatus = "success" if result == "succeeded" else "failed"
            if status == FAILED and not error:
                error = f"migration {result}"
            report_path = _index_report(index.name, settings.backup_dir, report_dir, report)
            progress = run.record(
                BatchIndexFinished(
                    name=index.name,
                    status=status,
                    result=result,
                    error=error,
                    report_path=report_path,
                    journal=str(index_dir),
                )
            )
            finished = log.info if status == SUCCESS else log.error
            finished(
                "batch index finished", index=index.name, position=position, total=total,
                status=status, result=result or None, error=error or None,
            )  # fmt: skip
            if settings.progress is not None:
                settings.progress(index.name, position, total, status)
            if status == FAILED and policy == "fail_fast":
                stopped = True
                break
    except (Interrupted, KeyboardInterrupt):
        run.record(RunFinished(result="interrupted", error="interrupted by the user"))
        raise Interrupted(
            f"batch interrupted; its journal is in {run.journal.directory}",
            "continue with: ftctl migrate batch-resume --state <batch_state.yaml>",
        ) from None
    final = run.progress()
    failed = final.with_status(FAILED)
    run.record(
        RunFinished(
            result=final.status if not stopped else "stopped",
            error="; ".join(f"{i.name}: {i.error}" for i in failed),
        )
    )
    return project_batch_report(run.journal.events())


def _batch_run_started(
    batch: BatchPlan, url: str, options: dict[str, str | int | float | bool]
) -> BatchRunStarted:
    """The first event of each batch run: the batch plan as reviewed, and its digest."""
    return BatchRunStarted(
        run_id=secrets.token_hex(8),
        batch_id=batch.batch_id,
        plan_yaml=dump_batch_plan(batch).decode(),
        plan_sha256=batch_plan_digest(batch),
        mode=batch.mode,
        options=options,
        redis_url=mask_url(url),
        ftctl_version=ftctl_version(),
    )


def _check_runnable(
    progress: BatchProgress, backup_dir: Path, accept_data_loss: bool, retry_failed: bool
) -> dict[str, MigrationPlan]:
    """Load and check every plan this run may execute, before anything changes (exit 2)."""
    plans: dict[str, MigrationPlan] = {}
    for index in progress.indexes.values():
        if not index.applicable or index.status == SUCCESS:
            continue
        if index.status == FAILED and not retry_failed:
            continue
        plan = _resolve_plan(index, backup_dir)
        check_plan(plan, accept_data_loss=accept_data_loss)
        plans[index.name] = plan
    return plans


def _options(
    state_path: str | os.PathLike[str],
    report_dir: str | os.PathLike[str],
    settings: _Settings,
) -> dict[str, str | int | float | bool]:
    return {
        "state_path": str(Path(state_path).resolve()),
        "report_dir": str(Path(report_dir).resolve()),
        "accept_data_loss": settings.accept_data_loss,
        "retry_failed": settings.retry_failed,
        "batch_size": settings.batch_size,
        "workers": settings.num_workers,
    }


class RedisVLCompleted(msgspec.Struct, frozen=True, kw_only=True):
    """An index entry of a RedisVL ``batch_state.yaml`` (its ``completed`` list)."""

    name: str
    status: str
    error: str | None = None
    report_path: str | None = None


class RedisVLCheckpoint(msgspec.Struct, frozen=True, kw_only=True):
    """A ``batch_state.yaml`` written by RedisVL's batch executor (no journal behind it)."""

    batch_id: str = ""
    plan_path: str = ""
    backup_dir: str | None = None
    completed: list[RedisVLCompleted] = msgspec.field(default_factory=list)
    current_index: str | None = None
    remaining: list[str] = msgspec.field(default_factory=list)


def redisvl_checkpoint(path: str | os.PathLike[str]) -> RedisVLCheckpoint | None:
    """The RedisVL checkpoint at ``path``; None when there is no file or it is ftctl's own
    (ftctl's state names its batch journal, RedisVL's has no ``journal`` key)."""
    try:
        raw = msgspec.yaml.decode(Path(path).read_bytes())
    except (OSError, msgspec.DecodeError):
        return None
    if not isinstance(raw, dict) or "journal" in raw or "remaining" not in raw:
        return None
    try:
        return msgspec.convert(raw, RedisVLCheckpoint)
    except msgspec.ValidationError as exc:
        raise UsageError(f"'{path}' is not a batch state file: {exc}", "check --state") from None


def _accepts(accept_data_loss: bool | None) -> bool:
    """The Python API runs reviewed lossy plans unless told not to (RedisVL's batch executor
    has no such flag); the CLI passes its ``--accept-data-loss`` as True or False."""
    return True if accept_data_loss is None else accept_data_loss


def _with_source(batch: BatchPlan, batch_plan_path: str | os.PathLike[str] | None) -> BatchPlan:
    """A batch plan built in memory, told where its file is (per-index plan paths are
    relative to it, and the batch journal records it)."""
    if batch_plan_path is None or batch.source_path:
        return batch
    return msgspec.structs.replace(batch, source_path=str(Path(batch_plan_path).resolve()))


class BatchMigrationExecutor:
    """Applies a batch plan index by index, journaled (RedisVL's ``BatchMigrationExecutor``).

    A client may be passed as ``redis_client=`` (RedisVL's name) or ``client=`` (its alias).
    """

    def apply(
        self,
        batch_plan: BatchPlan | str | os.PathLike[str],
        *,
        batch_plan_path: str | os.PathLike[str] | None = None,
        redis_url: str | None = None,
        redis_client: redis.Redis | None = None,
        client: redis.Redis | None = None,
        backup_dir: str | os.PathLike[str] | None = None,
        state_path: str | os.PathLike[str] = "batch_state.yaml",
        report_dir: str | os.PathLike[str] = "./reports/",
        accept_data_loss: bool | None = None,
        batch_size: int = 500,
        num_workers: int = 1,
        timeout: float = 3600.0,
        progress_callback: BatchProgressCallback | None = None,
        allow_other_server: bool = False,
    ) -> BatchReport:
        """Run every applicable index's reviewed plan, one after another.

        Re-running with the same batch plan and backup dir continues it. ``backup_dir`` left
        out: ``<default backup root>/<batch_id>`` (see :mod:`ftctl.journal.backup`).
        ``accept_data_loss``: None (the Python default, as RedisVL's executor) runs reviewed
        lossy plans; False refuses them (``batch-apply`` without ``--accept-data-loss``).
        Raises BackupDirError (a ValueError) for a backup dir that cannot be written,
        RefusedError (a ValueError; nothing changed) when a per-index plan no longer matches
        its digest, a lossy plan is refused, or the backup dir holds another batch plan;
        Interrupted on Ctrl+C. Failed indexes are in the returned report (``status``).
        Each index's apply refuses another server than the one the batch was planned on
        (recorded as a refused index) unless ``allow_other_server``.
        """
        if backup_dir is not None:
            backup_root(backup_dir)  # an empty one would mean the current directory
        batch = batch_plan if isinstance(batch_plan, BatchPlan) else load_batch_plan(batch_plan)
        batch = _with_source(batch, batch_plan_path)
        return self._start(
            batch,
            _batch_root(batch, backup_dir),
            redis_url=redis_url,
            client=given_client(redis_client, client),
            state_path=state_path,
            report_dir=report_dir,
            accept_data_loss=_accepts(accept_data_loss),
            batch_size=batch_size,
            num_workers=num_workers,
            timeout=timeout,
            progress_callback=progress_callback,
            allow_other_server=allow_other_server,
        )

    def _start(
        self,
        batch: BatchPlan,
        root: Path,
        *,
        redis_url: str | None,
        client: redis.Redis | None,
        state_path: str | os.PathLike[str],
        report_dir: str | os.PathLike[str],
        accept_data_loss: bool,
        batch_size: int,
        num_workers: int,
        timeout: float,
        progress_callback: BatchProgressCallback | None,
        imported: Sequence[AnyEvent] = (),
        retry_failed: bool = False,
        allow_other_server: bool = False,
    ) -> BatchReport:
        """Open (or create) the batch journal of ``batch`` in ``root`` and run it.

        ``imported``: events recorded right after the batch's start in a new journal (the
        indexes a RedisVL checkpoint says are done).
        """
        base = Path(batch.source_path).parent if batch.source_path else Path.cwd()
        entries = [
            BatchIndexEntry(
                name=i.name,
                applicable=i.applicable,
                skip_reason=i.skip_reason,
                plan_path=str((base / i.plan_path).resolve()) if i.plan_path else "",
                plan_sha256=i.plan_sha256 or "",
            )
            for i in batch.indexes
        ]
        started = BatchStarted(
            batch_id=batch.batch_id,
            plan_path=batch.source_path,
            backup_dir=str(root),
            failure_policy=batch.failure_policy,
            indexes=entries,
        )
        preview = project_batch([started, *imported])
        plans = {
            name: plan
            for name, plan in batch.plans.items()
            if plan_digest(plan) == next((e.plan_sha256 for e in entries if e.name == name), "")
        }
        for entry in preview.indexes.values():
            if not entry.applicable or entry.status == SUCCESS:
                continue
            if entry.name not in plans:
                plans[entry.name] = _resolve_plan(entry, root)
            check_plan(plans[entry.name], accept_data_loss=accept_data_loss)
        opened = client or connect(redis_url, protocol=RUN_PROTOCOL)
        try:
            ensure_backup_dir(root)
        except BaseException:
            if client is None:
                opened.close()
            raise
        settings = _Settings(
            opened,
            root,
            accept_data_loss,
            batch_size,
            num_workers,
            timeout,
            retry_failed,
            progress_callback,
            allow_other_server,
        )
        url = redis_url or client_url(opened)
        first = _batch_run_started(batch, url, _options(state_path, report_dir, settings))
        directory = batch_journal_dir(root, batch.batch_id)
        try:
            if Journal.exists(directory):
                journal = Journal.open(directory)
                note_recovered(journal)
                if journal.first.plan_sha256 != first.plan_sha256:
                    journal.close()
                    raise RefusedError(
                        f"backup does not match batch plan: {directory} holds another batch plan",
                        "use a new --backup-dir, or batch-resume the batch it holds",
                    )
                journal.append([first])
            else:
                journal = Journal.create(directory, first=first)
            try:
                run = _BatchRun(journal)
                if not any(isinstance(e, BatchStarted) for e in journal.events()):
                    run.record(started, *imported)
                else:
                    run.record()
                return _run_batch(run, plans, settings)
            finally:
                journal.close()
        finally:
            if client is None:
                opened.close()

    def resume(
        self,
        state_path: str | os.PathLike[str] = "batch_state.yaml",
        *,
        batch_plan_path: str | os.PathLike[str] | None = None,
        backup_dir: str | os.PathLike[str] | None = None,
        retry_failed: bool = False,
        accept_data_loss: bool | None = None,
        redis_url: str | None = None,
        redis_client: redis.Redis | None = None,
        client: redis.Redis | None = None,
        report_dir: str | os.PathLike[str] | None = None,
        batch_size: int = 500,
        num_workers: int = 1,
        timeout: float = 3600.0,
        progress_callback: BatchProgressCallback | None = None,
        allow_other_server: bool = False,
    ) -> BatchReport:
        """Continue the batch recorded by ``state_path`` (its journal is the truth).

        An index interrupted mid-migration resumes from its own journal; ``retry_failed``
        runs failed indexes again. A ``backup_dir`` other than the checkpoint's is refused.
        A ``batch_state.yaml`` written by RedisVL (no journal behind it) is taken over: the
        batch plan comes from ``batch_plan_path`` (or the state's ``plan_path``), the
        indexes it lists as completed keep their status, the others run.
        """
        if backup_dir is not None:
            backup_root(backup_dir)  # an empty one would mean the current directory
        accept = _accepts(accept_data_loss)
        checkpoint = redisvl_checkpoint(state_path)
        if checkpoint is not None:
            directory = self._adopted_journal(checkpoint, batch_plan_path, backup_dir)
            if isinstance(directory, tuple):
                batch, root, imported = directory
                return self._start(
                    batch,
                    root,
                    redis_url=redis_url,
                    client=given_client(redis_client, client),
                    state_path=state_path,
                    report_dir=report_dir or "./reports/",
                    accept_data_loss=accept,
                    batch_size=batch_size,
                    num_workers=num_workers,
                    timeout=timeout,
                    progress_callback=progress_callback,
                    imported=imported,
                    retry_failed=retry_failed,
                    allow_other_server=allow_other_server,
                )
        else:
            directory = find_batch_journal(state_path, backup_dir)
        recorded = project_batch(Journal.read(directory))
        if backup_dir is not None and Path(backup_dir).resolve() != Path(recorded.backup_dir):
            raise RefusedError(
                f"the batch in {directory} was applied with backup dir {recorded.backup_dir}, "
                f"not {Path(backup_dir).resolve()}",
                "resume with the backup dir the batch was applied with (or omit --backup-dir)",
            )
        root = Path(recorded.backup_dir)
        plans = _check_runnable(recorded, root, accept, retry_failed)
        given = given_client(redis_client, client)
        opened = given or connect(redis_url, protocol=RUN_PROTOCOL)
        settings = _Settings(
            opened,
            root,
            accept,
            batch_size,
            num_workers,
            timeout,
            retry_failed,
            progress_callback,
            allow_other_server,
        )
        previous_reports = str(recorded.options.get("report_dir", "reports"))
        try:
            journal = Journal.open(directory)
            try:
                note_recovered(journal)
                batch = load_batch_plan(journal.first.plan_yaml.encode())
                batch = msgspec.structs.replace(batch, source_path=recorded.plan_path)
                url = redis_url or client_url(opened)
                options = _options(state_path, report_dir or previous_reports, settings)
                run = _BatchRun(journal)
                run.record(_batch_run_started(batch, url, options))
                return _run_batch(run, plans, settings)
            finally:
                journal.close()
        finally:
            if given is None:
                opened.close()

    def _adopted_journal(
        self,
        checkpoint: RedisVLCheckpoint,
        batch_plan_path: str | os.PathLike[str] | None,
        backup_dir: str | os.PathLike[str] | None,
    ) -> Path | tuple[BatchPlan, Path, list[AnyEvent]]:
        """A RedisVL checkpoint's batch: its journal when ftctl already took it over, else
        (batch plan, backup dir, the events recording what the checkpoint says is done)."""
        plan_path = batch_plan_path or checkpoint.plan_path
        if not str(plan_path).strip():
            raise UsageError(
                "the checkpoint names no batch plan",
                "pass batch_plan_path= (or --plan) with the batch plan the checkpoint belongs to",
            )
        batch = _with_source(load_batch_plan(plan_path), plan_path)
        if checkpoint.batch_id and checkpoint.batch_id != batch.batch_id:
            raise RefusedError(
                f"the checkpoint's batch_id '{checkpoint.batch_id}' does not match the batch "
                f"plan's '{batch.batch_id}'",
                "pass the batch plan the checkpoint belongs to, or use another state file",
            )
        if (
            checkpoint.backup_dir
            and backup_dir is not None
            and Path(checkpoint.backup_dir).resolve() != Path(backup_dir).resolve()
        ):
            raise RefusedError(
                f"the checkpoint's backup_dir '{checkpoint.backup_dir}' is not '{backup_dir}'",
                "resume with the checkpoint's backup dir (or leave backup_dir out)",
            )
        root = _batch_root(batch, backup_dir or checkpoint.backup_dir)
        directory = batch_journal_dir(root, batch.batch_id)
        if Journal.exists(directory):
            return directory
        applicable = {i.name for i in batch.indexes if i.applicable}
        imported: list[AnyEvent] = [
            BatchIndexFinished(
                name=c.name,
                status="success" if c.status == SUCCESS else "failed",
                error="" if c.status == SUCCESS else (c.error or "failed"),
                report_path=c.report_path or "",
            )
            for c in checkpoint.completed
            if c.name in applicable and c.status in (SUCCESS, FAILED)
        ]
        return batch, root, imported


def _batch_root(batch: BatchPlan, backup_dir: str | os.PathLike[str] | None) -> Path:
    """The batch's backup dir, absolute (default: ``<backup root>/<batch_id>``); created and
    checked writable by the run once Redis has answered."""
    given = Path(backup_dir) if backup_dir is not None else default_backup_root() / batch.batch_id
    return given.expanduser().resolve()


__all__ = [
    "BATCH_JOURNAL_PREFIX",
    "PLANS_DIR",
    "REPORT_NAME",
    "BatchMigrationExecutor",
    "BatchMigrationPlanner",
    "BatchProgressCallback",
    "RedisVLCheckpoint",
    "batch_journal_dir",
    "batch_status",
    "find_batch_journal",
    "load_state",
    "redisvl_checkpoint",
    "regenerate",
    "render_report",
    "render_state",
    "write_batch_plan",
    "write_rendered",
]
