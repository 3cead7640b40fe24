"""Online (zero-downtime) migrations: the step sequences and their runner.

``apply`` of a plan with ``mode: online`` runs, with the source serving throughout:

- strategy ``alter``: ``online_preflight`` → ``alter_add`` (FT.ALTER SCHEMA ADD) →
  ``alter_wait`` → ``online_validate``;
- strategy ``shadow``: ``online_preflight`` → ``shadow_create`` → ``shadow_wait`` →
  ``shadow_verify`` → ``await_cutover`` (the operator gate of ``postpone_cutover``) →
  ``cutover`` (one MULTI/EXEC) → ``online_validate``.

``rollback`` before the cut-over drops the shadow (``abort_shadow``; ``ftctl migrate abort``);
after it, it builds the source schema as a new shadow and cuts back (``rb_shadow_create`` …
``rb_cutover``), again without downtime, then ``rb_validate``. Steps and events live in the
same journal as drop_recreate's; what is done comes only from the journal's projection.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, Literal

import redis

from ftctl.drivers import SyncDriver, connect
from ftctl.errors import FtctlError, MigrationFailed, RefusedError, UsageError
from ftctl.executor import (
    RUN_PROTOCOL,
    JournalTap,
    Options,
    Run,
    client_url,
    ctrl_c_stops,
    finish_run,
    only_journal,
    open_existing,
    report_of,
    stopped_run,
)
from ftctl.journal.events import Note, RunFinished, StepFinished, StepSkipped, StepStarted
from ftctl.journal.online import CutoverApproved, CutoverDone, ShadowCreated, ShadowReady
from ftctl.journal.projections import RunState, project_run, run_events
from ftctl.journal.report import MigrationReport
from ftctl.plan.models import MigrationPlan
from ftctl.schema.model import IndexSchema
from ftctl.steps import index_ops
from ftctl.steps import online as steps
from ftctl.steps.effects import Record, Step
from ftctl.steps.online import OnlineSpec, named
from ftctl.steps.sequence import record_history

Outcome = Literal["passed", "failed", "awaiting"]

ALTER_STEPS = ("online_preflight", "alter_add", "alter_wait", "online_validate")
SHADOW_STEPS = (
    "online_preflight",
    "shadow_create",
    "shadow_wait",
    "shadow_verify",
    "await_cutover",
    "cutover",
    "online_validate",
)
ONLINE_ROLLBACK_STEPS = (
    "abort_shadow",
    "rb_shadow_create",
    "rb_shadow_wait",
    "rb_shadow_verify",
    "rb_cutover",
    "rb_validate",
)


def online_spec(plan: MigrationPlan, *, timeout: float = 3600.0) -> OnlineSpec:
    """The :class:`OnlineSpec` of an online plan."""
    online = plan.online
    if plan.mode != "online" or online is None:
        raise UsageError(
            "the plan is not an online plan", "re-plan with 'ftctl migrate plan --mode online'"
        )
    return OnlineSpec(
        source_index=plan.source.index_name,
        serving_name=online.serving_name,
        aliases=list(online.aliases),
        shadow_name=online.shadow_name,
        source_schema=plan.source.schema_snapshot,
        target_schema=plan.merged_target_schema,
        strategy=online.strategy,
        added_fields=list(online.added_fields),
        keep_old_name=online.keep_old_name,
        postpone_cutover=online.postpone_cutover,
        shadow_mb=online.memory.shadow_mb,
        timeout=timeout,
    )


def _cutover_note(done: CutoverDone, events: list[Any]) -> Note:
    built = _shadow_build_seconds(events)
    return Note(
        message=(
            f"cut-over: '{done.index}' answers {', '.join(done.names) or '(its own name)'} "
            f"since {done.at.isoformat() if done.at else '?'}; '{done.dropped}' dropped; "
            f"shadow built in {built:.3f}s"
        ),
        data={
            "cutover_at": done.at.isoformat() if done.at else "",
            "shadow_build_seconds": built,
            "recovered": done.recovered,
        },
    )


def _shadow_build_seconds(events: list[Any]) -> float:
    created = next((e for e in events if isinstance(e, ShadowCreated)), None)
    ready = [e for e in events if isinstance(e, ShadowReady)]
    if created is None or not ready or created.at is None or ready[-1].at is None:
        return 0.0
    return round((ready[-1].at - created.at).total_seconds(), 6)


def _build_and_swap(
    spec: OnlineSpec,
    step: str,
    *,
    current: str,
    new: str,
    schema: IndexSchema,
    names: list[str],
    reload: Callable[[], list[Any]],
) -> Step[dict[str, int]]:
    """One step of the shadow life cycle (shared by apply and the cut-back of rollback)."""
    counts: dict[str, int] = {}
    kind = step.removeprefix("rb_")
    match kind:
        case "shadow_create":
            yield from index_ops.create_index(named(schema, new))
            yield Record([ShadowCreated(step=step, index=new, serving=spec.serving_name)])
        case "shadow_wait":
            stats = yield from index_ops.wait_ready(new, spec.timeout)
            counts["num_docs"] = stats.num_docs
            yield Record(
                [
                    ShadowReady(
                        step=step,
                        index=new,
                        num_docs=stats.num_docs,
                        hash_indexing_failures=stats.hash_indexing_failures,
                    )
                ]
            )
        case "shadow_verify":
            passed = yield from steps.verify_shadow(spec, current=current, new=new, schema=schema)
            if not passed:
                raise VerificationFailed(
                    f"shadow index '{new}' failed verification; '{current}' still serves",
                    "see the journal (ftctl migrate journal inspect); re-run to verify again, "
                    "or 'ftctl migrate abort' to drop the shadow",
                )
            counts["passed"] = 1
        case "cutover":
            did = yield from steps.cutover(current, new, names)
            counts["swapped"] = int(did)
            yield from record_history(named(schema, new), forget=current)
            (done,) = yield Record(
                [CutoverDone(step=step, dropped=current, index=new, names=names, recovered=not did)]
            )
            events = reload()
            yield Record([_cutover_note(done, events)])
    return counts


class VerificationFailed(MigrationFailed):
    """The shadow index did not verify; nothing was swapped."""


def apply_sequence(
    spec: OnlineSpec, state: RunState, *, reload: Callable[[], list[Any]]
) -> Step[Outcome]:
    """Run every online apply step not yet done (see the module docstring)."""
    order = ALTER_STEPS if spec.strategy == "alter" else SHADOW_STEPS
    approved = any(isinstance(e, CutoverApproved) for e in reload())
    for step in order:
        if state.step_done(step):
            continue
        if step == "await_cutover":
            if not spec.postpone_cutover:
                yield Record([StepSkipped(step=step, reason="cut-over not postponed")])
                continue
            if not approved:
                yield Record(
                    [
                        Note(
                            message=f"shadow '{spec.shadow_name}' is verified; cut-over waits "
                            "for 'ftctl migrate cutover' ('ftctl migrate abort' drops it)"
                        )
                    ]
                )
                return "awaiting"
        yield Record([StepStarted(step=step)])
        counts: dict[str, int] = {}
        match step:
            case "online_preflight":
                yield from steps.online_preflight(spec)
            case "alter_add":
                counts["added"] = yield from steps.alter_add(spec)
                yield from record_history(
                    named(spec.target_schema, spec.source_index), forget=spec.source_index
                )
            case "alter_wait":
                stats = yield from index_ops.wait_ready(spec.source_index, spec.timeout)
                counts["num_docs"] = stats.num_docs
            case "await_cutover":
                counts["approved"] = 1
            case "online_validate":
                if spec.strategy == "alter":
                    index, gone = spec.source_index, None
                    names = [spec.serving_name, *spec.aliases]
                else:
                    index, gone, names = spec.shadow_name, spec.source_index, spec.names_after()
                passed = yield from steps.check_serving(
                    index=index, schema=spec.target_schema, names=names, gone=gone
                )
                counts["passed"] = int(passed)
                yield Record([StepFinished(step=step, counts=counts)])
                return "passed" if passed else "failed"
            case _:
                counts = yield from _build_and_swap(
                    spec,
                    step,
                    current=spec.source_index,
                    new=spec.shadow_name,
                    schema=spec.target_schema,
                    names=spec.names_after(),
                    reload=reload,
                )
        yield Record([StepFinished(step=step, counts=counts)])
        state = project_run(reload())
    return "passed"


def _cut_over(applied: RunState) -> bool:
    return "cutover" in applied.steps_started or "alter_add" in applied.steps_started


def rollback_sequence(
    spec: OnlineSpec,
    applied: RunState,
    state: RunState,
    *,
    rb_name: str,
    abort_only: bool,
    reload: Callable[[], list[Any]],
) -> Step[Outcome]:
    """Undo an online apply: drop an uncut shadow, or cut back to the source schema online."""
    for step in ONLINE_ROLLBACK_STEPS:
        if state.step_done(step):
            continue
        cut_back = "abort_shadow" in state.steps_skipped
        if step == "abort_shadow":
            live = yield from index_ops.live_info(spec.serving_name)
            swapped = live is not None and live.index_name != spec.source_index
            if _cut_over(applied) or swapped:
                if abort_only:
                    raise RefusedError(
                        f"'{spec.serving_name}' was already cut over to the new index",
                        "undo it with 'ftctl migrate rollback --backup-dir ...' (cuts back online)",
                    )
                yield Record([StepSkipped(step=step, reason="cut over: cutting back instead")])
                state = project_run(reload())
                continue
        elif step != "rb_validate" and not cut_back:
            yield Record([StepSkipped(step=step, reason="never cut over: the shadow was dropped")])
            continue
        yield Record([StepStarted(step=step)])
        counts: dict[str, int] = {}
        current = spec.source_index if spec.strategy == "alter" else spec.shadow_name
        names = [spec.serving_name, *[a for a in spec.aliases if a != spec.serving_name]]
        match step:
            case "abort_shadow":
                if spec.strategy == "shadow":
                    counts["dropped"] = yield from steps.drop_shadow(
                        spec.shadow_name, spec.serving_name
                    )
            case "rb_validate":
                index = rb_name if cut_back else spec.source_index
                passed = yield from steps.check_serving(
                    index=index,
                    schema=spec.source_schema,
                    names=names,
                    gone=current if cut_back else None,
                )
                counts["passed"] = int(passed)
                yield Record([StepFinished(step=step, counts=counts)])
                return "passed" if passed else "failed"
            case _:
                counts = yield from _build_and_swap(
                    spec,
                    step,
                    current=current,
                    new=rb_name,
                    schema=spec.source_schema,
                    names=names,
                    reload=reload,
                )
        yield Record([StepFinished(step=step, counts=counts)])
        state = project_run(reload())
    return "passed"


def rollback_name(spec: OnlineSpec, state: RunState) -> str:
    """The cut-back index's name: deterministic per journal, so a resumed rollback finds it."""
    return f"{spec.serving_name}__ftctl_rb{(state.plan_sha256 or '0')[:8]}"


