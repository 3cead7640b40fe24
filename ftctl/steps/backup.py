"""backup: the original bytes of every vector field that will be re-encoded, one segment per
key batch, read while the source index is still live (outside the downtime window)."""

from __future__ import annotations

from ftctl.errors import MigrationFailed
from ftctl.journal.events import BatchDone, SegmentRef, StepName
from ftctl.journal.segments import SegmentPayload, pack_field
from ftctl.steps.effects import (
    Command,
    Commands,
    Offload,
    ReadSegment,
    Record,
    ReplyError,
    Step,
    WriteSegment,
)
from ftctl.steps.replies import ok
from ftctl.steps.spec import RunSpec

STEP: StepName = "backup"


def backup_batch(spec: RunSpec, batch: int, keys_ref: SegmentRef) -> Step[BatchDone]:
    """Read the batch's vectors (one HGET per key, HMGET for several fields; pipelined, no
    script) and write them, with the keys, to a segment."""
    keys_segment: SegmentPayload = yield ReadSegment(keys_ref)
    keys = keys_segment.keys
    fields = [c.backup_field for c in spec.conversions]
    single = len(fields) == 1
    commands: list[Command] = (
        [("HGET", key, fields[0]) for key in keys]
        if single
        else [("HMGET", key, *fields) for key in keys]
    )
    replies = yield Commands(commands)
    if ReplyError in map(type, replies):
        ok(next(r for r in replies if isinstance(r, ReplyError)), "backup read")
    if len(replies) != len(keys):
        raise MigrationFailed(f"backup read returned {len(replies)} rows for {len(keys)} keys")

    def pack() -> SegmentPayload:
        blocks = {}
        for column, conversion in enumerate(spec.conversions):
            values = (
                replies
                if single
                else [row[column] if isinstance(row, list) else None for row in replies]
            )
            blocks[conversion.backup_field] = pack_field(
                values, dtype=conversion.source, dims=conversion.dims
            )
        return SegmentPayload(keys=keys, fields=blocks)

    payload = yield Offload(pack)
    ref = yield WriteSegment(payload)
    (done,) = yield Record([BatchDone(step=STEP, batch=batch, keys=len(keys), segment=ref)])
    return done  # type: ignore[no-any-return]
