"""Every mode as a table of steps, and the rollback of each as the table of its inverses.

- :data:`DROP_RECREATE`: enumerate → backup → preflight → drop → rename_fields → rename_keys
  → quantize → create → wait → validate (DESIGN §3);
- :data:`ALTER`: FT.ALTER SCHEMA ADD in place; :data:`SHADOW`: a shadow index with the
  target schema, verified, swapped in with one MULTI/EXEC (DESIGN §5b);
- their rollbacks (:func:`~ftctl.steps.runner.rollback_table`): the inverse of each step the
  journal says was started, in reverse order, then a validation of the source;
- :data:`VALIDATE`: ``migrate validate`` (checks only);
- in every apply table, ``query_baseline`` first and ``query_compare`` where the target is
  verified (after ``validate``; online before the cut-over), skipped without the user's
  queries (:mod:`ftctl.steps.user_queries`).

The one runner (:func:`~ftctl.steps.runner.run_table`) walks any of them; the marks of
:func:`marks_for` tell the journal's projections where downtime and validation lie.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from datetime import datetime

from ftctl.errors import MigrationFailed, RefusedError
from ftctl.journal.events import (
    BatchDone,
    CutoverDone,
    Mode,
    Note,
    QueryCompared,
    RunKind,
    SegmentRef,
    ShadowCreated,
    ShadowReady,
    StepName,
)
from ftctl.journal.projections import RunState, StepMarks
from ftctl.schema.model import IndexSchema
from ftctl.steps import (
    backup,
    cas,
    expand,
    index_ops,
    online,
    rewrite,
    rollback,
    safety,
    user_queries,
)
from ftctl.steps.effects import (
    Captured,
    Parallel,
    ReadSegment,
    StartCapture,
    Step,
    StopCapture,
    TakeCaptured,
)
from ftctl.steps.enumerate import count_keys, enumerate_keys
from ftctl.steps.history import delete_history, record_history
from ftctl.steps.names import point_names
from ftctl.steps.runner import (
    Counts,
    RunContext,
    StepDef,
    Table,
    merge_marks,
    record,
    rollback_table,
)
from ftctl.steps.spec import RunSpec, named
from ftctl.steps.validate import Checks, check_events, document_checks, validate

BatchBody = Callable[[RunSpec, int, SegmentRef], Step[BatchDone]]

REWRITE_STEPS: tuple[StepName, ...] = ("rename_fields", "rename_keys", "quantize")
"""Steps that leave a key they find changed by someone else untouched (a conflict): each
such key was not migrated, so validation fails while any is left."""
RESTORE_STEPS: tuple[StepName, ...] = ("restore_vectors", "restore_keys", "restore_fields")


def _batches(
    ctx: RunContext, step: StepName, body: BatchBody, segments: Sequence[SegmentRef]
) -> Step[Counts]:
    """Run ``body`` on every batch the journal does not record as done (in parallel)."""
    yield Parallel(
        [
            body(ctx.spec, batch, ref)
            for batch, ref in enumerate(segments)
            if not ctx.state.batch_done(step, batch)
        ]
    )
    return {"batches": len(segments)}


# --- the user's own queries: a baseline first, compared where the target is verified ------


def _queries_skip(ctx: RunContext) -> str | None:
    if ctx.queries or ctx.state.query_baseline is not None:
        return None
    return "no queries to check"


def _query_baseline(ctx: RunContext) -> Step[Counts]:
    """Run the user's queries on the source, once: a baseline in the journal is reused."""
    taken = ctx.state.query_baseline
    if taken is None:
        spec = ctx.spec
        # An index still building answers with part of its documents.
        yield from index_ops.wait_ready(spec.source_index, spec.timeout, report=False)
        taken = yield from user_queries.take_baseline(spec, ctx.queries)
        yield from record(ctx.state, [taken])
    return {"queries": len(taken.queries)}


QUERY_BASELINE = StepDef(
    "query_baseline", _query_baseline, skip=_queries_skip, redo_on_change=False
)
"""The first step of every apply table: what the source answers before anything changes."""


def _compare(
    where: Callable[[RunContext], tuple[str, IndexSchema]], *, before_cutover: bool = False
) -> StepDef:
    """The comparison step, against the index ``where`` names (with its schema).

    ``before_cutover``: a failed query stops the run before the cut-over (the source still
    serves); otherwise it fails the validation.
    """

    def body(ctx: RunContext) -> Step[Counts]:
        index, schema = where(ctx)
        events = yield from user_queries.compare(
            ctx.spec, ctx.state.query_baseline, ctx.queries, index=index, schema=schema
        )
        yield from record(ctx.state, events)
        compared = [e for e in events if isinstance(e, QueryCompared)]
        failed = [e.name for e in compared if not e.passed]
        if failed and before_cutover:
            raise VerificationFailed(
                f"query checks failed on '{index}' ({', '.join(failed)}); it was not cut over",
                "see the report's validation.queries; 'ftctl migrate abort' drops the new "
                "index, or re-run apply with lower thresholds in --query-check-file to accept",
            )
        return {"queries": len(compared), "failed": len(failed)}

    return StepDef("query_compare", body, skip=_queries_skip, validation=True)


# --- drop_recreate ------------------------------------------------------------------------


def _enumerate(ctx: RunContext) -> Step[Counts]:
    # An index still building does not list every document yet: wait until it has.
    yield from index_ops.wait_ready(ctx.spec.source_index, ctx.spec.timeout, report=False)
    found = yield from enumerate_keys(ctx.spec, writers=ctx.spec.online is not None)
    return {"keys": found.keys, "unlisted": found.unlisted}


def _backup(ctx: RunContext) -> Step[Counts]:
    return (yield from _batches(ctx, "backup", backup.backup_batch, ctx.state.key_segments))


def _preflight(ctx: RunContext) -> Step[Counts]:
    spec, state = ctx.spec, ctx.state
    found = safety.rejected_vectors(spec, state)
    found += safety.unlisted_documents(spec, state)
    found += yield from safety.rename_destinations(spec, state.key_segments)
    found += yield from safety.prefix_covered(spec)
    found += yield from safety.segments_intact([*state.key_segments, *state.segments_of("backup")])
    yield from index_ops.preflight(spec, found)
    return {}


def _drop(ctx: RunContext) -> Step[Counts]:
    return {"dropped": int((yield from index_ops.drop_source(ctx.spec)))}


