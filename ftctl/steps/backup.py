"""backup: the original bytes of every vector field that will be re-encoded, one segment per
key batch, read while the source index is still live (outside the downtime window)."""

from __future__ import annotations

from ftctl.errors import MigrationFailed
from ftctl.journal.events import BatchDone, SegmentRef
from ftctl.journal.segments import SegmentPayload, pack_field
from ftctl.steps import scripts
from ftctl.steps.effects import Commands, Offload, ReadSegment, Record, Step, WriteSegment
from ftctl.steps.replies import ok
from ftctl.steps.spec import RunSpec

STEP = "backup"


def backup_batch(spec: RunSpec, batch: int, keys_ref: SegmentRef) -> Step[BatchDone]:
    """Read the batch's vectors (HMGET per key) and write them, with the keys, to a segment."""
    keys_segment: SegmentPayload = yield ReadSegment(keys_ref)
    keys = keys_segment.keys
    fields = [c.backup_field for c in spec.conversions]
    # One script call per chunk instead of one HMGET per key: the client parses few replies.
    replies = yield Commands(
        [("EVAL", scripts.READ_FIELDS, len(chunk), *chunk, *fields) for chunk in spec.chunks(keys)]
    )
    rows: list[object] = []
    for reply in replies:
        chunk_rows = ok(reply, "backup read")
        rows.extend(chunk_rows if isinstance(chunk_rows, list) else [])
    if len(rows) != len(keys):
        raise MigrationFailed(f"backup read returned {len(rows)} rows for {len(keys)} keys")

    def pack() -> SegmentPayload:
        blocks = {}
        for column, conversion in enumerate(spec.conversions):
            values = [row[column] if isinstance(row, list) else None for row in rows]
            blocks[conversion.backup_field] = pack_field(
                values, dtype=conversion.source, dims=conversion.dims
            )
        return SegmentPayload(keys=keys, fields=blocks)

    payload = yield Offload(pack)
    ref = yield WriteSegment(payload)
    (done,) = yield Record([BatchDone(step=STEP, batch=batch, keys=len(keys), segment=ref)])
    return done  # type: ignore[no-any-return]
