"""The document rewrites that run after the drop: rename_fields, rename_keys, quantize.

Each batch is atomic per key (server-side scripts, see :mod:`ftctl.steps.scripts`, and
WATCH/EXEC transactions, see :mod:`ftctl.steps.cas`), idempotent when redone, and never
overwrites what someone else wrote. Keys whose state does not match what the migration
expects are recorded as conflicts, not touched.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from ftctl.errors import MigrationFailed
from ftctl.journal.events import BatchDone, ConflictRecorded, KeysGone, SegmentRef, StepName
from ftctl.journal.segments import SegmentPayload, unpack_field
from ftctl.plan.codecs import convert_rows
from ftctl.steps import cas, scripts
from ftctl.steps.effects import Arg, Command, Commands, Offload, ReadSegment, Record, Step
from ftctl.steps.replies import script_statuses
from ftctl.steps.spec import Conversion, RunSpec

_STATUS_NAMES = {
    scripts.WRITTEN: "written",
    scripts.ALREADY: "already",
    scripts.CONFLICT: "conflicts",
    scripts.ABSENT: "absent",
}


def journal_batch(
    step: StepName,
    batch: int,
    keys: Sequence[bytes],
    statuses: Sequence[int],
    reason: str,
    *,
    expected: Sequence[bool] | None = None,
    extra: Mapping[str, int] | None = None,
) -> Step[BatchDone]:
    """Journal a batch's outcome: conflicts and keys gone first (with their keys), then the
    batch itself with its counts per status and ``extra`` counts (compare-and-set retries).

    A key absent on both sides is gone when the batch expected it (``expected``: per key;
    every key when omitted — a key rename expects each enumerated key).
    """
    if len(statuses) != len(keys):
        raise MigrationFailed(f"{step}: {len(statuses)} statuses for {len(keys)} keys")
    counts = Counter(_STATUS_NAMES[s] for s in statuses)
    counts.update(extra or {})
    events: list[object] = []
    conflicted = [k for k, s in zip(keys, statuses, strict=True) if s == scripts.CONFLICT]
    if conflicted:
        events.append(ConflictRecorded(step=step, keys=conflicted, reason=reason))
    wanted = expected if expected is not None else [True] * len(keys)
    gone = [k for k, s, w in zip(keys, statuses, wanted, strict=True) if s == scripts.ABSENT and w]
    if gone:
        events.append(KeysGone(step=step, keys=gone))
    events.append(BatchDone(step=step, batch=batch, keys=len(keys), counts=dict(counts)))
    recorded = yield Record(events)
    done: BatchDone = recorded[-1]
    return done


def rename_fields_batch(
    spec: RunSpec, batch: int, keys_ref: SegmentRef, *, step: StepName = "rename_fields"
) -> Step[BatchDone]:
    """Rename document fields of one key batch (the keys still have their source names);
    journaled as ``step`` (rollback renames back under its own step name)."""
    segment: SegmentPayload = yield ReadSegment(keys_ref)
    script = (
        scripts.RENAME_JSON_FIELDS if spec.storage_type == "json" else scripts.RENAME_HASH_FIELDS
    )
    pairs: list[Arg] = [name for r in spec.field_renames for name in (r.old, r.new)]
    replies = yield Commands(
        [("EVAL", script, len(chunk), *chunk, *pairs) for chunk in spec.chunks(segment.keys)]
    )
    return (
        yield from journal_batch(
            step,
            batch,
            segment.keys,
            script_statuses(replies, step),
            "the destination field already existed beside the source field",
            expected=[False] * len(segment.keys),
        )
    )


def rename_keys_batch(spec: RunSpec, batch: int, keys_ref: SegmentRef) -> Step[BatchDone]:
    """RENAMENX each key of one batch to its new prefix; an existing destination is a conflict."""
    assert spec.prefix_change is not None
    change = spec.prefix_change
    segment: SegmentPayload = yield ReadSegment(keys_ref)
    commands: list[Command] = []
    for chunk in spec.chunks(segment.keys):
        pairs: list[Arg] = [name for key in chunk for name in (key, change.rename(key))]
        commands.append(("EVAL", scripts.RENAME_KEYS, len(pairs), *pairs))
    replies = yield Commands(commands)
    return (
        yield from journal_batch(
            "rename_keys",
            batch,
            segment.keys,
            script_statuses(replies, "rename_keys"),
            "a key already existed at the destination name",
        )
    )


def convert_block(originals: list[bytes | None], conversion: Conversion) -> list[bytes | None]:
    """The conversion of each original of one field of a batch; ``None`` = leave it alone.

    Vectors of the wrong length (the source index could not have held them) and values the
    target cannot hold (left untouched only when the run was told so: the preflight refuses
    them otherwise) are skipped.
    """
    converted, _ = convert_rows(
        originals, conversion.source, conversion.target, conversion.dims, conversion.params
    )
    return converted


def quantize_batch(
    spec: RunSpec, batch: int, backup_ref: SegmentRef, *, watch: bool
) -> Step[BatchDone]:
    """Convert one backup segment and write it with compare-and-set against the original
    (``watch``: with WATCH/EXEC, else with the script; see :mod:`ftctl.steps.cas`).

    The conversion starts from the backed-up bytes, never from what is in Redis now, so a
    redone batch writes exactly the same bytes (also for float16↔bfloat16, int8↔uint8).
    """
    segment: SegmentPayload = yield ReadSegment(backup_ref)
    count = len(segment.keys)
    final_keys = [spec.final_key(k) for k in segment.keys]

    def prepare() -> cas.Prepared:
        columns = []
        for c in spec.conversions:
            originals = unpack_field(segment.fields[c.backup_field], count)
            converted = convert_block(originals, c)
            expected = [
                o if v is not None else None for o, v in zip(originals, converted, strict=True)
            ]
            columns.append(cas.Column(c.field, expected, [v or b"" for v in converted]))
        return cas.prepare(
            final_keys, columns, force=False, batch_size=spec.batch_size, watch=watch
        )

    prepared = yield Offload(prepare)
    written = yield from cas.write(prepared)
    return (
        yield from journal_batch(
            "quantize",
            batch,
            final_keys,
            written.statuses,
            "the vector changed after it was backed up; the newer value was kept",
            expected=cas.expects_values(prepared),
            extra=written.counts(),
        )
    )