def _rename_fields(ctx: RunContext) -> Step[Counts]:
    body = rewrite.rename_fields_batch
    return (yield from _batches(ctx, "rename_fields", body, ctx.state.key_segments))


def _rename_keys(ctx: RunContext) -> Step[Counts]:
    body = rewrite.rename_keys_batch
    return (yield from _batches(ctx, "rename_keys", body, ctx.state.key_segments))


def _quantize(ctx: RunContext) -> Step[Counts]:
    watch = yield from cas.watch_supported()
    body = functools.partial(rewrite.quantize_batch, watch=watch)
    return (yield from _batches(ctx, "quantize", body, ctx.state.segments_of("backup")))


def _create(ctx: RunContext) -> Step[Counts]:
    spec = ctx.spec
    yield from index_ops.create_index(spec.target_schema)
    # The drop took the source's aliases with it: the kept ones now name the target.
    pointed = yield from point_names(spec.target_index, spec.names_after())
    yield from record_history(
        spec.target_schema, forget=spec.source_index, aliases=spec.names_after()
    )
    return {"aliases": pointed} if pointed else {}


def _wait(ctx: RunContext) -> Step[Counts]:
    # The document checks need no index: they run while the server builds it.
    spec, state = ctx.spec, ctx.state
    stats, checks = yield Parallel(
        [
            index_ops.wait_ready(spec.target_index, spec.timeout),
            document_checks(
                spec, state.key_segments, state.segments_of("backup"), gone=_gone(state)
            ),
        ]
    )
    yield from record(state, check_events(checks))
    return {"num_docs": stats.num_docs}


def _validate(ctx: RunContext) -> Step[Counts]:
    spec, state = ctx.spec, ctx.state
    left = state.rejected.get("unconvertible")
    # Vectors the user chose to leave unconverted cannot be indexed by the target.
    skipped = left.count if left is not None and spec.skip_invalid else 0
    passed = yield from validate(
        spec,
        schema=spec.target_schema,
        expected_docs=_documents(state) if spec.needs_keys else spec.expected_docs,
        source_failures=spec.source_failures + skipped,
        key_segments=state.key_segments,
        backup_segments=state.segments_of("backup"),
        conflicts=sum(state.conflicts_by_step.get(s, 0) for s in REWRITE_STEPS),
        documents=False,
        gone=_gone(state),
        names=spec.names_after(),
    )
    return {"passed": int(passed)}


def _gone(state: RunState) -> int:
    """Keys a step found gone (the most any step found: each saw the same keys)."""
    return max(state.gone_by_step.values(), default=0)


def _documents(state: RunState) -> int:
    """The documents the index held as enumerated (and failed ones the enumeration could not
    list: they still count in ``num_docs + hash_indexing_failures``)."""
    return state.keys_enumerated + state.step_counts.get("enumerate", {}).get("unlisted", 0)


def _unless(test: Callable[[RunSpec], object], reason: str) -> Callable[[RunContext], str | None]:
    return lambda ctx: None if test(ctx.spec) else reason


DROP_RECREATE = Table(
    "drop_recreate",
    (
        QUERY_BASELINE,
        StepDef(
            "enumerate",
            _enumerate,
            skip=_unless(lambda s: s.needs_keys, "no document changes: keys are not needed"),
            redo_on_change=False,
        ),
        StepDef(
            "backup",
            _backup,
            skip=_unless(lambda s: s.conversions, "no hash vector is re-encoded"),
            redo_on_change=False,
        ),
        StepDef("preflight", _preflight, redo_on_change=False),
        StepDef("drop", _drop, inverse=("recreate_source", "wait_source"), downtime=True),
        StepDef(
            "rename_fields",
            _rename_fields,
            skip=_unless(lambda s: s.field_renames, "no field renames"),
            inverse=("restore_fields",),
            downtime=True,
        ),
        StepDef(
            "rename_keys",
            _rename_keys,
            skip=_unless(lambda s: s.prefix_change, "no prefix change"),
            inverse=("restore_keys",),
            downtime=True,
        ),
        StepDef(
            "quantize",
            _quantize,
            skip=_unless(lambda s: s.conversions, "no hash vector is re-encoded"),
            inverse=("restore_vectors",),
            downtime=True,
        ),
        StepDef("create", _create, inverse=("drop_target",), downtime=True),
        StepDef("wait", _wait, downtime=True, validation=True),
        StepDef("validate", _validate, validation=True),
        _compare(lambda ctx: (ctx.spec.target_index, ctx.spec.target_schema)),
    ),
)


# --- the rollback of drop_recreate --------------------------------------------------------


def _undoes(forward: StepName, reason: str) -> Callable[[RunContext], str | None]:
    """Needed only when the apply started ``forward``."""
    return lambda ctx: None if forward in ctx.applied.steps_started else reason


def _rollback_preflight(ctx: RunContext) -> Step[Counts]:
    """Before the rollback drops anything: every segment it will read is intact (those of
    steps that never started are not read: a damaged one must not block the rollback)."""
    applied = ctx.applied
    found = yield from safety.segments_intact(
        [*_key_segments_read(applied), *_backup_segments_read(applied)]
    )
    yield from record(ctx.state, safety.check_events(found, "rollback_preflight"))
    if found:
        raise RefusedError(
            "rollback refused, nothing was changed: " + "; ".join(d for _, d in found),
            "restore the backup directory from a copy; the migrated index keeps serving",
        )
    return {}


def _key_segments_read(applied: RunState) -> list[SegmentRef]:
    """The key lists a rollback reads: only once a step that moves or rewrites keys began."""
    touched = {"rename_fields", "rename_keys", "quantize"} & set(applied.steps_started)
    return list(applied.key_segments) if touched else []


def _backup_segments_read(applied: RunState) -> list[SegmentRef]:
    """The original vectors a rollback reads: only once quantize began."""
    return applied.segments_of("backup") if "quantize" in applied.steps_started else []


def _drop_target_skip(ctx: RunContext) -> str | None:
    started = ctx.applied.steps_started
    if "create" not in started:
        return "the target index was never created"
    if "drop" not in started:
        return "the source index was never dropped"
    return None


def _drop_target(ctx: RunContext) -> Step[Counts]:
    return {"dropped": (yield from rollback.drop_target(ctx.spec))}


