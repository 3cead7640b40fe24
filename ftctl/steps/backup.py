"""backup: the original bytes of every vector field that will be re-encoded, one segment per
key batch, read while the source index is still live (outside the downtime window).

The backup also converts every vector it reads, without writing anything: a vector that
cannot be converted is found here, before the drop, and journaled (``vectors_rejected``)
for the preflight to refuse on; and the segment records the digest of each conversion, so
a rollback recognises what the migration wrote without converting again.
"""

from __future__ import annotations

from typing import Literal

from ftctl.errors import MigrationFailed
from ftctl.journal.events import BatchDone, SegmentRef, StepName, VectorsRejected
from ftctl.journal.segments import SegmentPayload, pack_field
from ftctl.plan.codecs import convert_rows
from ftctl.steps.cas import DIGEST_SIZE, digest
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
SAMPLE = 20
"""Keys of each batch named in a ``vectors_rejected`` event."""
_NO_DIGEST = bytes(DIGEST_SIZE)
KINDS: tuple[Literal["wrong_length", "unconvertible"], ...] = ("wrong_length", "unconvertible")


def backup_batch(spec: RunSpec, batch: int, keys_ref: SegmentRef) -> Step[BatchDone]:
    """Read the batch's vectors (one HGET per key, HMGET for several fields; pipelined, no
    script), check that each converts, and write them, with the keys, to a segment."""
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

    def pack() -> tuple[SegmentPayload, list[VectorsRejected]]:
        blocks, digests, rejected = {}, {}, []
        for column, conversion in enumerate(spec.conversions):
            values = (
                replies
                if single
                else [row[column] if isinstance(row, list) else None for row in replies]
            )
            blocks[conversion.backup_field] = pack_field(
                values, dtype=conversion.source, dims=conversion.dims
            )
            converted, bad = convert_rows(
                values, conversion.source, conversion.target, conversion.dims, conversion.params
            )
            digests[conversion.backup_field] = b"".join(
                digest(v) if v is not None else _NO_DIGEST for v in converted
            )
            for kind in KINDS:
                rows = [i for i, why in bad.items() if why.kind == kind]
                if rows:
                    rejected.append(
                        VectorsRejected(
                            step=STEP,
                            batch=batch,
                            field=conversion.backup_field,
                            kind=kind,
                            count=len(rows),
                            keys=[keys[i] for i in rows[:SAMPLE]],
                            detail=bad[rows[0]].detail,
                        )
                    )
        return SegmentPayload(keys=keys, fields=blocks, digests=digests), rejected

    payload, rejected = yield Offload(pack)
    ref = yield WriteSegment(payload)
    events = [*rejected, BatchDone(step=STEP, batch=batch, keys=len(keys), segment=ref)]
    *_, done = yield Record(events)
    return done  # type: ignore[no-any-return]
