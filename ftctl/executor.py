"""MigrationExecutor / AsyncMigrationExecutor: every verb of a journaled migration.

``apply`` (re-running it resumes), ``resume`` (from the journal alone), ``rollback``,
``cutover`` and ``abort`` (the operator gate of an online plan). Each verb opens the journal
in ``<backup_dir>/<index>/`` and hands it to :mod:`ftctl.runs`, which walks the mode's step
table with the sync or the asyncio driver; that driver is the only difference between the
two executors. Reports are projections of the journal's events.

Every verb takes ``redis_url=`` or an open client as ``redis_client=`` (RedisVL's name;
``client=`` is kept as its alias). A client passed in is used as it is and left open.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import redis
import redis.asyncio
import structlog

from ftctl.drivers import AsyncDriver, SyncDriver, async_connect, connect
from ftctl.drivers.connect import client_url, given_client
from ftctl.errors import MigrationFailed, RefusedError, UsageError
from ftctl.journal import Journal
from ftctl.journal.events import CutoverApproved, RunStarted, StepsReopened
from ftctl.journal.report import MigrationReport
from ftctl.plan.integrity import derived_problems, digest_problem
from ftctl.plan.models import MigrationPlan, load_plan
from ftctl.runs import (
    FAULT_ENV,
    FAULT_SIGNAL_ENV,
    RUN_PROTOCOL,
    RUN_SOCKET_TIMEOUT,
    Options,
    ProgressCallback,
    Run,
    drive_async,
    drive_sync,
    find_journals,
    journal_dir,
    only_journal,
    open_existing,
    open_for_apply,
    rolled_back,
)
from ftctl.steps.shape import ServerCheck, check_for_apply, check_for_run
from ftctl.steps.spec import run_spec
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


def check_plan(plan: MigrationPlan, *, accept_data_loss: bool, revalidate: bool = True) -> None:
    """Refuse (exit 2, nothing changed) a plan that must not run.

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
    return not Journal.exists(journal_dir(backup_dir, plan.source.index_name))


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
        backup_dir: str | os.PathLike[str],
        batch_size: int = 500,
        num_workers: int = 1,
        progress_callback: ProgressCallback | None = None,
        accept_data_loss: bool = False,
        timeout: float = 3600.0,
        skip_invalid_vectors: bool = False,
        reconnect_timeout: float = 60.0,
        allow_edited_plan: bool = False,
        allow_other_server: bool = False,
    ) -> MigrationReport:
        """Apply (or resume) ``plan``; returns the report (``result`` says how it ended).

        Raises RefusedError (nothing changed) for a blocked plan, a lossy plan without
        ``accept_data_loss``, a backup dir of another plan, or a failed preflight (among its
        checks: every vector converts — ``skip_invalid_vectors`` leaves those that cannot
        untouched instead); Interrupted on Ctrl+C (at a batch boundary, resumable).

        Before anything runs (RefusedError): a plan edited since it was made (its digest;
        ``allow_edited_plan`` applies it as edited), a plan whose derived values contradict
        its schemas, another server than the plan's (``allow_other_server``), and server
        shapes ftctl was not built for (cluster mode, PARTIAL_INDEXED_DOCS where the plan
        relies on re-indexing, missing ACL permissions).
        """
        options = Options(
            batch_size, num_workers, timeout, False, accept_data_loss, progress_callback,
            skip_invalid_vectors, reconnect_timeout,
        )  # fmt: skip
        resolved = _plan_of(plan)
        check_reviewed(resolved, allow_edited_plan=allow_edited_plan)
        check_plan(resolved, accept_data_loss=accept_data_loss)
        fresh = _new_journal(resolved, backup_dir)
        with _sync_client(redis_url, given_client(redis_client, client)) as (opened, url):
            found = SyncDriver(opened).run(check_for_apply(resolved, identity=fresh))
            _apply_checked(resolved, found, identity=fresh, allow_other_server=allow_other_server)
            run = open_for_apply(resolved, backup_dir, url, options)
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
        progress_callback: ProgressCallback | None = None,
        accept_data_loss: bool = True,
        timeout: float = 3600.0,
        skip_invalid_vectors: bool = False,
        reconnect_timeout: float = 60.0,
    ) -> MigrationReport:
        """Resume the apply recorded in ``backup_dir`` from its journal alone."""
        options = Options(
            batch_size, num_workers, timeout, False, accept_data_loss, progress_callback,
            skip_invalid_vectors, reconnect_timeout,
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
        progress_callback: ProgressCallback | None = None,
        timeout: float = 3600.0,
        reconnect_timeout: float = 60.0,
    ) -> MigrationReport:
        """Undo the migration recorded in ``backup_dir`` from its journal alone.

        drop_recreate: restores vector bytes (never over a later write unless ``force``),
        renames keys and fields back, drops the target index, recreates the source index,
        waits and validates it. Online: drops an uncut shadow, or cuts back to the source
        schema without downtime. Journaled and resumable like apply.
        """
        options = Options(
            batch_size, num_workers, timeout, force, True, progress_callback,
            reconnect_timeout=reconnect_timeout,
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
        progress_callback: ProgressCallback | None = None,
        timeout: float = 3600.0,
        reconnect_timeout: float = 60.0,
    ) -> MigrationReport:
        """Approve a postponed cut-over (journaled) and finish the online apply."""
        options = Options(
            workers=num_workers, timeout=timeout, accept_data_loss=True,
            progress=progress_callback, reconnect_timeout=reconnect_timeout,
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
        timeout: float = 3600.0,
        reconnect_timeout: float = 60.0,
    ) -> MigrationReport:
        """Drop the shadow of an online migration that was not cut over; the source is
        untouched. Refused (nothing changed) once the cut-over happened: use rollback."""
        options = Options(timeout=timeout, reconnect_timeout=reconnect_timeout)
        with _sync_client(redis_url, given_client(redis_client, client)) as (opened, url):
            planned = _journal_plan(backup_dir, index)
            _server_checked(SyncDriver(opened).run(check_for_run(planned, verb="abort")))
            run = _open_abort(backup_dir, index, url, options)
            return drive_sync(run, opened, options, abort_only=True)


