"""Read-only views of migration journals: reports, benchmarks and the inspect timeline.

Everything here is a projection of a journal's events; nothing talks to Redis and nothing
writes. Reports regenerate identically from the same journal at any time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import msgspec

from ftctl.drivers import mask_url
from ftctl.errors import UsageError
from ftctl.journal import Journal
from ftctl.journal.events import AnyEvent, BatchRunStarted, RunKind, RunStarted
from ftctl.journal.inspect import InspectRow, inspect_rows
from ftctl.journal.report import BenchmarkReport, MigrationReport, project_benchmark
from ftctl.plan.models import load_plan
from ftctl.runs import find_journals, only_journal, plan_marks, report_of


def _plan_events(directory: Path) -> tuple[RunStarted, list[AnyEvent]]:
    events = Journal.read(directory)
    first = events[0] if events else None
    if not isinstance(first, RunStarted):
        raise UsageError(
            f"{directory} holds a batch journal, not an index migration's",
            "use 'ftctl migrate batch-status' for batches",
        )
    return first, events


def migration_report(
    backup_dir: str | os.PathLike[str], *, index: str | None = None, kind: RunKind = "apply"
) -> MigrationReport:
    """The report of the apply (or rollback) runs recorded in ``backup_dir``."""
    directory = only_journal(backup_dir, index)
    first, events = _plan_events(directory)
    return report_of(events, load_plan(first.plan_yaml.encode()), directory, kind)


def benchmark_report(
    backup_dir: str | os.PathLike[str], *, index: str | None = None
) -> BenchmarkReport:
    """Per-step durations and throughput of the apply runs recorded in ``backup_dir``."""
    directory = only_journal(backup_dir, index)
    first, events = _plan_events(directory)
    return project_benchmark(events, plan_marks(load_plan(first.plan_yaml.encode()), "apply"))


@dataclass(frozen=True)
class JournalTimeline:
    """One journal's ``inspect`` view."""

    directory: Path
    rows: list[InspectRow]
    recovered_tail: str | None
    """A torn last record that was ignored (a crash mid-append), if any."""


def _masked_again(events: list[AnyEvent]) -> list[AnyEvent]:
    """The events with each run's URL masked once more: a journal written before every secret
    form was masked may hold a ``?password=`` in clear (masking a masked URL changes nothing)."""
    return [
        msgspec.structs.replace(e, redis_url=mask_url(e.redis_url))
        if isinstance(e, RunStarted | BatchRunStarted)
        else e
        for e in events
    ]


def inspect(
    backup_dir: str | os.PathLike[str], *, index: str | None = None
) -> list[JournalTimeline]:
    """Every journal under ``backup_dir`` (index and batch journals) as timeline rows."""
    out = []
    for directory in find_journals(backup_dir, index, batches=True):
        with Journal.open_readonly(directory) as opened:
            rows = inspect_rows(_masked_again(opened.events()))
            out.append(JournalTimeline(directory, rows, opened.recovered_tail))
    return out


__all__ = ["JournalTimeline", "benchmark_report", "inspect", "migration_report"]