# --- the runner ---------------------------------------------------------------------------


def run_online(
    run: Run, kind: str, client: redis.Redis, options: Options, *, abort_only: bool = False
) -> MigrationReport:
    """Drive the online sequence of ``kind`` on ``run``'s journal; returns the report.

    Like the executor's runner, plus the operator gate: a postponed cut-over ends the run
    with result ``awaiting_cutover``.
    """
    tap = JournalTap(run.journal, progress=options.progress)
    driver = SyncDriver(client, tap)
    spec = online_spec(run.plan, timeout=options.timeout)

    def reload() -> list[Any]:
        return run_events(run.events(), kind)

    sequence: Step[Outcome]
    if kind == "apply":
        sequence = apply_sequence(spec, project_run(reload()), reload=reload)
    else:
        sequence = rollback_sequence(
            spec,
            run.applied(),
            project_run(reload()),
            rb_name=rollback_name(spec, run.applied()),
            abort_only=abort_only,
            reload=reload,
        )
    try:
        with ctrl_c_stops(tap.stop):
            outcome = driver.run(sequence)
    except (FtctlError, KeyboardInterrupt) as exc:
        return stopped_run(run, kind, exc)
    finally:
        driver.close()
    if outcome == "awaiting":
        run.journal.append([RunFinished(result="awaiting_cutover")])
        return report_of(run, kind)
    return finish_run(run, kind, outcome == "passed")