def _restore_vectors(ctx: RunContext) -> Step[Counts]:
    watch = yield from cas.watch_supported()
    body = functools.partial(rollback.restore_vectors_batch, force=ctx.force, watch=watch)
    segments = ctx.applied.segments_of("backup")
    return (yield from _batches(ctx, "restore_vectors", body, segments))


def _restore_keys(ctx: RunContext) -> Step[Counts]:
    body = rollback.restore_keys_batch
    return (yield from _batches(ctx, "restore_keys", body, ctx.applied.key_segments))


def _restore_fields(ctx: RunContext) -> Step[Counts]:
    body = rollback.restore_fields_batch
    return (yield from _batches(ctx, "restore_fields", body, ctx.applied.key_segments))


def _recreate_source(ctx: RunContext) -> Step[Counts]:
    spec = ctx.spec
    yield from index_ops.create_index(spec.source_schema)
    pointed = yield from point_names(spec.source_index, spec.names_before())
    yield from record_history(
        spec.source_schema, forget=spec.target_index, aliases=spec.names_before()
    )
    return {"aliases": pointed} if pointed else {}


def _wait_source(ctx: RunContext) -> Step[Counts]:
    stats = yield from index_ops.wait_ready(ctx.spec.source_index, ctx.spec.timeout)
    return {"num_docs": stats.num_docs}


def _validate_source(ctx: RunContext) -> Step[Counts]:
    spec, applied = ctx.spec, ctx.applied
    enumerated = spec.needs_keys and "enumerate" in applied.steps_finished
    passed = yield from validate(
        rollback.source_view(spec),
        schema=spec.source_schema,
        expected_docs=_documents(applied) if enumerated else spec.expected_docs,
        source_failures=spec.source_failures,
        key_segments=applied.key_segments,
        backup_segments=_backup_segments_read(applied),
        conflicts=sum(ctx.state.conflicts_by_step.get(s, 0) for s in RESTORE_STEPS),
        gone=max(_gone(ctx.state), _gone(applied)),
        names=spec.names_before(),
    )
    return {"passed": int(passed)}


_NEVER_DROPPED = "the source index was never dropped"

DROP_RECREATE_INVERSES: dict[StepName, StepDef] = {
    s.name: s
    for s in (
        StepDef("drop_target", _drop_target, skip=_drop_target_skip, downtime=True),
        StepDef(
            "restore_vectors",
            _restore_vectors,
            skip=_undoes("quantize", "no vector was re-encoded"),
            downtime=True,
        ),
        StepDef(
            "restore_keys",
            _restore_keys,
            skip=_undoes("rename_keys", "no key was renamed"),
            downtime=True,
        ),
        StepDef(
            "restore_fields",
            _restore_fields,
            skip=_undoes("rename_fields", "no field was renamed"),
            downtime=True,
        ),
        StepDef(
            "recreate_source",
            _recreate_source,
            skip=_undoes("drop", _NEVER_DROPPED),
            downtime=True,
        ),
        StepDef("wait_source", _wait_source, skip=_undoes("drop", _NEVER_DROPPED), downtime=True),
    )
}

DROP_RECREATE_ROLLBACK = rollback_table(
    DROP_RECREATE,
    DROP_RECREATE_INVERSES,
    StepDef("validate_source", _validate_source, validation=True),
    first=(StepDef("rollback_preflight", _rollback_preflight, redo_on_change=False),),
)


# --- online: in place (FT.ALTER) and shadow index ------------------------------------------


def _online_preflight(ctx: RunContext) -> Step[Counts]:
    yield from online.online_preflight(ctx.spec)
    return {}


def _alter_add(ctx: RunContext) -> Step[Counts]:
    spec = ctx.spec
    added = yield from online.alter_add(spec)
    yield from record_history(
        named(spec.target_schema, spec.source_index),
        forget=spec.source_index,
        aliases=spec.names_after(),
    )
    return {"added": added}


def _alter_wait(ctx: RunContext) -> Step[Counts]:
    stats = yield from index_ops.wait_ready(ctx.spec.source_index, ctx.spec.timeout)
    return {"num_docs": stats.num_docs}


class _Swap:
    """One side of the shadow life cycle: build ``new`` with ``schema`` beside ``current``,
    verify it, then swap it in under ``names`` (apply, or the cut-back of a rollback)."""

    def __init__(self, ctx: RunContext, *, rollback_side: bool) -> None:
        spec, names = ctx.spec, ctx.spec.online_names()
        self.ctx = ctx
        self.rename: Callable[[bytes], bytes] | None = None
        self.forward: tuple[str, ...] = ()
        """The indexes an expand apply built: the cut-back replaces the one serving and drops
        the other (a second cut-over killed before or after its swap leaves both)."""
        if rollback_side:
            self.current = spec.source_index if names.strategy == "alter" else names.shadow_name
            if names.final_name and "final_cutover" in ctx.applied.steps_started:
                self.current = names.final_name
            if names.strategy == "expand":
                self.forward = tuple(n for n in (names.shadow_name, names.final_name) if n)
            self.new = rollback_name(ctx)
            self.schema = spec.source_schema
            if names.strategy == "expand":
                # cut over: the application may have written the new datatype into a
                # field converted in place (README), so the cut-back index reads the
                # originals from the rollback's temporary fields, rewritten or not
                self.schema = expand.rollback_schema(spec)
            if names.strategy == "expand" and spec.prefix_change:
                # the cut-back index reads the documents under their old keys again
                self.rename = expand.reverse(spec).final_key
            self.names = [
                names.serving_name,
                *[a for a in names.aliases if a != names.serving_name],
            ]
        else:
            self.current = spec.source_index
            self.new = names.shadow_name
            self.schema = spec.target_schema
            if names.strategy == "expand":
                self.schema = expand.first_shadow_schema(spec)
                self.rename = spec.final_key if spec.prefix_change else None
            self.names = spec.names_after()

    def create(self, step: StepName) -> Step[Counts]:
        yield from index_ops.create_index(named(self.schema, self.new))
        event = ShadowCreated(
            step=step, index=self.new, serving=self.ctx.spec.online_names().serving_name
        )
        yield from record(self.ctx.state, [event])
        return {}

    def wait(self, step: StepName) -> Step[Counts]:
        stats = yield from index_ops.wait_ready(
            self.new, self.ctx.spec.timeout, observe=_observe(self.ctx)
        )
        ready = ShadowReady(
            step=step,
            index=self.new,
            num_docs=stats.num_docs,
            hash_indexing_failures=stats.hash_indexing_failures,
        )
        yield from record(self.ctx.state, [ready])
        return {"num_docs": stats.num_docs}

    def _serving(self) -> Step[str]:
        """The index being replaced: of an expand's two, the one the serving name resolves
        to (the journal cannot tell whether a killed second cut-over swapped)."""
        if not self.forward:
            return self.current
        live = yield from index_ops.live_info(self.ctx.spec.online_names().serving_name)
        if live is not None and live.index_name in self.forward:
            return live.index_name
        return self.current

    def verify(self, step: StepName) -> Step[Counts]:
        current = yield from self._serving()
        passed = yield from online.verify_shadow(
            self.ctx.spec,
            current=current,
            new=self.new,
            schema=self.schema,
            rename=self.rename,
        )
        if not passed:
            raise VerificationFailed(
                f"shadow index '{self.new}' failed verification; '{current}' still serves",
                "see the journal (ftctl migrate journal inspect); re-run to verify again, "
                "or 'ftctl migrate abort' to drop the shadow",
            )
        return {"passed": 1}

    def swap(self, step: StepName) -> Step[Counts]:
        current = yield from self._serving()
        did = yield from online.cutover(current, self.new, self.names)
        for other in self.forward:
            if other != current:
                yield from online.drop_shadow(other, self.ctx.spec.online_names().serving_name)
                yield from delete_history(other)
        yield from record_history(named(self.schema, self.new), forget=current, aliases=self.names)
        state = self.ctx.state
        (done,) = yield from record(
            state,
            [
                CutoverDone(
                    step=step,
                    dropped=current,
                    index=self.new,
                    names=self.names,
                    recovered=not did,
                )
            ],
        )
        built = _seconds(state.shadow_created_at, state.shadow_ready_at)
        at = done.at.isoformat() if done.at else ""
        note = Note(
            message=(
                f"cut-over: '{self.new}' answers {', '.join(self.names) or '(its own name)'} "
                f"since {at or '?'}; '{current}' dropped; shadow built in {built:.3f}s"
            ),
            data={"cutover_at": at, "shadow_build_seconds": built, "recovered": not did},
        )
        yield from record(state, [note])
        return {"swapped": int(did)}


