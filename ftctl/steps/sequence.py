"""The order of the drop_recreate steps, as one generator a driver runs.

Which steps and batches are already done comes only from the journal's projection
(:class:`ftctl.journal.RunState`); every step and batch is safe to run twice.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from ftctl.journal.events import SegmentRef, StepFinished, StepSkipped, StepStarted
from ftctl.journal.projections import RunState, project_run
from ftctl.schema.model import IndexSchema
from ftctl.steps import backup, cas, index_ops, rewrite
from ftctl.steps.effects import Parallel, Record, Step
from ftctl.steps.enumerate import enumerate_keys
from ftctl.steps.history import delete_history, write_history
from ftctl.steps.spec import RunSpec
from ftctl.steps.validate import check_events, document_checks, validate

DROP_RECREATE_STEPS = (
    "enumerate",
    "backup",
    "preflight",
    "drop",
    "rename_fields",
    "rename_keys",
    "quantize",
    "create",
    "wait",
    "validate",
)

REWRITE_STEPS = ("rename_fields", "rename_keys", "quantize")
"""Steps that leave a key they find changed by someone else untouched (a conflict): each
such key was not migrated, so validation fails while any is left."""

BatchStep = Callable[[RunSpec, int, SegmentRef], Step[Any]]


def _skip_reason(spec: RunSpec, step: str) -> str | None:
    if step == "enumerate" and not spec.needs_keys:
        return "no document changes: keys are not needed"
    if step in ("backup", "quantize") and not spec.conversions:
        return "no hash vector is re-encoded"
    if step == "rename_fields" and not spec.field_renames:
        return "no field renames"
    if step == "rename_keys" and spec.prefix_change is None:
        return "no prefix change"
    return None


def _batches(
    spec: RunSpec, state: RunState, step: str, run: BatchStep, segments: list[SegmentRef]
) -> Step[dict[str, int]]:
    pending = [
        run(spec, batch, ref)
        for batch, ref in enumerate(segments)
        if not state.batch_done(step, batch)
    ]
    yield Parallel(pending)
    return {"batches": len(segments)}


def record_history(schema: IndexSchema, *, forget: str) -> Step[None]:
    """Remember the schema an index was created with (``ftctl:schema:<index>``); an index
    that no longer exists under ``forget`` loses its record."""
    yield from write_history(schema)
    if forget != schema.name:
        yield from delete_history(forget)


def drop_recreate(
    spec: RunSpec,
    state: RunState,
    *,
    source_failures: int,
    expected_docs: int,
    reload: Callable[[], list[Any]],
) -> Step[bool]:
    """Run every step not yet done; return whether validation passed.

    ``reload`` returns the journal's events so far: later steps read what earlier steps
    recorded (key segments, backup segments, conflicts) from the projection, never from
    variables that a crash would lose.
    """
    for step in DROP_RECREATE_STEPS:
        if state.step_done(step):
            continue
        reason = _skip_reason(spec, step)
        if reason is not None:
            yield Record([StepSkipped(step=step, reason=reason)])
            continue
        yield Record([StepStarted(step=step)])
        state = project_run(reload())
        counts: dict[str, int] = {}
        match step:
            case "enumerate":
                counts["keys"] = yield from enumerate_keys(spec)
            case "backup":
                counts = yield from _batches(
                    spec, state, step, backup.backup_batch, state.key_segments
                )
            case "preflight":
                yield from index_ops.preflight(spec)
            case "drop":
                dropped = yield from index_ops.drop_source(spec)
                counts["dropped"] = int(dropped)
            case "rename_fields":
                counts = yield from _batches(
                    spec, state, step, rewrite.rename_fields_batch, state.key_segments
                )
            case "rename_keys":
                counts = yield from _batches(
                    spec, state, step, rewrite.rename_keys_batch, state.key_segments
                )
            case "quantize":
                backups = state.batch_segments.get("backup", {})
                ordered = [backups[b] for b in sorted(backups)]
                watch = yield from cas.watch_supported()
                quantize = functools.partial(rewrite.quantize_batch, watch=watch)
                counts = yield from _batches(spec, state, step, quantize, ordered)
            case "create":
                yield from index_ops.create_index(spec.target_schema)
                yield from record_history(spec.target_schema, forget=spec.source_index)
            case "wait":
                # The document checks need no index: they run while the server builds it.
                backups = state.batch_segments.get("backup", {})
                stats, checks = yield Parallel(
                    [
                        index_ops.wait_ready(spec.target_index, spec.timeout),
                        document_checks(
                            spec, state.key_segments, [backups[b] for b in sorted(backups)]
                        ),
                    ]
                )
                yield Record(check_events(checks))
                counts["num_docs"] = stats.num_docs
            case "validate":
                backups = state.batch_segments.get("backup", {})
                passed = yield from validate(
                    spec,
                    schema=spec.target_schema,
                    expected_docs=state.keys_enumerated if spec.needs_keys else expected_docs,
                    source_failures=source_failures,
                    key_segments=state.key_segments,
                    backup_segments=[backups[b] for b in sorted(backups)],
                    conflicts=sum(state.conflicts_by_step.get(s, 0) for s in REWRITE_STEPS),
                    documents=False,
                )
                counts["passed"] = int(passed)
        yield Record([StepFinished(step=step, counts=counts)])
        state = project_run(reload())
    return not state.checks_failed
