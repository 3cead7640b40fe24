"""Rendering for humans: progress lines on stderr, report summaries, timelines."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import click
import msgspec

from ftctl import logs
from ftctl.errors import UsageError
from ftctl.journal.batch import FAILED, BatchState
from ftctl.journal.inspect import InspectRow
from ftctl.journal.report import MigrationReport, PacingReport
from ftctl.progress import Meter, duration
from ftctl.schema.model import Field, GeoShapeField, TagField, TextField, VectorField
from ftctl.text import printable


def echo_safe(text: str) -> None:
    """``click.echo`` of one line that may quote names: control characters escaped."""
    click.echo(printable(text))


@dataclass
class Progress:
    """``step  done/total docs  pct  rate/s  ETA`` as a live stderr line, on a terminal.

    Only when :func:`ftctl.logs.live_progress` (console format, not ``-q``, stderr a TTY);
    otherwise the run's periodic ``progress`` log lines say the same. Rate and ETA come
    from a :class:`~ftctl.progress.Meter` whose window starts at the step's first tick, so
    a resumed step counts only this run's work and the first tick shows no rate at all.
    """

    enabled: bool = field(default_factory=logs.live_progress)
    _step: str = ""
    _meter: Meter | None = None
    _last: float = 0.0

    def __call__(self, step: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if step != self._step or self._meter is None:
            self._step, self._meter, self._last = step, Meter(now, done, total, MIN_SPAN), 0.0
        else:
            self._meter.update(now, done, total)
        if now - self._last < REDRAW and (not total or done < total):
            return
        self._last = now
        logs.show_status(self.line())

    def line(self) -> str:
        """The status line as it is drawn."""
        meter = self._meter
        if meter is None:
            return ""
        total, done, rate = meter.total, meter.done, meter.rate
        of = f"/{total:,}" if total else ""
        percent = f"{100 * done / total:5.1f}%" if total else ""
        speed = f"{rate:,.0f}/s" if rate is not None else "-/s"
        eta = f"ETA {duration(meter.eta)}" if total else ""
        return f"{self._step:<16} {done:>10,}{of} docs {percent}  {speed:>10}  {eta}".rstrip()

    def close(self) -> None:
        if self.enabled:
            logs.show_status(None)


MIN_SPAN = 0.3
"""Seconds of ticks the live line measures before it shows a rate: its window starts at
the first tick, which comes with a whole batch already done."""
REDRAW = 0.1
"""Seconds between redraws of the live line."""


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
    if report.pacing is not None:
        echo(f"Pacing: {pacing_line(report.pacing)}")
    if report.warnings:
        # Every warning of a report is the plan's, printed when the plan was made.
        count = len(report.warnings)
        echo(
            f"Plan warnings: {count} (reviewed when the plan was made; "
            "listed under 'warnings' in the plan and the report)"
        )
    for action in report.manual_actions:
        echo(f"Next: {action}")


def pacing_line(pacing: PacingReport) -> str:
    """How a run paced its writes, in one line."""
    if not pacing.throttle:
        parts = ["not throttled"]
    else:
        target = f"target {pacing.max_latency_ms:g} ms, main thread <= {pacing.max_cpu:.0%}"
        if pacing.slowed:
            parts = [
                f"slowed {pacing.slowed} time{'s' if pacing.slowed != 1 else ''} ({target}): "
                f"batch down to {pacing.lowest_batch}, pauses up to "
                f"{pacing.longest_sleep_ms:g} ms"
                + (
                    f", latency up to {pacing.highest_latency_ms:g} ms"
                    if pacing.highest_latency_ms is not None
                    else ""
                )
            ]
        else:
            parts = [f"full speed ({target})"]
    if pacing.pauses:
        held = f"{pacing.paused_seconds:.1f}s"
        parts.append(f"paused {pacing.pauses} time{'s' if pacing.pauses != 1 else ''} ({held})")
    if pacing.paused:
        parts.append("still paused")
    return "; ".join(parts)


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
    if state.interrupted:
        lines.append(f"Interrupted: {len(state.interrupted)} (batch-resume continues each)")
        lines += [
            f"  - {i.name}: {i.error or 'stopped before its migration ended'}"
            for i in state.interrupted
        ]
    lines.append(f"Skipped: {len(state.skipped)}")
    lines += [f"  - {s.name}: {s.skip_reason}" for s in state.skipped]
    failed = [c for c in state.completed if c.status == FAILED]
    lines.append(f"Failed: {len(failed)}")
    lines += [f"  - {f.name}: {f.error}" for f in failed]
    return [printable(line) for line in lines]