def _seconds(a: datetime | None, b: datetime | None) -> float:
    return round((b - a).total_seconds(), 6) if a is not None and b is not None else 0.0


class VerificationFailed(MigrationFailed):
    """The shadow index did not verify; nothing was swapped."""


def rollback_name(ctx: RunContext) -> str:
    """The cut-back index's name: deterministic per journal, so a resumed rollback finds it."""
    serving = ctx.spec.online_names().serving_name
    return f"{serving}__ftctl_rb{(ctx.applied.plan_sha256 or '0')[:8]}"


def _shadow_create(ctx: RunContext) -> Step[Counts]:
    return _Swap(ctx, rollback_side=False).create("shadow_create")


def _shadow_wait(ctx: RunContext) -> Step[Counts]:
    return _Swap(ctx, rollback_side=False).wait("shadow_wait")


def _shadow_verify(ctx: RunContext) -> Step[Counts]:
    return _Swap(ctx, rollback_side=False).verify("shadow_verify")


def _cutover(ctx: RunContext) -> Step[Counts]:
    return _Swap(ctx, rollback_side=False).swap("cutover")


def _rb_shadow_create(ctx: RunContext) -> Step[Counts]:
    return _Swap(ctx, rollback_side=True).create("rb_shadow_create")


def _rb_shadow_wait(ctx: RunContext) -> Step[Counts]:
    return _Swap(ctx, rollback_side=True).wait("rb_shadow_wait")


def _rb_shadow_verify(ctx: RunContext) -> Step[Counts]:
    return _Swap(ctx, rollback_side=True).verify("rb_shadow_verify")


def _rb_cutover(ctx: RunContext) -> Step[Counts]:
    swap = _Swap(ctx, rollback_side=True)
    if ctx.spec.online_names().strategy != "expand":
        return (yield from swap.swap("rb_cutover"))
    # The reverse of an expand cut-over: writers write the new layout until the swap, the
    # old one from then on (README); a last catch-up while the new layout is the truth,
    # then what was written through it in the moment of the swap, at once.
    back = yield from _follow_back(ctx)
    live = yield from index_ops.live_info(ctx.spec.online_names().serving_name)
    if live is None or live.index_name != swap.new:
        yield from _drain(ctx, "expand", back=back)
    done = yield from swap.swap("rb_cutover")
    yield from _settle(ctx, "contract" if back.prefix_change else "expand", spec=back)
    return done


def _cutover_postponed(ctx: RunContext) -> str | None:
    return None if ctx.spec.online_names().postpone_cutover else "cut-over not postponed"


def _cutover_gate(ctx: RunContext) -> str | None:
    if ctx.state.cutover_approved:
        return None
    return (
        f"shadow '{ctx.spec.online_names().shadow_name}' is verified; cut-over waits for "
        "'ftctl migrate cutover' ('ftctl migrate abort' drops it)"
    )


def _approved(ctx: RunContext) -> Step[Counts]:
    return {"approved": 1}
    yield  # a step body is a generator, even one with nothing to send


def _online_validate(ctx: RunContext) -> Step[Counts]:
    spec, names = ctx.spec, ctx.spec.online_names()
    if names.strategy == "alter":
        index, gone = spec.source_index, None
        serving = [names.serving_name, *names.aliases]
    else:
        index, gone, serving = names.shadow_name, spec.source_index, spec.names_after()
    passed = yield from online.check_serving(
        index=index, schema=spec.target_schema, names=serving, gone=gone
    )
    return {"passed": int(passed)}


_CUT_BACK: tuple[StepName, ...] = (
    "rb_shadow_create",
    "rb_shadow_wait",
    "rb_shadow_verify",
    "rb_cutover",
)
"""Undoing a cut-over (or an FT.ALTER): build the source schema as a new index beside the
serving one and swap it in, without downtime."""


def _on_shadow(ctx: RunContext) -> tuple[str, IndexSchema]:
    return ctx.spec.online_names().shadow_name, _Swap(ctx, rollback_side=False).schema


