"""``migrate validate``: check a live index against a plan's target, without a journal.

The checks are the validate step's own (schema, doc count, indexing failures, sampled keys,
KNN self-match); their events are collected in memory and the report is projected from them
exactly as for an apply.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import redis

from ftctl.drivers import SyncDriver, connect, mask_url
from ftctl.executor import expected_docs, ftctl_version, spec_from_plan
from ftctl.journal.events import AnyEvent, RunFinished, RunStarted, StepFinished, StepStarted
from ftctl.journal.report import MigrationReport, project_report
from ftctl.plan.models import MigrationPlan, dump_plan, plan_digest
from ftctl.steps.validate import validate


class MemorySink:
    """An in-memory event list with the journal's stamping (no segments)."""

    def __init__(self) -> None:
        self.events: list[Any] = []
        self._lock = threading.Lock()

    def append(self, events: Sequence[Any]) -> list[Any]:
        import msgspec

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


class MigrationValidator:
    """Validate the live target index of a plan (read-only)."""

    def validate(
        self,
        plan: MigrationPlan,
        *,
        redis_url: str | None = None,
        client: redis.Redis | None = None,
    ) -> MigrationReport:
        redis_client = client or connect(redis_url)
        sink = MemorySink()
        sink.append(
            [
                RunStarted(
                    run_id=secrets.token_hex(8),
                    kind="validate",
                    index_name=plan.source.index_name,
                    plan_yaml=dump_plan(plan).decode(),
                    plan_sha256=plan_digest(plan),
                    mode=plan.mode,
                    redis_url=mask_url(redis_url or ""),
                    ftctl_version=ftctl_version(),
                ),
                StepStarted(step="validate"),
            ]
        )
        try:
            spec = spec_from_plan(plan)
            passed = SyncDriver(redis_client, sink).run(
                validate(
                    spec,
                    schema=spec.target_schema,
                    expected_docs=expected_docs(plan),
                    source_failures=plan.source.stats_snapshot.hash_indexing_failures,
                    key_segments=[],
                    backup_segments=[],
                    conflicts=0,
                )
            )
        finally:
            if client is None:
                redis_client.close()
        sink.append(
            [
                StepFinished(step="validate", counts={"passed": int(passed)}),
                RunFinished(result="succeeded" if passed else "failed"),
            ]
        )
        events: list[AnyEvent] = sink.events
        return project_report(events, warnings=plan.warnings, kind="validate")
