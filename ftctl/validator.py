"""``migrate validate``: check a live index against a plan's target, without a journal.

The checks are the validate step's own (schema, doc count, indexing failures, sampled keys,
KNN self-match), run by the same table runner as every migration (table ``VALIDATE``);
their events are collected in memory and the report is projected from them exactly as for
an apply. :class:`MigrationValidator` and :class:`AsyncMigrationValidator` differ only in
the driver.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec
import redis
import redis.asyncio

from ftctl.drivers import AsyncDriver, SyncDriver, async_connect, connect, given_client, mask_url
from ftctl.journal.events import AnyEvent, RunFinished, RunStarted
from ftctl.journal.projections import RunState
from ftctl.journal.report import MigrationReport, project_report
from ftctl.plan.models import MigrationPlan, dump_plan, plan_digest
from ftctl.steps.effects import Step
from ftctl.steps.runner import Outcome, RunContext, run_table
from ftctl.steps.spec import run_spec
from ftctl.steps.tables import VALIDATE
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


def _start(plan: MigrationPlan, url: str) -> tuple[MemorySink, Step[Outcome]]:
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
    ctx = RunContext(spec=run_spec(plan), state=state, applied=state)
    return sink, run_table(VALIDATE, ctx)


def _report(plan: MigrationPlan, sink: MemorySink, outcome: Outcome) -> MigrationReport:
    sink.append([RunFinished(result="succeeded" if outcome == "passed" else "failed")])
    events: list[AnyEvent] = sink.events
    return project_report(events, VALIDATE.marks(), warnings=plan.warnings, kind="validate")


class MigrationValidator:
    """Validate the live target index of a plan (read-only)."""

    def validate(
        self,
        plan: MigrationPlan,
        *,
        redis_url: str | None = None,
        redis_client: redis.Redis | None = None,
        client: redis.Redis | None = None,
    ) -> MigrationReport:
        """Check the live index against ``plan``; ``redis_client=`` (alias ``client=``) or a URL."""
        given = given_client(redis_client, client)
        opened = given or connect(redis_url)
        try:
            sink, step = _start(plan, redis_url or "")
            outcome = SyncDriver(opened, sink).run(step)
        finally:
            if given is None:
                opened.close()
        return _report(plan, sink, outcome)


class AsyncMigrationValidator:
    """The asyncio twin of :class:`MigrationValidator`."""

    async def validate(
        self,
        plan: MigrationPlan,
        *,
        redis_url: str | None = None,
        redis_client: redis.asyncio.Redis | None = None,
        client: redis.asyncio.Redis | None = None,
    ) -> MigrationReport:
        """See :meth:`MigrationValidator.validate`."""
        given = given_client(redis_client, client)
        opened = given or await async_connect(redis_url)
        try:
            sink, step = _start(plan, redis_url or "")
            outcome = await AsyncDriver(opened, sink).run(step)
        finally:
            if given is None:
                await opened.aclose()
        return _report(plan, sink, outcome)


__all__ = ["AsyncMigrationValidator", "MemorySink", "MigrationValidator"]