ALTER = Table(
    "online (FT.ALTER in place)",
    (
        QUERY_BASELINE,
        StepDef("online_preflight", _online_preflight, redo_on_change=False),
        StepDef("alter_add", _alter_add, inverse=_CUT_BACK),
        StepDef("alter_wait", _alter_wait),
        StepDef("online_validate", _online_validate, validation=True),
        _compare(lambda ctx: (ctx.spec.source_index, ctx.spec.target_schema)),
    ),
)

SHADOW = Table(
    "online (shadow index)",
    (
        QUERY_BASELINE,
        StepDef("online_preflight", _online_preflight, redo_on_change=False),
        StepDef("shadow_create", _shadow_create, inverse=("abort_shadow",)),
        StepDef("shadow_wait", _shadow_wait),
        StepDef("shadow_verify", _shadow_verify, validation=True),
        _compare(_on_shadow, before_cutover=True),
        StepDef("await_cutover", _approved, skip=_cutover_postponed, gate=_cutover_gate),
        StepDef("cutover", _cutover, inverse=_CUT_BACK),
        StepDef("online_validate", _online_validate, validation=True),
    ),
)


# --- the rollback of online ----------------------------------------------------------------


def _cut_over(ctx: RunContext) -> Step[bool]:
    """Whether the apply changed what the public names answer (so a rollback cuts back).

    In place (FT.ALTER): once ``alter_add`` started. Shadow: once ``cutover`` started and
    the serving name no longer resolves to the source (a crash may come before the swap).
    """
    names = ctx.spec.online_names()
    if names.strategy == "alter":
        return "alter_add" in ctx.applied.steps_started
    if "cutover" not in ctx.applied.steps_started:
        return False
    live = yield from index_ops.live_info(names.serving_name)
    return live is None or live.index_name != ctx.spec.source_index


def _cut_back_skip(ctx: RunContext) -> Step[str | None]:
    if not (yield from _cut_over(ctx)):
        return "never cut over: nothing to cut back"
    if ctx.abort_only:
        raise _abort_refused(ctx)
    return None


def _abort_refused(ctx: RunContext) -> RefusedError:
    return RefusedError(
        f"'{ctx.spec.online_names().serving_name}' was already cut over to the new index",
        "undo it with 'ftctl migrate rollback --backup-dir ...' (cuts back online)",
    )


def _abort_skip(ctx: RunContext) -> Step[str | None]:
    if (yield from _cut_over(ctx)):
        return "cut over: cutting back instead"
    return None


def _abort_shadow(ctx: RunContext) -> Step[Counts]:
    names = ctx.spec.online_names()
    if names.strategy == "alter":
        return {}
    dropped = yield from online.drop_shadow(names.shadow_name, names.serving_name)
    if names.final_name:
        dropped += yield from online.drop_shadow(names.final_name, names.serving_name)
    return {"dropped": dropped}


def _rb_validate(ctx: RunContext) -> Step[Counts]:
    spec = ctx.spec
    swap = _Swap(ctx, rollback_side=True)
    cut_back = "rb_cutover" in ctx.state.steps_finished
    passed = yield from online.check_serving(
        index=swap.new if cut_back else spec.source_index,
        schema=spec.source_schema,
        names=swap.names,
        gone=swap.current if cut_back else None,
    )
    return {"passed": int(passed)}


ONLINE_INVERSES: dict[StepName, StepDef] = {
    s.name: s
    for s in (
        StepDef("abort_shadow", _abort_shadow, skip=_abort_skip),
        StepDef("rb_shadow_create", _rb_shadow_create, skip=_cut_back_skip),
        StepDef("rb_shadow_wait", _rb_shadow_wait, skip=_cut_back_skip),
        StepDef("rb_shadow_verify", _rb_shadow_verify, skip=_cut_back_skip, validation=True),
        StepDef("rb_cutover", _rb_cutover, skip=_cut_back_skip),
    )
}
_RB_VALIDATE = StepDef("rb_validate", _rb_validate, validation=True)
ALTER_ROLLBACK = rollback_table(ALTER, ONLINE_INVERSES, _RB_VALIDATE)
SHADOW_ROLLBACK = rollback_table(SHADOW, ONLINE_INVERSES, _RB_VALIDATE)


# --- online: expand → shadow → cut-over → contract (rewriting stored bytes) ----------------

DRAIN_ROUNDS = 20
"""Rounds of catching up on captured writes before a step goes on (writers never stop)."""


def _observe(ctx: RunContext) -> Callable[[], Step[None]] | None:
    """What an index wait measures as it polls: the latency, for the pacer of a run that
    writes documents after the build."""
    return ctx.pacer.observe if ctx.pacer is not None else None


def _capture(ctx: RunContext) -> Step[bool]:
    """Make sure change capture runs (a resumed run starts it again); whether writes may
    have gone unseen (always, on a fresh start: the next reconcile covers them)."""
    yield StartCapture(ctx.spec.source_schema.prefixes or [""])
    got: Captured = yield TakeCaptured()
    return got.lost or bool(got.keys)


def _follow_back(ctx: RunContext) -> Step[RunSpec]:
    """A rollback's change capture: writes under the prefixes of the layout it undoes (where
    writers not switched back yet write). Keys captured so far stay to be taken. Returns
    the reverse migration the rollback follows."""
    back = expand.reverse(ctx.spec)
    yield StartCapture(back.source_schema.prefixes or [""])
    return back


def _drain(
    ctx: RunContext, phase: expand.Phase, *, unseen: bool = False, back: RunSpec | None = None
) -> Step[expand.Synced]:
    """Bring the documents written meanwhile in line (reconciling every document when
    capture may have missed writes), until writers leave little to do.

    ``back``: a rollback following the reverse migration. Where capture may have missed
    writes its full pass follows no delete (a key only under the old prefix is a document
    created there) and, before the cut-back, only adds the old layout where it is missing
    (an old-layout write left by an apply stopped after its cut-over is kept)."""
    spec = back or ctx.spec
    total = expand.Synced()
    pacer = ctx.pacer
    if unseen:
        total += yield from expand.reconcile(spec, phase, pacer=pacer)
    for _round in range(DRAIN_ROUNDS):
        got: Captured = yield TakeCaptured()
        if got.lost and back is not None:
            total += yield from expand.reconcile(
                back, phase, missing_only=phase == "expand", pacer=pacer, follow_deletes=False
            )
        elif got.lost:
            total += yield from expand.reconcile(spec, phase, pacer=pacer)
        if got.keys:
            total += yield from expand.sync_keys(spec, got.keys, phase, pacer=pacer, captured=True)
        if not got.lost and len(got.keys) < expand.GROUP:
            break
    return total