class AsyncMigrationExecutor:
    """The asyncio twin of :class:`MigrationExecutor`: the same verbs, tables and journal."""

    async def apply(
        self,
        plan: MigrationPlan | str | os.PathLike[str],
        *,
        redis_url: str | None = None,
        redis_client: redis.asyncio.Redis | None = None,
        client: redis.asyncio.Redis | None = None,
        backup_dir: str | os.PathLike[str],
        batch_size: int = 500,
        num_workers: int = 1,
        progress_callback: ProgressCallback | None = None,
        accept_data_loss: bool = False,
        timeout: float = 3600.0,
        skip_invalid_vectors: bool = False,
        reconnect_timeout: float = 60.0,
        allow_edited_plan: bool = False,
        allow_other_server: bool = False,
    ) -> MigrationReport:
        """Apply (or resume) ``plan``; see :meth:`MigrationExecutor.apply`."""
        options = Options(
            batch_size, num_workers, timeout, False, accept_data_loss, progress_callback,
            skip_invalid_vectors, reconnect_timeout,
        )  # fmt: skip
        resolved = _plan_of(plan)
        check_reviewed(resolved, allow_edited_plan=allow_edited_plan)
        check_plan(resolved, accept_data_loss=accept_data_loss)
        fresh = await asyncio.to_thread(_new_journal, resolved, backup_dir)
        async with _async_client(redis_url, given_client(redis_client, client)) as (opened, url):
            found = await AsyncDriver(opened).run(check_for_apply(resolved, identity=fresh))
            _apply_checked(resolved, found, identity=fresh, allow_other_server=allow_other_server)
            run = await asyncio.to_thread(open_for_apply, resolved, backup_dir, url, options)
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
        progress_callback: ProgressCallback | None = None,
        accept_data_loss: bool = True,
        timeout: float = 3600.0,
        skip_invalid_vectors: bool = False,
        reconnect_timeout: float = 60.0,
    ) -> MigrationReport:
        """Resume the apply recorded in ``backup_dir``; see :meth:`MigrationExecutor.resume`."""
        options = Options(
            batch_size, num_workers, timeout, False, accept_data_loss, progress_callback,
            skip_invalid_vectors, reconnect_timeout,
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
        progress_callback: ProgressCallback | None = None,
        timeout: float = 3600.0,
        reconnect_timeout: float = 60.0,
    ) -> MigrationReport:
        """Undo the migration in ``backup_dir``; see :meth:`MigrationExecutor.rollback`."""
        options = Options(
            batch_size, num_workers, timeout, force, True, progress_callback,
            reconnect_timeout=reconnect_timeout,
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
        progress_callback: ProgressCallback | None = None,
        timeout: float = 3600.0,
        reconnect_timeout: float = 60.0,
    ) -> MigrationReport:
        """Approve a postponed cut-over; see :meth:`MigrationExecutor.cutover`."""
        options = Options(
            workers=num_workers, timeout=timeout, accept_data_loss=True,
            progress=progress_callback, reconnect_timeout=reconnect_timeout,
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
        timeout: float = 3600.0,
        reconnect_timeout: float = 60.0,
    ) -> MigrationReport:
        """Drop an uncut shadow; see :meth:`MigrationExecutor.abort`."""
        options = Options(timeout=timeout, reconnect_timeout=reconnect_timeout)
        async with _async_client(redis_url, given_client(redis_client, client)) as (opened, url):
            planned = await asyncio.to_thread(_journal_plan, backup_dir, index)
            _server_checked(await AsyncDriver(opened).run(check_for_run(planned, verb="abort")))
            run = await asyncio.to_thread(_open_abort, backup_dir, index, url, options)
            return await drive_async(run, opened, options, abort_only=True)


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
    "AsyncMigrationExecutor",
    "MigrationExecutor",
    "MigrationFailed",
    "ProgressCallback",
    "abort",
    "check_plan",
    "check_reviewed",
    "cutover",
    "find_journals",
    "rollback",
]
