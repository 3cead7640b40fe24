"""``migrate validate``: check a live index against a plan's target, without a journal.

The checks are the validate step's own (schema, doc count, indexing failures, sampled keys,
KNN self-match), run by the same table runner as every migration (table ``VALIDATE``),
then RedisVL's (the plan's key sample, a wildcard search, and a ``query_check_file``'s
fetches and keys: :mod:`ftctl.steps.query_checks`), and the user's own queries
(:mod:`ftctl.steps.user_queries`): compared with the baseline the plan's apply journaled
when one is found, else only run. Their events are collected in memory and the report is
projected from them exactly as for an apply.
:class:`MigrationValidator` and :class:`AsyncMigrationValidator` differ only in the driver.

``validate`` returns a :class:`~ftctl.journal.report.ValidationReport`: a full report, which
also unpacks as RedisVL's ``(validation, target_info, validation_duration)`` tuple.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec
import redis
import redis.asyncio

from ftctl.drivers import AsyncDriver, SyncDriver, async_connect, connect, given_client, mask_url
from ftctl.errors import UsageError
from ftctl.executor import default_backup_dir
from ftctl.journal import Journal
from ftctl.journal.events import AnyEvent, QueryBaseline, RunFinished, RunStarted
from ftctl.journal.projections import RunState, project_run, run_events
from ftctl.journal.report import ValidationReport, project_report
from ftctl.plan.models import MigrationPlan, dump_plan, plan_digest
from ftctl.plan.query_checks import UserQuery, load_query_checks
from ftctl.runs import journal_dir
from ftctl.steps.effects import Step
from ftctl.steps.index_ops import live_info
from ftctl.steps.query_checks import ExtraChecks, after_validation, extra_checks_for
from ftctl.steps.runner import Outcome, RunContext, run_table
from ftctl.steps.spec import RunSpec, run_spec
from ftctl.steps.tables import VALIDATE
from ftctl.steps.user_queries import check_queries, same_measure
from ftctl.version import ftctl_version


class MemorySink:
    """An in-memory event list with the journal's stamping (no segments)."""

    def __init__(self) -> None:
        self.events: list[Any] = []
        self._lock = threading.Lock()

    def append(self, events: Sequence[Any]) -> list[Any]:
        stamped = []
        with self._lock:
            for event in events:
                stamped.append(
                    msgspec.structs.replace(event, seq=len(self.events) + 1, at=datetime.now(UTC))
                )
                self.events.append(stamped[-1])
        return stamped

    def write_segment(self, payload: Any, *, durable: bool = True) -> Any:
        raise RuntimeError("validation writes no segments")

    def read_segment(self, ref: Any) -> Any:
        raise RuntimeError("validation reads no segments")

    def verify_segments(self, refs: Any) -> list[str]:
        raise RuntimeError("validation reads no segments")

    def paused(self) -> bool:
        return False  # a validation has no journal directory to hold a pause flag


def _checked(
    table: Step[Outcome], state: RunState, extra: ExtraChecks
) -> Step[tuple[Outcome, dict[str, Any]]]:
    """The table, RedisVL's checks, then the target's FT.INFO numbers (``target_info``)."""
    outcome = yield from after_validation(table, state, extra)
    info = yield from live_info(extra.index)
    stats: dict[str, Any] = msgspec.to_builtins(info.stats) if info is not None else {}
    return outcome, stats


def _journaled_baseline(
    plan: MigrationPlan, backup_dir: str | os.PathLike[str] | None, wanted: bool
) -> QueryBaseline | None:
    """The query baseline the apply of ``plan`` journaled: in ``backup_dir``, else (when
    ``wanted``) in the plan's default backup dir; None when there is none."""
    if backup_dir is None and not wanted:
        return None
    root = default_backup_dir(plan) if backup_dir is None else backup_dir
    directory = journal_dir(root, plan.source.index_name)
    first = Journal.first_run(directory) if Journal.exists(directory) else None
    if first is None or first.plan_sha256 != plan_digest(plan):
        if backup_dir is None:
            return None
        raise UsageError(
            f"{backup_dir} holds no journal of this plan",
            "pass the --backup-dir the plan was applied with",
        )
    return project_run(run_events(Journal.read(directory), "apply")).query_baseline


def _compared(
    spec: RunSpec, baseline: QueryBaseline | None, queries: Sequence[UserQuery]
) -> QueryBaseline | None:
    """The baseline entries to compare: those the given queries measure the same way (all
    of them when none is given)."""
    if baseline is None or not queries:
        return baseline
    given = {q.name: q for q in queries}
    kept = [
        entry
        for entry in baseline.queries
        if entry.name in given and same_measure(spec, given[entry.name], entry)
    ]
    return msgspec.structs.replace(baseline, queries=kept) if kept else None