def _expand_preflight(ctx: RunContext) -> Step[Counts]:
    """The online preflight, plus what writing the new layout needs: a new prefix no key and
    no other index uses, a temporary field no document has, the final index's name free."""
    spec, names = ctx.spec, ctx.spec.online_names()
    found = yield from safety.prefix_covered(spec)
    if spec.prefix_change is not None:
        taken = yield from count_keys(spec.prefix_change.new, limit=1)
        if taken:
            found.append(
                ("prefix_free", f"keys exist under the new prefix '{spec.prefix_change.new}'")
            )
    if names.final_name:
        final = yield from index_ops.live_info(names.final_name)
        if final is not None:
            found.append(("final_name_free", f"an index named '{names.final_name}' exists"))
    if ctx.pacer is not None:
        probe = yield from ctx.pacer.check()
        if probe is not None:
            found.append(("probe", f"{probe} (choose another --probe-query, or --no-throttle)"))
    yield from online.online_preflight(spec, found)
    return {}


def _expand(ctx: RunContext) -> Step[Counts]:
    yield from _capture(ctx)
    done = yield from expand.reconcile(ctx.spec, "expand", pacer=ctx.pacer)
    done += yield from _drain(ctx, "expand")
    return done.counts()


def _catch_up(ctx: RunContext) -> Step[Counts]:
    unseen = yield from _capture(ctx)
    done = yield from _drain(ctx, "expand", unseen=unseen)
    return done.counts()


def _settle(ctx: RunContext, phase: expand.Phase, spec: RunSpec | None = None) -> Step[None]:
    """Right after a swap: bring in line the documents written since the drain's last take.

    The index now serving reads only the new layout, so a document created or rewritten
    through the old one in that moment would be missing or stale under the public names
    until the next step's full pass reached it (seconds on a large index)."""
    got: Captured = yield TakeCaptured()
    if got.keys:
        yield from expand.sync_keys(spec or ctx.spec, got.keys, phase)


def _expand_cutover(ctx: RunContext) -> Step[Counts]:
    unseen = yield from _capture(ctx)
    # A last catch-up while the old layout is still the truth; once swapped (a resumed
    # run), documents under the new layout are served and may be new ones: the contract
    # catches up from there.
    if not (yield from _cut_over(ctx)):
        yield from _drain(ctx, "expand", unseen=unseen)
    done = yield from _cutover(ctx)
    # A prefix change goes on with the contract: moving the key now is what it would do.
    yield from _settle(ctx, "contract" if ctx.spec.prefix_change else "expand")
    return done


def _rewrite(ctx: RunContext) -> Step[Counts]:
    yield from _capture(ctx)
    done = yield from expand.reconcile(ctx.spec, "rewrite", pacer=ctx.pacer)
    done += yield from _drain(ctx, "rewrite")
    return done.counts()


class _Final:
    """The index on the final layout that replaces the first shadow after a rewrite."""

    def __init__(self, ctx: RunContext) -> None:
        spec, names = ctx.spec, ctx.spec.online_names()
        self.ctx, self.current, self.new = ctx, names.shadow_name, names.final_name
        self.schema = spec.target_schema
        self.names = spec.names_after()


def _final_create(ctx: RunContext) -> Step[Counts]:
    final = _Final(ctx)
    yield from index_ops.create_index(named(final.schema, final.new))
    return {}


def _final_wait(ctx: RunContext) -> Step[Counts]:
    stats = yield from index_ops.wait_ready(
        _Final(ctx).new, ctx.spec.timeout, observe=_observe(ctx)
    )
    return {"num_docs": stats.num_docs}


def _final_verify(ctx: RunContext) -> Step[Counts]:
    # An application not switched yet may have written the old datatype while the final
    # index was built: that index failed those documents. Convert them before comparing.
    unseen = yield from _capture(ctx)
    yield from _drain(ctx, "rewrite", unseen=unseen)
    final = _Final(ctx)
    passed = yield from online.verify_shadow(
        ctx.spec, current=final.current, new=final.new, schema=final.schema
    )
    if not passed:
        raise VerificationFailed(
            f"index '{final.new}' on the final layout failed verification; "
            f"'{final.current}' still serves",
            "see the journal (ftctl migrate journal inspect); re-run to verify again",
        )
    return {"passed": 1}


def _final_cutover(ctx: RunContext) -> Step[Counts]:
    final = _Final(ctx)
    unseen = yield from _capture(ctx)
    yield from _drain(ctx, "rewrite", unseen=unseen)
    did = yield from online.cutover(final.current, final.new, final.names)
    yield from _settle(ctx, "rewrite")
    yield from record_history(
        named(final.schema, final.new), forget=final.current, aliases=final.names
    )
    return {"swapped": int(did)}


def _contract(ctx: RunContext) -> Step[Counts]:
    yield from _capture(ctx)
    done = yield from expand.reconcile(ctx.spec, "contract", pacer=ctx.pacer)
    done += yield from _drain(ctx, "contract")
    yield StopCapture()
    return done.counts()


def _has_temp_fields(ctx: RunContext) -> str | None:
    spec = ctx.spec
    if spec.prefix_change is None and spec.online_names().temp_fields:
        return None
    return "no vector is converted in place: the first index already reads the final layout"


def _expand_validate(ctx: RunContext) -> Step[Counts]:
    spec, names = ctx.spec, ctx.spec.online_names()
    index = names.final_name or names.shadow_name
    passed = yield from online.check_serving(
        index=index, schema=spec.target_schema, names=spec.names_after(), gone=spec.source_index
    )
    left = yield from expand.leftovers(spec)
    checks = Checks()
    checks.check(
        "final_layout",
        left,
        f"{left} documents keep a field or key of the old layout"
        if left
        else "every document has the layout drop_recreate gives",
    )
    yield from record(ctx.state, checks.events)
    return {"passed": int(passed and not left)}


_EXPAND_CUT_BACK: tuple[StepName, ...] = (
    *_CUT_BACK,
    "abort_shadow",
    "rb_rewrite",
    "rb_final_create",
    "rb_final_wait",
    "rb_final_verify",
    "rb_final_cutover",
)
"""Undoing an expand cut-over: cut back to the old layout, drop the new indexes, and when
vectors were rewritten in place, rewrite them back and move to an index on the source's own
layout."""

