"""MigrationExecutor / AsyncMigrationExecutor: every verb of a journaled migration.

``apply`` (re-running it resumes), ``resume`` (from the journal alone), ``rollback``,
``cutover`` and ``abort`` (the operator gate of an online plan). Each verb opens the journal
in ``<backup_dir>/<index>/`` and hands it to :mod:`ftctl.runs`, which walks the mode's step
table with the sync or the asyncio driver; that driver is the only difference between the
two executors. Reports are projections of the journal's events.

Every verb takes ``redis_url=`` or an open client as ``redis_client=`` (RedisVL's name;
``client=`` is kept as its alias). A client passed in is used as it is and left open.

``apply`` takes RedisVL 0.28's arguments with their meaning: a reviewed lossy plan runs
(the plan shows the measured recall); ``backup_dir`` may be left out (the journal then goes
to :func:`default_backup_dir`, and ``report.backup.backup_dir`` says where);
``query_check_file`` adds RedisVL's fetch and key checks to the validation, and runs the
user's own ``queries`` on the source before and on the target after; and
``progress_callback`` may be RedisVL's ``(step, detail)`` as well as ftctl's
``(step, done, total)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import re
from collections.abc import AsyncIterator, Callable, Iterator
from itertools import count
from pathlib import Path

import msgspec
import redis
import redis.asyncio
import structlog

from ftctl.drivers import AsyncDriver, SyncDriver, async_connect, connect
from ftctl.drivers.connect import client_url, given_client
from ftctl.errors import BackupDirError, MigrationFailed, RefusedError, UsageError
from ftctl.journal import Journal
from ftctl.journal.backup import VectorBackup, default_backup_root, ensure_backup_dir
from ftctl.journal.events import CutoverApproved, RunStarted, StepsReopened
from ftctl.journal.layout import backup_root
from ftctl.journal.projections import project_run, run_events
from ftctl.journal.report import MigrationReport
from ftctl.plan.integrity import derived_problems, digest_problem
from ftctl.plan.models import MigrationPlan, load_plan, plan_digest
from ftctl.plan.pacing import Pacing
from ftctl.plan.query_checks import QueryChecks, load_query_checks
from ftctl.runs import (
    FAULT_ENV,
    FAULT_SIGNAL_ENV,
    RUN_PROTOCOL,
    RUN_SOCKET_TIMEOUT,
    Options,
    PauseFlag,
    ProgressCallback,
    Run,
    drive_async,
    drive_sync,
    find_journals,
    journal_dir,
    only_journal,
    open_existing,
    open_for_apply,
    pause,
    rolled_back,
    unpause,
)
from ftctl.schema.compare import reported_differences
from ftctl.steps.effects import Step
from ftctl.steps.index_ops import live_info
from ftctl.steps.query_checks import extra_checks_for
from ftctl.steps.shape import ServerCheck, check_for_apply, check_for_run
from ftctl.steps.spec import run_spec
from ftctl.steps.user_queries import check_queries
from ftctl.text import printable

log = structlog.get_logger("ftctl.executor")


def check_reviewed(plan: MigrationPlan, *, allow_edited_plan: bool = False) -> None:
    """Refuse (exit 2) a plan whose content no longer matches its digest: it is not the plan
    that was reviewed. ``allow_edited_plan`` applies it as edited (its values are still
    re-validated by :func:`check_plan`). A plan without a digest (RedisVL's, or an earlier
    release's) passes with a warning."""
    if not plan.digest:
        log.warning(
            "the plan has no digest (written by RedisVL or an earlier ftctl): applied "
            "without checking that it is the plan as made, nor the server it was made for",
            index=printable(plan.index_name),
        )
        return
    problem = digest_problem(plan)
    if problem is None:
        return
    if not allow_edited_plan:
        raise RefusedError(
            problem,
            "re-create the plan with 'ftctl migrate plan' and review it, or pass "
            "--allow-edited-plan (allow_edited_plan=True) to apply it as edited",
        )
    log.warning("applying an edited plan (--allow-edited-plan)", detail=problem)


def check_plan(
    plan: MigrationPlan, *, accept_data_loss: bool = True, revalidate: bool = True
) -> None:
    """Refuse (exit 2, nothing changed) a plan that must not run.

    ``accept_data_loss=False`` also refuses a lossy plan (``batch-apply`` without
    ``--accept-data-loss``, as the guide's batch flags say); a single-index apply runs a
    reviewed lossy plan, as RedisVL's does.

    ``revalidate``: also refuse a plan whose derived values (supported, blocked reasons,
    vector changes and their lossiness, online) contradict its own schemas; resume skips it
    for a journal's plan, which was re-validated when it was applied.
    """
    if revalidate:
        problems = derived_problems(plan)
        if problems:
            raise RefusedError(
                f"the plan contradicts itself: {'; '.join(problems)}",
                "re-create the plan with 'ftctl migrate plan' (derived values are never edited)",
            )
    if not plan.supported:
        reasons = "; ".join(plan.diff_classification.blocked_reasons) or "no reason given"
        raise RefusedError(f"the plan is blocked: {reasons}", "fix the blocked changes and re-plan")
    if plan.mode == "online" and plan.online is None:
        raise RefusedError(
            "the plan says mode: online but has no online section",
            "re-plan with 'ftctl migrate plan --mode online'",
        )
    run_spec(plan)  # plan values the run relies on (datatypes, dims, renames) agree
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


def _plan_of(plan: MigrationPlan | str | os.PathLike[str]) -> MigrationPlan:
    return plan if isinstance(plan, MigrationPlan) else load_plan(Path(plan))


# --- RedisVL's arguments --------------------------------------------------------------------

RedisVLProgress = Callable[[str, "str | None"], None]
"""RedisVL's ``progress_callback(step, detail)``."""

REDISVL_STEPS = {
    "backup": "dump",
    "rename_fields": "field_rename",
    "rename_keys": "key_rename",
    "wait": "index",
}
"""ftctl step → RedisVL's phase name, where they differ (the others are the same)."""


def _positional_arity(callback: Callable[..., object]) -> int | None:
    """How many positional arguments ``callback`` takes (None: any number, or unknown)."""
    try:
        parameters = inspect.signature(callback).parameters.values()
    except (TypeError, ValueError):
        return None
    positional = 0
    for parameter in parameters:
        if parameter.kind is inspect.Parameter.VAR_POSITIONAL:
            return None
        if parameter.kind in (
            inspect.Parameter.POSITIONAL_ONLY,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
        ):
            positional += 1
    return positional


def progress_adapter(
    callback: ProgressCallback | RedisVLProgress | None,
) -> ProgressCallback | None:
    """ftctl's ``(step, done, total)`` callback as it is; RedisVL's ``(step, detail)`` one
    called with RedisVL's phase name and a ``"done/total docs"`` detail."""
    if callback is None or _positional_arity(callback) != 2:
        return callback  # type: ignore[return-value]  # ftctl's three-argument callback
    two: Callable[[str, str | None], None] = callback  # type: ignore[assignment]

    def adapted(step: str, done: int, total: int) -> None:
        two(REDISVL_STEPS.get(step, step), f"{done:,}/{total:,} docs")

    return adapted


def _query_checks(query_check_file: str | os.PathLike[str] | None) -> QueryChecks | None:
    return None if query_check_file is None else load_query_checks(query_check_file)


def _safe_name(index: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", index)


def _rolled_back_journal(directory: Path) -> bool:
    backup = VectorBackup.load(directory)
    return backup is not None and backup.rolled_back


def _numbered(base: Path, n: int) -> Path:
    return base if n == 1 else base.with_name(f"{base.name}-{n}")


def _default_dirs(plan: MigrationPlan) -> tuple[Path, list[Path]]:
    """The plan's first default backup dir, and those of them that hold its journal."""
    base = default_backup_root() / f"{_safe_name(plan.source.index_name)}-{plan_digest(plan)[:12]}"
    used: list[Path] = []
    for n in count(1):
        candidate = _numbered(base, n)
        if not Journal.exists(journal_dir(candidate, plan.source.index_name)):
            return base, used
        used.append(candidate)
    raise AssertionError("unreachable")  # pragma: no cover


def default_backup_dir(plan: MigrationPlan) -> Path:
    """Where ``apply`` keeps the journal of ``plan`` when given no ``backup_dir``.

    ``<root>/<index>-<first 12 hex of the plan's sha256>`` under
    :func:`~ftctl.journal.backup.default_backup_root` (``$FTCTL_BACKUP_DIR``, else
    ``$XDG_DATA_HOME/ftctl/backups``, else ``~/.local/share/ftctl/backups``): re-running
    the same plan finds (and resumes) its journal, another plan gets its own. A journal is
    never deleted: when the latest one was rolled back (or its migration was undone by hand,
    see :meth:`MigrationExecutor.apply`), the next run uses ``-2``, ``-3``….
    """
    base, used = _default_dirs(plan)
    if not used:
        return base
    if _rolled_back_journal(journal_dir(used[-1], plan.source.index_name)):
        return _numbered(base, len(used) + 1)
    return used[-1]


def _fresh_default_dir(plan: MigrationPlan) -> Path:
    base, used = _default_dirs(plan)
    return _numbered(base, len(used) + 1)


def _finished(plan: MigrationPlan, backup_dir: Path) -> bool:
    """Whether ``backup_dir`` holds this plan's apply, recorded as succeeded."""
    directory = journal_dir(backup_dir, plan.source.index_name)
    first = Journal.first_run(directory) if Journal.exists(directory) else None
    if first is None or first.plan_sha256 != plan_digest(plan):
        return False
    events = Journal.read(directory)
    return project_run(run_events(events, "apply")).result == "succeeded"


def reverted_step(plan: MigrationPlan) -> Step[bool]:
    """Whether the live index is the plan's source again (recreated by hand after the
    migration), rather than its target: a finished journal of the plan is then stale."""
    info = yield from live_info(plan.source.index_name)
    if info is None or reported_differences(plan.source.schema_snapshot, info.schema):
        return False
    return bool(reported_differences(plan.merged_target_schema, info.schema))


def _stale(backup_dir: Path) -> RefusedError:
    return RefusedError(
        f"{backup_dir} holds this plan's finished migration, but the live index matches the "
        "plan's source again (it was recreated after the migration)",
        "apply into a new backup_dir, or leave backup_dir out and ftctl picks a fresh one; "
        "RedisVL would delete that backup and start over, ftctl never deletes a journal",
    )


class _ApplyArgs:
    """apply's RedisVL-compatible arguments, resolved before anything runs."""

    def __init__(
        self,
        plan: MigrationPlan | str | os.PathLike[str],
        backup_dir: str | os.PathLike[str] | None,
        query_check_file: str | os.PathLike[str] | None,
        allow_edited_plan: bool = False,
    ) -> None:
        self.plan = _plan_of(plan)
        check_reviewed(self.plan, allow_edited_plan=allow_edited_plan)
        check_plan(self.plan)  # a reviewed lossy plan runs, as RedisVL's apply runs it
        self.checks = _query_checks(query_check_file)
        self.queries = tuple(self.checks.queries) if self.checks is not None else ()
        check_queries(run_spec(self.plan), self.queries)
        self.explicit = backup_dir is not None
        given = backup_root(backup_dir) if backup_dir is not None else default_backup_dir(self.plan)
        self.backup_dir = given.expanduser().resolve()

    def prepare(self) -> None:
        """Create the backup dir and prove it writable: once Redis answered, before anything
        runs (a server that cannot be reached leaves no directory behind)."""
        self.backup_dir = ensure_backup_dir(self.backup_dir)

    def retarget(self, reverted: bool) -> None:
        """A finished journal that the live index contradicts: refuse an explicit backup dir,
        move on from a default one to the next."""
        if not reverted:
            return
        if self.explicit:
            raise _stale(self.backup_dir)
        self.backup_dir = ensure_backup_dir(_fresh_default_dir(self.plan))


def _journal_plan(backup_dir: str | os.PathLike[str], index: str | None) -> MigrationPlan:
    """The plan a journal runs, read before the journal is opened (and locked)."""
    directory = only_journal(backup_dir, index)
    first = Journal.first_run(directory)
    if not isinstance(first, RunStarted):
        raise UsageError(f"{directory} holds no index migration", "pass the --backup-dir of one")
    return load_plan(first.plan_yaml.encode())


def _server_checked(check: ServerCheck) -> None:
    """Say what the server check could not establish (what it refuses, it raised)."""
    if check.unverified:
        log.warning(
            "ACL permissions not checked: the user may run neither MULTI nor ACL DRYRUN",
            user=check.shape.user or None,
        )


def _new_journal(plan: MigrationPlan, backup_dir: str | os.PathLike[str]) -> bool:
    """Whether this apply starts the plan's journal (a re-run resumes: the journal, not
    the plan, says which server it works on)."""
    try:
        return not Journal.exists(journal_dir(backup_dir, plan.source.index_name))
    except BackupDirError:
        return True  # creating the backup dir says what is wrong with it


def _apply_checked(
    plan: MigrationPlan,
    found: tuple[ServerCheck, str | None],
    *,
    identity: bool,
    allow_other_server: bool,
) -> None:
    """Refuse another server than the plan's unless ``allow_other_server``."""
    check, problem = found
    _server_checked(check)
    if identity and plan.server is None:
        log.warning(
            "the plan does not say which server it was made against: not checked",
            index=printable(plan.index_name),
        )
    if problem is None:
        return
    if not allow_other_server:
        raise RefusedError(
            problem,
            "re-plan against this server with 'ftctl migrate plan', or pass "
            "--allow-other-server (allow_other_server=True) if it is the same data",
        )
    log.warning("applying on another server (--allow-other-server)", detail=problem)


# --- what each verb opens (file work only; the same for both executors) --------------------


def _open_resume(
    backup_dir: str | os.PathLike[str], index: str | None, url: str, options: Options
) -> Run:
    directory = only_journal(backup_dir, index)
    run = open_existing(directory, "apply", url, options)
    try:
        if rolled_back(run):
            raise RefusedError(
                f"{directory} holds a migration that was rolled back",
                "resume the rollback with 'ftctl migrate rollback', or apply into a new --backup-dir",
            )
        check_plan(run.plan, accept_data_loss=options.accept_data_loss, revalidate=False)
    except BaseException:
        run.journal.close()
        raise
    options.extra_checks = extra_checks_for(run.plan)
    return run


def _open_rollback(
    backup_dir: str | os.PathLike[str], index: str | None, url: str, options: Options
) -> Run:
    directory = only_journal(backup_dir, index)
    run = open_existing(directory, "rollback", url, options)
    if not run.state("apply").steps_started:
        run.journal.close()
        raise RefusedError(
            f"the migration in {directory} never started: nothing to roll back",
            "nothing was changed by it",
        )
    if options.force:
        kept = [s for s, n in run.state("rollback").conflicts_by_step.items() if n]
        if kept:
            # An earlier attempt kept what others wrote: --force means overwrite it now.
            reason = "--force: restore over what others wrote"
            run.journal.append([StepsReopened(steps=[*kept, "validate_source"], reason=reason)])
    return run


def _online_only(run: Run) -> None:
    if run.plan.mode != "online":
        run.journal.close()
        raise RefusedError(
            f"the migration in {run.directory} is not an online migration",
            "cutover and abort apply to plans with mode: online",
        )


def _open_cutover(
    backup_dir: str | os.PathLike[str], index: str | None, url: str, options: Options
) -> Run:
    run = open_existing(only_journal(backup_dir, index), "apply", url, options)
    _online_only(run)
    try:
        if rolled_back(run):
            raise RefusedError(
                f"{run.directory} holds a migration that was aborted or rolled back",
                "apply the plan again into a new --backup-dir",
            )
        run.journal.append([CutoverApproved()])
    except BaseException:
        run.journal.close()
        raise
    options.extra_checks = extra_checks_for(run.plan)
    return run


def _open_abort(
    backup_dir: str | os.PathLike[str], index: str | None, url: str, options: Options
) -> Run:
    run = open_existing(only_journal(backup_dir, index), "rollback", url, options)
    _online_only(run)
    return run


# --- clients ---------------------------------------------------------------------------------


@contextlib.contextmanager
def _sync_client(url: str | None, client: redis.Redis | None) -> Iterator[tuple[redis.Redis, str]]:
    """The caller's client, or one opened (and closed) here; with the URL to record."""
    opened = client or connect(url, protocol=RUN_PROTOCOL, socket_timeout=RUN_SOCKET_TIMEOUT)
    try:
        yield opened, url or client_url(opened)
    finally:
        if client is None:
            opened.close()


@contextlib.asynccontextmanager
async def _async_client(
    url: str | None, client: redis.asyncio.Redis | None
) -> AsyncIterator[tuple[redis.asyncio.Redis, str]]:
    opened = client or await async_connect(
        url, protocol=RUN_PROTOCOL, socket_timeout=RUN_SOCKET_TIMEOUT
    )
    try:
        yield opened, url or client_url(opened)
    finally:
        if client is None:
            await opened.aclose()


class MigrationExecutor:
    """Applies, resumes, rolls back and cuts over plans with redis-py (RedisVL's executor API)."""

    def apply(
        self,
        plan: MigrationPlan | str | os.PathLike[str],
        *,
        redis_url: str | None = None,
        redis_client: redis.Redis | None = None,
        client: redis.Redis | None = None,
        backup_dir: str | os.PathLike[str] | None = None,
        batch_size: int = 500,
        num_workers: int = 1,
        progress_callback: ProgressCallback | RedisVLProgress | None = None,
        accept_data_loss: bool = True,
        timeout: float = 3600.0,
        skip_invalid_vectors: bool = False,
        reconnect_timeout: float = 60.0,
        query_check_file: str | os.PathLike[str] | None = None,
        allow_edited_plan: bool = False,
        allow_other_server: bool = False,
        pacing: Pacing | None = None,
    ) -> MigrationReport:
        """Apply (or resume) ``plan``; returns the report (``result`` says how it ended).

        ``backup_dir`` left out: the journal goes to :func:`default_backup_dir`
        (``report.backup.backup_dir`` says where). ``query_check_file``: RedisVL's YAML of
        ``fetch_ids`` / ``keys_exist``, checked with the validation (results in
        ``report.validation.query_checks``), and ftctl's ``queries``: run on the source
        before anything changes (journaled) and on the target after (an online plan's new
        index before its cut-over), compared by top-k overlap and result count
        (``report.validation.queries``); a query below its thresholds fails the run. A lossy
        plan runs (``accept_data_loss`` is accepted for compatibility; the plan's warnings
        show the measured recall).
        ``pacing``: how an online plan that rewrites documents paces its writes against the
        server (:class:`~ftctl.plan.pacing.Pacing`; fields left None: the journal's, then
        the defaults). Every verb takes it; :func:`pause` / :func:`unpause` hold and
        release a running one.

        Raises :class:`~ftctl.errors.BackupDirError` (a ValueError) for a backup dir that
        cannot be created or written, RefusedError (a ValueError; nothing changed) for a
        blocked plan, a backup dir of another plan (or of this plan's finished migration
        that the live index contradicts), or a failed preflight (among its checks: every
        vector converts — ``skip_invalid_vectors`` leaves those that cannot untouched
        instead); Interrupted on Ctrl+C (at a batch boundary, resumable).

        Also refused before anything runs: a plan edited since it was made (its digest;
        ``allow_edited_plan`` applies it as edited), a plan whose derived values contradict
        its schemas, another server than the plan's (``allow_other_server``), and server
        shapes ftctl was not built for (cluster mode, PARTIAL_INDEXED_DOCS where the plan
        relies on re-indexing, missing ACL permissions).
        """
        args = _ApplyArgs(plan, backup_dir, query_check_file, allow_edited_plan)
        options = Options(
            batch_size, num_workers, timeout, False, accept_data_loss,
            progress_adapter(progress_callback), skip_invalid_vectors, reconnect_timeout,
            extra_checks=extra_checks_for(args.plan, args.checks), pacing=pacing,
            queries=args.queries,
        )  # fmt: skip
        fresh = _new_journal(args.plan, args.backup_dir)
        with _sync_client(redis_url, given_client(redis_client, client)) as (opened, url):
            found = SyncDriver(opened).run(check_for_apply(args.plan, identity=fresh))
            _apply_checked(args.plan, found, identity=fresh, allow_other_server=allow_other_server)
            args.prepare()
            if _finished(args.plan, args.backup_dir):
                args.retarget(SyncDriver(opened).run(reverted_step(args.plan)))
            run = open_for_apply(args.plan, args.backup_dir, url, options)
            return drive_sync(run, opened, options)

    def resume(
        self,
        backup_dir: str | os.PathLike[str],
        *,
        index: str | None = None,
        redis_url: str | None = None,
        redis_client: redis.Redis | None = None,
        client: redis.Redis | None = None,
        batch_size: int = 500,
        num_workers: int = 1,
        progress_callback: ProgressCallback | RedisVLProgress | None = None,
        accept_data_loss: bool = True,
        timeout: float = 3600.0,
        skip_invalid_vectors: bool = False,
        reconnect_timeout: float = 60.0,
        pacing: Pacing | None = None,
    ) -> MigrationReport:
        """Resume the apply recorded in ``backup_dir`` from its journal alone."""
        options = Options(
            batch_size, num_workers, timeout, False, accept_data_loss,
            progress_adapter(progress_callback), skip_invalid_vectors, reconnect_timeout,
            pacing=pacing,
        )  # fmt: skip
        with _sync_client(redis_url, given_client(redis_client, client)) as (opened, url):
            planned = _journal_plan(backup_dir, index)
            _server_checked(SyncDriver(opened).run(check_for_run(planned, verb="resume")))
            run = _open_resume(backup_dir, index, url, options)
            return drive_sync(run, opened, options)

    def rollback(
        self,
        backup_dir: str | os.PathLike[str],
        *,
        index: str | None = None,
        redis_url: str | None = None,
        redis_client: redis.Redis | None = None,
        client: redis.Redis | None = None,
        force: bool = False,
        batch_size: int = 500,
        num_workers: int = 1,
        progress_callback: ProgressCallback | RedisVLProgress | None = None,
        timeout: float = 3600.0,
        reconnect_timeout: float = 60.0,
        pacing: Pacing | None = None,
    ) -> MigrationReport:
        """Undo the migration recorded in ``backup_dir`` from its journal alone.

        drop_recreate: restores vector bytes (never over a later write unless ``force``),
        renames keys and fields back, drops the target index, recreates the source index,
        waits and validates it. Online: drops an uncut shadow, or cuts back to the source
        schema without downtime. Journaled and resumable like apply.
        """
        options = Options(
            batch_size, num_workers, timeout, force, True, progress_adapter(progress_callback),
            reconnect_timeout=reconnect_timeout, pacing=pacing,
        )  # fmt: skip
        with _sync_client(redis_url, given_client(redis_client, client)) as (opened, url):
            planned = _journal_plan(backup_dir, index)
            _server_checked(SyncDriver(opened).run(check_for_run(planned, verb="rollback")))
            run = _open_rollback(backup_dir, index, url, options)
            return drive_sync(run, opened, options)

    def cutover(
        self,
        backup_dir: str | os.PathLike[str],
        *,
        index: str | None = None,
        redis_url: str | None = None,
        redis_client: redis.Redis | None = None,
        client: redis.Redis | None = None,
        num_workers: int = 1,
        progress_callback: ProgressCallback | RedisVLProgress | None = None,
        timeout: float = 3600.0,
        reconnect_timeout: float = 60.0,
        pacing: Pacing | None = None,
    ) -> MigrationReport:
        """Approve a postponed cut-over (journaled) and finish the online apply."""
        options = Options(
            workers=num_workers, timeout=timeout, accept_data_loss=True,
            progress=progress_adapter(progress_callback), reconnect_timeout=reconnect_timeout,
            pacing=pacing,
        )  # fmt: skip
        with _sync_client(redis_url, given_client(redis_client, client)) as (opened, url):
            planned = _journal_plan(backup_dir, index)
            _server_checked(SyncDriver(opened).run(check_for_run(planned, verb="cutover")))
            run = _open_cutover(backup_dir, index, url, options)
            return drive_sync(run, opened, options)

    def abort(
        self,
        backup_dir: str | os.PathLike[str],
        *,
        index: str | None = None,
        redis_url: str | None = None,
        redis_client: redis.Redis | None = None,
        client: redis.Redis | None = None,
        batch_size: int = 500,
        num_workers: int = 1,
        progress_callback: ProgressCallback | RedisVLProgress | None = None,
        timeout: float = 3600.0,
        reconnect_timeout: float = 60.0,
        pacing: Pacing | None = None,
    ) -> MigrationReport:
        """Drop the shadow of an online migration that was not cut over; the source is
        untouched. Refused (nothing changed) once the cut-over happened: use rollback.

        An expand run's abort removes what it wrote beside each document (a pass over
        every document: ``batch_size``, ``num_workers`` and ``progress_callback`` apply)."""
        options = _abort_options(
            batch_size, num_workers, progress_callback, timeout, reconnect_timeout, pacing
        )
        with _sync_client(redis_url, given_client(redis_client, client)) as (opened, url):
            planned = _journal_plan(backup_dir, index)
            _server_checked(SyncDriver(opened).run(check_for_run(planned, verb="abort")))
            run = _open_abort(backup_dir, index, url, options)
            return drive_sync(run, opened, options, abort_only=True)


def _abort_options(
    batch_size: int,
    num_workers: int,
    progress_callback: ProgressCallback | RedisVLProgress | None,
    timeout: float,
    reconnect_timeout: float,
    pacing: Pacing | None,
) -> Options:
    return Options(
        batch_size, num_workers, timeout, progress=progress_adapter(progress_callback),
        reconnect_timeout=reconnect_timeout, pacing=pacing,
    )  # fmt: skip


class AsyncMigrationExecutor:
    """The asyncio twin of :class:`MigrationExecutor`: the same verbs, tables and journal."""

    async def apply(
        self,
        plan: MigrationPlan | str | os.PathLike[str],
        *,
        redis_url: str | None = None,
        redis_client: redis.asyncio.Redis | None = None,
        client: redis.asyncio.Redis | None = None,
        backup_dir: str | os.PathLike[str] | None = None,
        batch_size: int = 500,
        num_workers: int = 1,
        progress_callback: ProgressCallback | RedisVLProgress | None = None,
        accept_data_loss: bool = True,
        timeout: float = 3600.0,
        skip_invalid_vectors: bool = False,
        reconnect_timeout: float = 60.0,
        query_check_file: str | os.PathLike[str] | None = None,
        allow_edited_plan: bool = False,
        allow_other_server: bool = False,
        pacing: Pacing | None = None,
    ) -> MigrationReport:
        """Apply (or resume) ``plan``; see :meth:`MigrationExecutor.apply`."""
        args = await asyncio.to_thread(
            _ApplyArgs, plan, backup_dir, query_check_file, allow_edited_plan
        )
        options = Options(
            batch_size, num_workers, timeout, False, accept_data_loss,
            progress_adapter(progress_callback), skip_invalid_vectors, reconnect_timeout,
            extra_checks=extra_checks_for(args.plan, args.checks), pacing=pacing,
            queries=args.queries,
        )  # fmt: skip
        fresh = await asyncio.to_thread(_new_journal, args.plan, args.backup_dir)
        async with _async_client(redis_url, given_client(redis_client, client)) as (opened, url):
            found = await AsyncDriver(opened).run(check_for_apply(args.plan, identity=fresh))
            _apply_checked(args.plan, found, identity=fresh, allow_other_server=allow_other_server)
            await asyncio.to_thread(args.prepare)
            if await asyncio.to_thread(_finished, args.plan, args.backup_dir):
                reverted = await AsyncDriver(opened).run(reverted_step(args.plan))
                await asyncio.to_thread(args.retarget, reverted)
            run = await asyncio.to_thread(open_for_apply, args.plan, args.backup_dir, url, options)
            return await drive_async(run, opened, options)

    async def resume(
        self,
        backup_dir: str | os.PathLike[str],
        *,
        index: str | None = None,
        redis_url: str | None = None,
        redis_client: redis.asyncio.Redis | None = None,
        client: redis.asyncio.Redis | None = None,
        batch_size: int = 500,
        num_workers: int = 1,
        progress_callback: ProgressCallback | RedisVLProgress | None = None,
        accept_data_loss: bool = True,
        timeout: float = 3600.0,
        skip_invalid_vectors: bool = False,
        reconnect_timeout: float = 60.0,
        pacing: Pacing | None = None,
    ) -> MigrationReport:
        """Resume the apply recorded in ``backup_dir``; see :meth:`MigrationExecutor.resume`."""
        options = Options(
            batch_size, num_workers, timeout, False, accept_data_loss,
            progress_adapter(progress_callback), skip_invalid_vectors, reconnect_timeout,
            pacing=pacing,
        )  # fmt: skip
        async with _async_client(redis_url, given_client(redis_client, client)) as (opened, url):
            planned = await asyncio.to_thread(_journal_plan, backup_dir, index)
            _server_checked(await AsyncDriver(opened).run(check_for_run(planned, verb="resume")))
            run = await asyncio.to_thread(_open_resume, backup_dir, index, url, options)
            return await drive_async(run, opened, options)

    async def rollback(
        self,
        backup_dir: str | os.PathLike[str],
        *,
        index: str | None = None,
        redis_url: str | None = None,
        redis_client: redis.asyncio.Redis | None = None,
        client: redis.asyncio.Redis | None = None,
        force: bool = False,
        batch_size: int = 500,
        num_workers: int = 1,
        progress_callback: ProgressCallback | RedisVLProgress | None = None,
        timeout: float = 3600.0,
        reconnect_timeout: float = 60.0,
        pacing: Pacing | None = None,
    ) -> MigrationReport:
        """Undo the migration in ``backup_dir``; see :meth:`MigrationExecutor.rollback`."""
        options = Options(
            batch_size, num_workers, timeout, force, True, progress_adapter(progress_callback),
            reconnect_timeout=reconnect_timeout, pacing=pacing,
        )  # fmt: skip
        async with _async_client(redis_url, given_client(redis_client, client)) as (opened, url):
            planned = await asyncio.to_thread(_journal_plan, backup_dir, index)
            _server_checked(await AsyncDriver(opened).run(check_for_run(planned, verb="rollback")))
            run = await asyncio.to_thread(_open_rollback, backup_dir, index, url, options)
            return await drive_async(run, opened, options)

    async def cutover(
        self,
        backup_dir: str | os.PathLike[str],
        *,
        index: str | None = None,
        redis_url: str | None = None,
        redis_client: redis.asyncio.Redis | None = None,
        client: redis.asyncio.Redis | None = None,
        num_workers: int = 1,
        progress_callback: ProgressCallback | RedisVLProgress | None = None,
        timeout: float = 3600.0,
        reconnect_timeout: float = 60.0,
        pacing: Pacing | None = None,
    ) -> MigrationReport:
        """Approve a postponed cut-over; see :meth:`MigrationExecutor.cutover`."""
        options = Options(
            workers=num_workers, timeout=timeout, accept_data_loss=True,
            progress=progress_adapter(progress_callback), reconnect_timeout=reconnect_timeout,
            pacing=pacing,
        )  # fmt: skip
        async with _async_client(redis_url, given_client(redis_client, client)) as (opened, url):
            planned = await asyncio.to_thread(_journal_plan, backup_dir, index)
            _server_checked(await AsyncDriver(opened).run(check_for_run(planned, verb="cutover")))
            run = await asyncio.to_thread(_open_cutover, backup_dir, index, url, options)
            return await drive_async(run, opened, options)

    async def abort(
        self,
        backup_dir: str | os.PathLike[str],
        *,
        index: str | None = None,
        redis_url: str | None = None,
        redis_client: redis.asyncio.Redis | None = None,
        client: redis.asyncio.Redis | None = None,
        batch_size: int = 500,
        num_workers: int = 1,
        progress_callback: ProgressCallback | RedisVLProgress | None = None,
        timeout: float = 3600.0,
        reconnect_timeout: float = 60.0,
        pacing: Pacing | None = None,
    ) -> MigrationReport:
        """Drop an uncut shadow; see :meth:`MigrationExecutor.abort`."""
        options = _abort_options(
            batch_size, num_workers, progress_callback, timeout, reconnect_timeout, pacing
        )
        async with _async_client(redis_url, given_client(redis_client, client)) as (opened, url):
            planned = await asyncio.to_thread(_journal_plan, backup_dir, index)
            _server_checked(await AsyncDriver(opened).run(check_for_run(planned, verb="abort")))
            run = await asyncio.to_thread(_open_abort, backup_dir, index, url, options)
            return await drive_async(run, opened, options, abort_only=True)


def write_migration_report(report: MigrationReport, path: str | os.PathLike[str]) -> Path:
    """Write ``report`` as YAML (RedisVL's ``write_migration_report``); returns the path.

    The same content ``ftctl migrate report --report-out`` writes; a report is a projection
    of its journal, so this file can be regenerated at any time.
    """
    target = Path(path)
    try:
        target.write_bytes(msgspec.yaml.encode(report))
    except OSError as exc:
        raise UsageError(
            f"cannot write the report to '{target}': {exc.strerror}", "check --report-out"
        ) from None
    return target


_DEFAULT = MigrationExecutor()
rollback = _DEFAULT.rollback
"""``ftctl.rollback(backup_dir, ...)``: :meth:`MigrationExecutor.rollback` as a function."""
cutover = _DEFAULT.cutover
""":meth:`MigrationExecutor.cutover` as a function."""
abort = _DEFAULT.abort
""":meth:`MigrationExecutor.abort` as a function."""


__all__ = [
    "FAULT_ENV",
    "FAULT_SIGNAL_ENV",
    "REDISVL_STEPS",
    "AsyncMigrationExecutor",
    "MigrationExecutor",
    "MigrationFailed",
    "Pacing",
    "PauseFlag",
    "ProgressCallback",
    "abort",
    "check_plan",
    "check_reviewed",
    "cutover",
    "default_backup_dir",
    "find_journals",
    "pause",
    "progress_adapter",
    "rollback",
    "unpause",
    "write_migration_report",
]
