"""The ``journal inspect`` view: one row per event (a projection, like every report)."""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from ftctl.journal.events import (
    AnyEvent,
    BatchDone,
    BatchRunStarted,
    CheckFailed,
    CheckPassed,
    ConflictRecorded,
    KeysEnumerated,
    Note,
    PaceChanged,
    QueryBaseline,
    QueryCompared,
    RunFinished,
    RunPaused,
    RunResumed,
    RunStarted,
    StepFinished,
    StepSkipped,
    event_tag,
    step_of,
)


class InspectRow(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One journal event as a timeline row (``--json`` prints these, one per line)."""

    seq: int
    at: str
    event: str
    step: str = ""
    batch: int | None = None
    keys: int | None = None
    detail: str = ""
    counts: dict[str, int] = msgspec.field(default_factory=dict)


def _detail(event: AnyEvent) -> str:
    match event:
        case BatchRunStarted():
            return f"batch run {event.run_id} · plan {event.plan_sha256[:12]} · {event.redis_url}"
        case RunStarted():
            return f"{event.kind} run {event.run_id} · plan {event.plan_sha256[:12]} · {event.redis_url}"
        case StepSkipped():
            return event.reason
        case CheckPassed():
            return f"{event.check}: {event.detail}"
        case CheckFailed():
            return f"{event.check}: {event.detail}"
        case ConflictRecorded():
            shown = ", ".join(k.decode(errors="replace") for k in event.keys[:3])
            more = f" (+{len(event.keys) - 3} more)" if len(event.keys) > 3 else ""
            return f"{event.reason}: {shown}{more}"
        case Note():
            return event.message
        case QueryBaseline():
            shown = ", ".join(f"{q.name}: {q.total}" for q in event.queries)
            return f"results on '{event.index}': {shown}"
        case QueryCompared() if event.error:
            return f"{event.name} on '{event.index}': {event.error}"
        case QueryCompared():
            overlap = "-" if event.overlap is None else f"{event.overlap:.2f}"
            before = "-" if event.count_before is None else str(event.count_before)
            return (
                f"{event.name} on '{event.index}': overlap@{event.k} {overlap}, "
                f"results {before} → {event.count_after}"
            )
        case RunFinished():
            return event.result + (f": {event.error}" if event.error else "")
        case RunPaused():
            return "paused by an operator: writes held until 'ftctl migrate unpause'"
        case RunResumed():
            return "pause flag removed: writes go on"
        case PaceChanged():
            measured = [f"batch {event.batch}", f"sleep {event.sleep_ms:g} ms"]
            if event.latency_ms is not None:
                measured.append(f"latency {event.latency_ms:g} ms")
            if event.cpu is not None:
                measured.append(f"cpu {event.cpu:.0%}")
            return f"{event.change}: " + ", ".join(measured)
        case BatchDone() if event.segment is not None:
            return f"segment {event.segment.filename}"
        case KeysEnumerated():
            return f"segment {event.segment.filename}"
        case _:
            return ""


def inspect_rows(events: Iterable[AnyEvent], *, index: str | None = None) -> list[InspectRow]:
    """Timeline rows of ``events`` (``index`` keeps only runs of that index)."""
    rows = []
    current_index: str | None = None
    for event in events:
        if isinstance(event, RunStarted):
            current_index = event.index_name
        elif isinstance(event, BatchRunStarted):
            current_index = event.batch_id
        if index is not None and current_index != index:
            continue
        step = step_of(event) or ""
        batch = getattr(event, "batch", None)
        keys: int | None = (
            getattr(event, "keys", None)
            if not isinstance(event, ConflictRecorded)
            else len(event.keys)
        )
        counts = dict(event.counts) if isinstance(event, BatchDone | StepFinished) else {}
        rows.append(
            InspectRow(
                seq=event.seq,
                at=event.at.isoformat() if event.at else "",
                event=event_tag(event),
                step=step,
                batch=batch if isinstance(batch, int) else None,
                keys=keys if isinstance(keys, int) else None,
                detail=_detail(event),
                counts=counts,
            )
        )
    return rows


__all__ = ["InspectRow", "inspect_rows"]