EXPAND = Table(
    "online (expand → shadow → cut-over → contract)",
    (
        QUERY_BASELINE,
        StepDef("online_preflight", _expand_preflight, redo_on_change=False),
        StepDef(
            "enumerate",
            _enumerate,
            skip=_unless(lambda s: s.conversions, "no vector is converted: no backup needed"),
            redo_on_change=False,
        ),
        StepDef(
            "backup",
            _backup,
            skip=_unless(lambda s: s.conversions, "no vector is converted: no backup needed"),
            redo_on_change=False,
        ),
        StepDef("expand", _expand, inverse=("rb_unexpand",)),
        StepDef("shadow_create", _shadow_create, inverse=("abort_shadow",)),
        StepDef("shadow_wait", _shadow_wait),
        StepDef("catch_up", _catch_up),
        StepDef("shadow_verify", _shadow_verify, validation=True),
        _compare(_on_shadow, before_cutover=True),
        StepDef("await_cutover", _approved, skip=_cutover_postponed, gate=_cutover_gate),
        StepDef("cutover", _expand_cutover, inverse=_EXPAND_CUT_BACK),
        StepDef("rewrite", _rewrite, skip=_has_temp_fields, inverse=("rb_relayout",)),
        StepDef("final_create", _final_create, skip=_has_temp_fields),
        StepDef("final_wait", _final_wait, skip=_has_temp_fields),
        StepDef("final_verify", _final_verify, skip=_has_temp_fields, validation=True),
        StepDef("final_cutover", _final_cutover, skip=_has_temp_fields),
        StepDef("contract", _contract, inverse=("rb_relayout",)),
        StepDef("online_validate", _expand_validate, validation=True),
    ),
)


def _rewritten(ctx: RunContext) -> bool:
    """Whether the old layout was changed (a vector rewritten in place, old fields or keys
    removed): a rollback must then rebuild it from the new layout first."""
    started = ctx.applied.steps_started
    return "rewrite" in started or "contract" in started


def _in_place(ctx: RunContext) -> bool:
    spec = ctx.spec
    return spec.prefix_change is None and bool(spec.online_names().temp_fields)


def _relayout_skip(ctx: RunContext) -> Step[str | None]:
    # The first step of an expand rollback: an abort after the cut-over is refused here,
    # before the old layout is written back.
    if _rewritten(ctx) or (yield from _cut_over(ctx)):
        if ctx.abort_only:
            raise _abort_refused(ctx)
        return None
    return "never cut over and the old layout is intact"


def _with_originals(ctx: RunContext, phase: expand.Phase) -> Step[expand.Synced]:
    """The reverse migration's ``phase`` over the backed-up documents, with their originals
    (put back where the migration's bytes are unchanged)."""
    spec, back = ctx.spec, expand.reverse(ctx.spec)
    done = expand.Synced()
    for ref in ctx.applied.segments_of("backup"):
        segment = yield ReadSegment(ref)
        originals = expand.originals_of(spec, segment)
        keys = [spec.final_key(k) for k in segment.keys]
        done += yield from expand.sync_keys(back, keys, phase, originals=originals, pacer=ctx.pacer)
    return done


def _relayout(ctx: RunContext) -> Step[Counts]:
    """Write the old layout back beside the new one, from the new one (originals of converted
    vectors from the backup where the migration's bytes are unchanged; documents written
    since are converted back), following what writers write in the new layout meanwhile."""
    back = yield from _follow_back(ctx)
    yield TakeCaptured()  # the passes below cover what came before
    done = yield from _with_originals(ctx, "expand")
    done += yield from expand.reconcile(back, "expand", missing_only=True, pacer=ctx.pacer)
    done += yield from _drain(ctx, "expand", back=back)
    return done.counts()


def _rb_rewrite_skip(ctx: RunContext) -> Step[str | None]:
    # From the cut-over on the application writes the new datatype into a field converted
    # in place, so a cut-over alone (no rewrite yet) needs the rewrite back as well.
    if _in_place(ctx) and (_rewritten(ctx) or (yield from _cut_over(ctx))):
        return None
    return "no vector was rewritten in place"


def _rb_rewrite(ctx: RunContext) -> Step[Counts]:
    back = yield from _follow_back(ctx)
    done = yield from _with_originals(ctx, "rewrite")
    # What is left (documents written since) already holds the source's format or widens.
    done += yield from expand.reconcile(back, "rewrite", pacer=ctx.pacer)
    done += yield from _drain(ctx, "rewrite", back=back)
    return done.counts()


def _rb_final(ctx: RunContext) -> tuple[str, str]:
    """(the index the cut-back built reading the rollback's temporary fields, the index on
    the source's own layout that replaces it)."""
    first = rollback_name(ctx)
    return first, f"{first}f"


def _rb_final_create(ctx: RunContext) -> Step[Counts]:
    _, final = _rb_final(ctx)
    yield from index_ops.create_index(named(ctx.spec.source_schema, final))
    return {}


def _rb_final_wait(ctx: RunContext) -> Step[Counts]:
    stats = yield from index_ops.wait_ready(
        _rb_final(ctx)[1], ctx.spec.timeout, observe=_observe(ctx)
    )
    return {"num_docs": stats.num_docs}


def _rb_final_verify(ctx: RunContext) -> Step[Counts]:
    # as _final_verify: what writers not switched back yet wrote in the new datatype
    # failed in the index being verified; convert it first
    back = yield from _follow_back(ctx)
    yield from _drain(ctx, "rewrite", back=back)
    first, final = _rb_final(ctx)
    passed = yield from online.verify_shadow(
        ctx.spec, current=first, new=final, schema=ctx.spec.source_schema
    )
    if not passed:
        raise VerificationFailed(
            f"index '{final}' on the source layout failed verification; '{first}' still serves",
            "see the journal (ftctl migrate journal inspect); re-run the rollback",
        )
    return {"passed": 1}


def _rb_final_cutover(ctx: RunContext) -> Step[Counts]:
    first, final = _rb_final(ctx)
    names = _Swap(ctx, rollback_side=True).names
    back = yield from _follow_back(ctx)
    yield from _drain(ctx, "rewrite", back=back)
    did = yield from online.cutover(first, final, names)
    yield from _settle(ctx, "rewrite", spec=back)
    yield from record_history(named(ctx.spec.source_schema, final), forget=first, aliases=names)
    return {"swapped": int(did)}