def _reopen(
    backup_dir: str | os.PathLike[str],
    kind: str,
    index: str | None,
    redis_url: str | None,
    client: redis.Redis | None,
    options: Options,
) -> tuple[Run, redis.Redis]:
    directory = only_journal(backup_dir, index)
    redis_client = client or connect(redis_url, protocol=RUN_PROTOCOL)
    url = redis_url or client_url(redis_client)
    run = open_existing(directory, kind, url, options.as_dict())
    if run.plan.mode != "online":
        run.journal.close()
        raise RefusedError(
            f"the migration in {directory} is not an online migration",
            "cutover and abort apply to plans with mode: online",
        )
    return run, redis_client


def cutover(
    backup_dir: str | os.PathLike[str],
    *,
    index: str | None = None,
    redis_url: str | None = None,
    client: redis.Redis | None = None,
    timeout: float = 3600.0,
) -> MigrationReport:
    """Approve a postponed cut-over (journaled) and finish the online apply."""
    options = Options(timeout=timeout)
    run, redis_client = _reopen(backup_dir, "apply", index, redis_url, client, options)
    try:
        if "rollback" in project_run(run.events()).runs:
            raise RefusedError(
                f"{run.directory} holds a migration that was aborted or rolled back",
                "apply the plan again into a new --backup-dir",
            )
        run.journal.append([CutoverApproved()])
        return run_online(run, "apply", redis_client, options)
    finally:
        run.journal.close()
        if client is None:
            redis_client.close()


def abort(
    backup_dir: str | os.PathLike[str],
    *,
    index: str | None = None,
    redis_url: str | None = None,
    client: redis.Redis | None = None,
) -> MigrationReport:
    """Drop the shadow of an online migration that was not cut over; the source is untouched.

    Refused (nothing changed) once the cut-over happened: use rollback, which cuts back.
    """
    options = Options()
    run, redis_client = _reopen(backup_dir, "rollback", index, redis_url, client, options)
    try:
        return run_online(run, "rollback", redis_client, options, abort_only=True)
    finally:
        run.journal.close()
        if client is None:
            redis_client.close()


__all__ = [
    "ALTER_STEPS",
    "ONLINE_ROLLBACK_STEPS",
    "SHADOW_STEPS",
    "VerificationFailed",
    "abort",
    "apply_sequence",
    "cutover",
    "online_spec",
    "rollback_sequence",
    "run_online",
]
