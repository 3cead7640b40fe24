"""Rendering for humans: progress lines on stderr, report summaries, timelines."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import click
import msgspec

from ftctl.errors import UsageError
from ftctl.journal.batch import FAILED, BatchState
from ftctl.journal.inspect import InspectRow
from ftctl.journal.report import MigrationReport
from ftctl.schema.model import Field, GeoShapeField, TagField, TextField, VectorField
from ftctl.text import printable


def echo_safe(text: str) -> None:
    """``click.echo`` of one line that may quote names: control characters escaped."""
    click.echo(printable(text))


@dataclass
class Progress:
    """``step  done/total docs  rate/s  ETA`` on one stderr line, only when it is a TTY."""

    enabled: bool = field(default_factory=lambda: sys.stderr.isatty())
    _step: str = ""
    _started: float = 0.0
    _last: float = 0.0

    def __call__(self, step: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if step != self._step:
            if self._step:
                click.echo("", err=True)
            self._step, self._started, self._last = step, now, 0.0
        if now - self._last < 0.1 and done < total:
            return
        self._last = now
        elapsed = max(now - self._started, 1e-6)
        rate = done / elapsed
        eta = f"ETA {max(total - done, 0) / rate:.0f}s" if rate > 0 and total > done else ""
        line = f"\r{step:<14} {done:>10,}/{total:,} docs  {rate:>10,.0f}/s  {eta:<12}"
        click.echo(line, err=True, nl=False)

    def close(self) -> None:
        if self.enabled and self._step:
            click.echo("", err=True)


def indexing_state(indexing: bool, percent_indexed: float) -> str:
    """``ready``, or ``indexing (NN%)`` while the background scan runs.

    ``percent_indexed`` is the server's ratio of keys scanned to the keys the database held
    when the scan started, so keys written during the scan push it past 1 (2.17 was seen on
    RediSearch 2.10) while ``indexing`` is still 1. Until ``indexing`` is 0 the index is not
    ready: the share shown is clamped to 0..99% and rounded down, and a ratio that says
    nothing (NaN) shows no number.
    """
    if not indexing:
        return "ready"
    if math.isnan(percent_indexed):
        return "indexing"
    percent = min(max(math.floor(percent_indexed * 100), 0), 99)
    return f"indexing ({percent}%)"


def field_summary(f: Field) -> str:
    """One line per field for ``index info``: name, type and the options that are set."""
    kind = f.__struct_config__.tag
    parts: list[str] = []
    if f.path is not None:
        parts.append(f"path={f.path}")
    match f:
        case VectorField(attrs=a):
            parts += [a.algorithm, a.datatype, f"dims={a.dims}", a.distance_metric]
        case TagField(attrs=a) if a.separator is not None:
            parts.append(f"separator={a.separator!r}")
        case GeoShapeField(attrs=a):
            parts.append(a.coord_system)
        case TextField(attrs=a) if a.weight != 1.0:
            parts.append(f"weight={a.weight:g}")
        case _:
            pass
    attrs = getattr(f, "attrs", None)
    for flag in ("sortable", "no_index", "no_stem", "case_sensitive", "index_missing"):
        if getattr(attrs, flag, False):
            parts.append(flag)
    return f"{f.name} ({kind})" + (f": {', '.join(parts)}" if parts else "")


def write_yaml(path: str | Path, value: object) -> None:
    try:
        Path(path).write_bytes(msgspec.yaml.encode(value))
    except OSError as exc:
        raise UsageError(f"cannot write '{path}': {exc.strerror}", "check the path") from None


def report_summary(report: MigrationReport, echo: Callable[[str], None] = echo_safe) -> None:
    """A short human summary of a report: result, timings, failed checks, what to do."""
    echo(f"Index: {report.index_name}  ({report.kind}, {report.mode})")
    echo(f"Result: {report.result}" + (f" — {report.error}" if report.error else ""))
    timings = report.timings
    if timings.total_migration_duration_seconds:
        echo(
            f"Duration: {timings.total_migration_duration_seconds:.2f}s"
            f" (downtime {timings.downtime_duration_seconds:.2f}s)"
        )
    if report.benchmark_summary.documents:
        echo(f"Documents: {report.benchmark_summary.documents:,}")
    for check in report.validation.checks:
        mark = "ok  " if check.passed else "FAIL"
        echo(f"  [{mark}] {check.check}: {check.detail}")
    if report.conflicts:
        echo(f"Concurrent writes kept (not converted): {report.conflicts}")
        for key in report.conflict_sample[:5]:
            echo(f"  - {key}")
    for warning in report.warnings:
        echo(f"Warning: {warning}")
    for action in report.manual_actions:
        echo(f"Next: {action}")


def timeline(rows: list[InspectRow], echo: Callable[[str], None] = echo_safe) -> None:
    """The journal as a table: seq, time, event, step, batch, keys, detail/counts."""
    echo(
        f"{'seq':>5}  {'time (UTC)':<15} {'event':<18} {'step':<16} {'batch':>5} {'keys':>6}  detail"
    )
    for row in rows:
        at = row.at[11:26] if row.at else ""
        counts = " ".join(f"{k}={v}" for k, v in sorted(row.counts.items()))
        detail = " · ".join(x for x in (counts, row.detail) if x)
        batch = "" if row.batch is None else str(row.batch)
        keys = "" if row.keys is None else str(row.keys)
        echo(
            f"{row.seq:>5}  {at:<15} {row.event:<18} {row.step:<16} {batch:>5} {keys:>6}  {detail}"
        )


def batch_status_lines(state: BatchState) -> list[str]:
    """The guide's ``batch-status`` text, one line per item."""
    lines = [
        "Batch Migration Status",
        "======================",
        f"Batch ID: {state.batch_id}",
        f"Status: {state.status}",
        f"Started: {state.started_at}",
        f"Updated: {state.updated_at}",
        f"Completed: {len(state.completed)}",
    ]
    for done in state.completed:
        at = done.completed_at[11:19] if len(done.completed_at) >= 19 else done.completed_at
        error = f" - {done.error}" if done.status == FAILED and done.error else ""
        lines.append(f"  - {done.name}: {done.status}{error} ({at})")
    lines.append(f"In Progress: {state.current_index or '-'}")
    remaining = f" ({', '.join(state.remaining)})" if state.remaining else ""
    lines.append(f"Remaining: {len(state.remaining)}{remaining}")
    lines.append(f"Skipped: {len(state.skipped)}")
    lines += [f"  - {s.name}: {s.skip_reason}" for s in state.skipped]
    failed = [c for c in state.completed if c.status == FAILED]
    lines.append(f"Failed: {len(failed)}")
    lines += [f"  - {f.name}: {f.error}" for f in failed]
    return [printable(line) for line in lines]