def _unexpand(ctx: RunContext) -> Step[Counts]:
    if not (yield from _cut_over(ctx)):
        # the old layout served all along and writers wrote only it
        yield StopCapture()
        done = yield from expand.reconcile(ctx.spec, "discard", pacer=ctx.pacer)
        return done.counts()
    # Cut back: the old layout is the truth wherever it is (writers switching back remove
    # the new layout in the same transaction, README); what only the new layout holds was
    # written there by a writer not switched back yet, and is moved back, not discarded.
    back = yield from _follow_back(ctx)
    done = yield from expand.reconcile(ctx.spec, "discard", pacer=ctx.pacer, follow_deletes=False)
    done += yield from expand.reconcile(back, "contract", pacer=ctx.pacer)
    done += yield from _drain(ctx, "contract", back=back)
    yield StopCapture()
    return done.counts()


def _expand_rb_validate(ctx: RunContext) -> Step[Counts]:
    spec = ctx.spec
    swap = _Swap(ctx, rollback_side=True)
    cut_back = "rb_cutover" in ctx.state.steps_finished
    index = spec.source_index
    if cut_back:
        index = _rb_final(ctx)[1] if "rb_final_cutover" in ctx.state.steps_finished else swap.new
    passed = yield from online.check_serving(
        index=index, schema=spec.source_schema, names=swap.names, gone=None
    )
    left = yield from expand.leftovers(expand.reverse(spec))
    checks = Checks()
    checks.check(
        "source_layout",
        left,
        f"{left} documents keep a field or key of the new layout"
        if left
        else "every document has its original layout",
    )
    yield from record(ctx.state, checks.events)
    return {"passed": int(passed and not left)}


_RB_FINAL_SKIP = _rb_rewrite_skip
EXPAND_INVERSES: dict[StepName, StepDef] = {
    **ONLINE_INVERSES,
    **{
        s.name: s
        for s in (
            StepDef("rb_relayout", _relayout, skip=_relayout_skip),
            StepDef("rb_rewrite", _rb_rewrite, skip=_rb_rewrite_skip),
            StepDef("rb_final_create", _rb_final_create, skip=_RB_FINAL_SKIP),
            StepDef("rb_final_wait", _rb_final_wait, skip=_RB_FINAL_SKIP),
            StepDef("rb_final_verify", _rb_final_verify, skip=_RB_FINAL_SKIP, validation=True),
            StepDef("rb_final_cutover", _rb_final_cutover, skip=_RB_FINAL_SKIP),
            StepDef("rb_unexpand", _unexpand),
        )
    },
}
EXPAND_ROLLBACK = rollback_table(
    EXPAND, EXPAND_INVERSES, StepDef("rb_validate", _expand_rb_validate, validation=True)
)


# --- migrate validate ----------------------------------------------------------------------


def _validate_target(ctx: RunContext) -> Step[Counts]:
    spec = ctx.spec
    passed = yield from validate(
        spec,
        schema=spec.target_schema,
        expected_docs=spec.expected_docs,
        source_failures=spec.source_failures,
        key_segments=[],
        backup_segments=[],
        conflicts=0,
        names=spec.names_after(),
    )
    return {"passed": int(passed)}


VALIDATE = Table(
    "validate",
    (
        StepDef("validate", _validate_target, validation=True),
        _compare(lambda ctx: (ctx.spec.target_index, ctx.spec.target_schema)),
    ),
)


# --- choosing a table ----------------------------------------------------------------------


def table_for(spec: RunSpec, kind: RunKind) -> Table:
    """The table a run of ``kind`` walks for ``spec``'s plan."""
    if kind == "validate":
        return VALIDATE
    if spec.online is None:
        return DROP_RECREATE_ROLLBACK if kind == "rollback" else DROP_RECREATE
    if spec.online.strategy == "alter":
        return ALTER_ROLLBACK if kind == "rollback" else ALTER
    if spec.online.strategy == "expand":
        return EXPAND_ROLLBACK if kind == "rollback" else EXPAND
    return SHADOW_ROLLBACK if kind == "rollback" else SHADOW


_ONLINE_TABLES: dict[str, tuple[Table, Table]] = {
    "alter": (ALTER, ALTER_ROLLBACK),
    "shadow": (SHADOW, SHADOW_ROLLBACK),
    "expand": (EXPAND, EXPAND_ROLLBACK),
}

_MARKS: dict[tuple[Mode, RunKind], StepMarks] = {
    ("drop_recreate", "apply"): DROP_RECREATE.marks(),
    ("drop_recreate", "rollback"): DROP_RECREATE_ROLLBACK.marks(),
    ("online", "apply"): merge_marks([ALTER, SHADOW, EXPAND]),
    ("online", "rollback"): merge_marks([ALTER_ROLLBACK, SHADOW_ROLLBACK, EXPAND_ROLLBACK]),
}


def marks_for(mode: Mode | None, kind: RunKind | None, strategy: str | None = None) -> StepMarks:
    """Where downtime and validation lie in the runs of ``kind`` of a ``mode`` plan (online:
    of its ``strategy`` when known, else of every online table)."""
    if kind == "validate":
        return VALIDATE.marks()
    if mode == "online" and strategy is not None:
        forward, backward = _ONLINE_TABLES.get(strategy, (SHADOW, SHADOW_ROLLBACK))
        return (backward if kind == "rollback" else forward).marks()
    return _MARKS.get((mode or "drop_recreate", kind or "apply"), StepMarks())


TABLES: tuple[Table, ...] = (
    DROP_RECREATE,
    DROP_RECREATE_ROLLBACK,
    ALTER,
    ALTER_ROLLBACK,
    SHADOW,
    SHADOW_ROLLBACK,
    EXPAND,
    EXPAND_ROLLBACK,
    VALIDATE,
)

__all__ = [
    "ALTER",
    "ALTER_ROLLBACK",
    "DROP_RECREATE",
    "DROP_RECREATE_ROLLBACK",
    "EXPAND",
    "EXPAND_ROLLBACK",
    "SHADOW",
    "SHADOW_ROLLBACK",
    "TABLES",
    "VALIDATE",
    "VerificationFailed",
    "marks_for",
    "rollback_name",
    "table_for",
]
