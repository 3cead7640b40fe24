"""The inverse steps of drop_recreate: what a rollback runs to undo an apply.

Restore original vector bytes (compare-and-set against the converted bytes; ``force``
overwrites what others wrote since), rename keys back, rename fields back, drop the target
index. Each batch is journaled under its own step name, so an interrupted rollback resumes.
The order and the conditions are the rollback table's (:mod:`ftctl.steps.tables`).
"""

from __future__ import annotations

from typing import Any

import msgspec

from ftctl.journal.events import BatchDone, SegmentRef
from ftctl.journal.segments import SegmentPayload, unpack_field
from ftctl.steps import cas, rewrite, scripts
from ftctl.steps.effects import Command, Commands, Offload, ReadSegment, Step
from ftctl.steps.replies import is_unknown_index, ok, script_statuses
from ftctl.steps.spec import Conversion, DocFieldRename, RunSpec

_NO_DIGEST = bytes(cas.DIGEST_SIZE)


def restore_vectors_batch(
    spec: RunSpec, batch: int, backup_ref: SegmentRef, *, force: bool, watch: bool
) -> Step[BatchDone]:
    """Write the original bytes back where the bytes the migration wrote still are
    (``force``: also where they are not). What it wrote is known from the digests the
    backup recorded, so an original that cannot be converted never fails the rollback."""
    segment: SegmentPayload = yield ReadSegment(backup_ref)
    count = len(segment.keys)
    final_keys = [spec.final_key(k) for k in segment.keys]

    def prepare() -> cas.Prepared:
        columns = []
        for c in spec.conversions:
            originals = unpack_field(segment.fields[c.backup_field], count)
            wanted = [o if o is not None else b"" for o in originals]
            recorded = segment.digests.get(c.backup_field)
            if recorded is not None:
                # What the migration wrote, as the backup recorded it: never converted again.
                size = cas.DIGEST_SIZE
                expected: list[bytes | None] = [
                    None if o is None or d == _NO_DIGEST else d
                    for o, d in zip(
                        originals,
                        (recorded[i * size : (i + 1) * size] for i in range(count)),
                        strict=True,
                    )
                ]
                columns.append(cas.Column(c.field, expected, wanted, digests=True))
            else:  # a backup written before digests existed
                converted = rewrite.convert_block(originals, c)
                columns.append(cas.Column(c.field, converted, wanted))
        return cas.prepare(
            final_keys, columns, force=force, batch_size=spec.batch_size, watch=watch
        )

    prepared = yield Offload(prepare)
    written = yield from cas.write(prepared)
    return (
        yield from rewrite.journal_batch(
            "restore_vectors",
            batch,
            final_keys,
            written.statuses,
            "the vector changed after the migration wrote it; kept (use --force to overwrite)",
            expected=cas.expects_values(prepared),
            extra=written.counts(),
        )
    )


def restore_keys_batch(spec: RunSpec, batch: int, keys_ref: SegmentRef) -> Step[BatchDone]:
    """RENAMENX each key back from its new prefix to its original name."""
    assert spec.prefix_change is not None
    change = spec.prefix_change
    segment: SegmentPayload = yield ReadSegment(keys_ref)
    commands: list[Command] = []
    for chunk in spec.chunks(segment.keys):
        pairs: list[Any] = [name for key in chunk for name in (change.rename(key), key)]
        commands.append(("EVAL", scripts.RENAME_KEYS, len(pairs), *pairs))
    replies = yield Commands(commands)
    return (
        yield from rewrite.journal_batch(
            "restore_keys",
            batch,
            segment.keys,
            script_statuses(replies, "restore_keys"),
            "a key exists under both its original and its migrated name; both kept",
        )
    )


def restore_fields_batch(spec: RunSpec, batch: int, keys_ref: SegmentRef) -> Step[BatchDone]:
    """Rename document fields back (the keys have their original names again)."""
    reverse = msgspec.structs.replace(
        spec, field_renames=[DocFieldRename(old=r.new, new=r.old) for r in spec.field_renames]
    )
    done: BatchDone = yield from rewrite.rename_fields_batch(
        reverse, batch, keys_ref, step="restore_fields"
    )
    return done


def source_view(spec: RunSpec) -> RunSpec:
    """The spec seen from the other side: validate the source schema on original key names."""
    return msgspec.structs.replace(
        spec,
        source_index=spec.target_index,
        target_index=spec.source_index,
        source_schema=spec.target_schema,
        target_schema=spec.source_schema,
        prefix_change=None,
        field_renames=[],
        conversions=[
            Conversion(
                backup_field=c.backup_field,
                field=c.backup_field,
                source=c.source,
                target=c.source,
                dims=c.dims,
            )
            for c in spec.conversions
        ],
    )


def drop_target(spec: RunSpec) -> Step[int]:
    """FT.DROPINDEX the target (never DD); 0 when it does not exist."""
    (reply,) = yield Commands([("FT.INFO", spec.target_index)])
    if is_unknown_index(reply):
        return 0
    (dropped,) = yield Commands([("FT.DROPINDEX", spec.target_index)])
    ok(dropped, f"FT.DROPINDEX {spec.target_index}")
    return 1