def _start(
    plan: MigrationPlan,
    url: str,
    query_check_file: str | os.PathLike[str] | None,
    expected_source_count: int | None,
    backup_dir: str | os.PathLike[str] | None = None,
) -> tuple[MemorySink, Step[tuple[Outcome, dict[str, Any]]]]:
    checks = None if query_check_file is None else load_query_checks(query_check_file)
    queries = tuple(checks.queries) if checks is not None else ()
    spec = run_spec(plan)
    check_queries(spec, queries)
    baseline = _compared(spec, _journaled_baseline(plan, backup_dir, bool(queries)), queries)
    sink = MemorySink()
    (started,) = sink.append(
        [
            RunStarted(
                run_id=secrets.token_hex(8),
                kind="validate",
                index_name=plan.source.index_name,
                plan_yaml=dump_plan(plan).decode(),
                plan_sha256=plan_digest(plan),
                mode=plan.mode,
                redis_url=mask_url(url),
                ftctl_version=ftctl_version(),
            )
        ]
    )
    state = RunState(marks=VALIDATE.marks())
    state.fold(started)
    if baseline is not None:
        state.fold_all(sink.append([baseline]))
    if expected_source_count is not None:
        spec = msgspec.structs.replace(spec, expected_docs=expected_source_count)
    ctx = RunContext(spec=spec, state=state, applied=state, queries=queries)
    return sink, _checked(run_table(VALIDATE, ctx), state, extra_checks_for(plan, checks))


def _report(
    plan: MigrationPlan, sink: MemorySink, outcome: Outcome, target_info: dict[str, Any]
) -> ValidationReport:
    sink.append([RunFinished(result="succeeded" if outcome == "passed" else "failed")])
    events: list[AnyEvent] = sink.events
    report = project_report(
        events,
        VALIDATE.marks(),
        warnings=plan.warnings,
        kind="validate",
        target_index=plan.merged_target_schema.name,
    )
    return ValidationReport(**msgspec.structs.asdict(report), target_info=target_info)


class MigrationValidator:
    """Validate the live target index of a plan (read-only)."""

    def validate(
        self,
        plan: MigrationPlan,
        *,
        redis_url: str | None = None,
        redis_client: redis.Redis | None = None,
        client: redis.Redis | None = None,
        query_check_file: str | os.PathLike[str] | None = None,
        expected_source_count: int | None = None,
        backup_dir: str | os.PathLike[str] | None = None,
    ) -> ValidationReport:
        """Check the live index against ``plan``; ``redis_client=`` (alias ``client=``) or a URL.

        ``query_check_file``: RedisVL's YAML of ``fetch_ids`` / ``keys_exist``, and ftctl's
        ``queries``: each compared with the baseline the plan's apply journaled (in
        ``backup_dir``, else in the plan's default backup dir) when it measured the query
        the same way, else only run (``report.validation.queries``). ``backup_dir`` with
        no query file compares every journaled query. ``expected_source_count``: the
        document count to expect instead of the plan's ``num_docs +
        hash_indexing_failures``. The report unpacks as RedisVL's ``validation,
        target_info, duration = validator.validate(...)``.
        """
        given = given_client(redis_client, client)
        opened = given or connect(redis_url)
        try:
            sink, step = _start(
                plan, redis_url or "", query_check_file, expected_source_count, backup_dir
            )
            outcome, target_info = SyncDriver(opened, sink).run(step)
        finally:
            if given is None:
                opened.close()
        return _report(plan, sink, outcome, target_info)


class AsyncMigrationValidator:
    """The asyncio twin of :class:`MigrationValidator`."""

    async def validate(
        self,
        plan: MigrationPlan,
        *,
        redis_url: str | None = None,
        redis_client: redis.asyncio.Redis | None = None,
        client: redis.asyncio.Redis | None = None,
        query_check_file: str | os.PathLike[str] | None = None,
        expected_source_count: int | None = None,
        backup_dir: str | os.PathLike[str] | None = None,
    ) -> ValidationReport:
        """See :meth:`MigrationValidator.validate`."""
        given = given_client(redis_client, client)
        opened = given or await async_connect(redis_url)
        try:
            sink, step = await asyncio.to_thread(
                _start, plan, redis_url or "", query_check_file, expected_source_count, backup_dir
            )
            outcome, target_info = await AsyncDriver(opened, sink).run(step)
        finally:
            if given is None:
                await opened.aclose()
        return _report(plan, sink, outcome, target_info)


__all__ = ["AsyncMigrationValidator", "MemorySink", "MigrationValidator"]
