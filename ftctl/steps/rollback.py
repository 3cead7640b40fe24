"""Rollback: undo, in reverse order, what the journal says an apply did.

Restore original vector bytes (compare-and-set against the converted bytes; ``force``
overwrites what others wrote since), rename keys back, rename fields back, drop the target
index and recreate the source index from the plan's snapshot, wait, validate against the
source. Each batch is journaled under its own step name, so an interrupted rollback resumes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from ftctl.journal.events import (
    BatchDone,
    SegmentRef,
    StepFinished,
    StepSkipped,
    StepStarted,
)
from ftctl.journal.projections import RunState, project_run
from ftctl.journal.segments import SegmentPayload, unpack_field
from ftctl.steps import cas, index_ops, rewrite, scripts
from ftctl.steps.effects import Command, Commands, Offload, Parallel, ReadSegment, Record, Step
from ftctl.steps.replies import is_unknown_index, ok, script_statuses
from ftctl.steps.sequence import record_history
from ftctl.steps.spec import Conversion, DocFieldRename, RunSpec
from ftctl.steps.validate import validate

ROLLBACK_STEPS = (
    "drop_target",
    "restore_vectors",
    "restore_keys",
    "restore_fields",
    "recreate_source",
    "wait_source",
    "validate_source",
)


def restore_vectors_batch(
    spec: RunSpec, batch: int, backup_ref: SegmentRef, *, force: bool, watch: bool
) -> Step[BatchDone]:
    """Write the original bytes back where the converted bytes still are (``force``: also
    where they are not)."""
    segment: SegmentPayload = yield ReadSegment(backup_ref)
    count = len(segment.keys)
    final_keys = [spec.final_key(k) for k in segment.keys]

    def prepare() -> cas.Prepared:
        columns = []
        for c in spec.conversions:
            originals = unpack_field(segment.fields[c.backup_field], count)
            converted = rewrite.convert_block(originals, c)
            wanted = [o if o is not None else b"" for o in originals]
            columns.append(cas.Column(c.field, converted, wanted))
        return cas.prepare(
            final_keys, columns, force=force, batch_size=spec.batch_size, watch=watch
        )

    prepared = yield Offload(prepare)
    statuses = yield from cas.compare_and_set(prepared)
    return (
        yield from rewrite.journal_batch(
            "restore_vectors",
            batch,
            final_keys,
            statuses,
            "the vector changed after the migration wrote it; kept (use --force to overwrite)",
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


def _drop_target(spec: RunSpec) -> Step[int]:
    (reply,) = yield Commands([("FT.INFO", spec.target_index)])
    if is_unknown_index(reply):
        return 0
    (dropped,) = yield Commands([("FT.DROPINDEX", spec.target_index)])
    ok(dropped, f"FT.DROPINDEX {spec.target_index}")
    return 1


def rollback_sequence(
    spec: RunSpec,
    applied: RunState,
    state: RunState,
    *,
    force: bool,
    source_failures: int,
    expected_docs: int,
    reload: Callable[[], list[Any]],
) -> Step[bool]:
    """Undo what ``applied`` (the apply runs' projection) did; return whether validation passed."""
    did = set(applied.steps_started)
    backups = applied.batch_segments.get("backup", {})
    backup_refs = [backups[b] for b in sorted(backups)]
    source_needs_recreate = "drop" in did

    def skip(step: str) -> str | None:
        if step == "drop_target" and "create" not in did:
            return "the target index was never created"
        if step == "drop_target" and not source_needs_recreate:
            return "the source index was never dropped"
        if step == "restore_vectors" and "quantize" not in did:
            return "no vector was re-encoded"
        if step == "restore_keys" and "rename_keys" not in did:
            return "no key was renamed"
        if step == "restore_fields" and "rename_fields" not in did:
            return "no field was renamed"
        if step in ("recreate_source", "wait_source") and not source_needs_recreate:
            return "the source index was never dropped"
        return None

    for step in ROLLBACK_STEPS:
        if state.step_done(step):
            continue
        reason = skip(step)
        if reason is not None:
            yield Record([StepSkipped(step=step, reason=reason)])
            continue
        yield Record([StepStarted(step=step)])
        state = project_run(reload())
        counts: dict[str, int] = {}
        match step:
            case "drop_target":
                counts["dropped"] = yield from _drop_target(spec)
            case "restore_vectors":
                watch = yield from cas.watch_supported()
                pending = [
                    restore_vectors_batch(spec, b, ref, force=force, watch=watch)
                    for b, ref in enumerate(backup_refs)
                    if not state.batch_done(step, b)
                ]
                yield Parallel(pending)
            case "restore_keys":
                pending = [
                    restore_keys_batch(spec, b, ref)
                    for b, ref in enumerate(applied.key_segments)
                    if not state.batch_done(step, b)
                ]
                yield Parallel(pending)
            case "restore_fields":
                pending = [
                    restore_fields_batch(spec, b, ref)
                    for b, ref in enumerate(applied.key_segments)
                    if not state.batch_done(step, b)
                ]
                yield Parallel(pending)
            case "recreate_source":
                yield from index_ops.create_index(spec.source_schema)
                yield from record_history(spec.source_schema, forget=spec.target_index)
            case "wait_source":
                stats = yield from index_ops.wait_ready(spec.source_index, spec.timeout)
                counts["num_docs"] = stats.num_docs
            case "validate_source":
                view = source_view(spec)
                passed = yield from validate(
                    view,
                    schema=spec.source_schema,
                    expected_docs=(
                        applied.keys_enumerated
                        if spec.needs_keys and "enumerate" in applied.steps_finished
                        else expected_docs
                    ),
                    source_failures=source_failures,
                    key_segments=applied.key_segments,
                    backup_segments=backup_refs,
                    conflicts=sum(
                        state.conflicts_by_step.get(s, 0)
                        for s in ("restore_vectors", "restore_keys", "restore_fields")
                    ),
                )
                counts["passed"] = int(passed)
        yield Record([StepFinished(step=step, counts=counts)])
        state = project_run(reload())
    return not state.checks_failed
