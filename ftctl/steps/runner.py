"""The one generic runner: walk a table of step definitions, journaling each step.

Every mode (drop_recreate, FT.ALTER, shadow index, the rollback of each) is a :class:`Table`
of :class:`StepDef` (see :mod:`ftctl.steps.tables`). :func:`run_table` walks it: a step the
journal says is done is passed over, one the run does not need is journaled as skipped, the
others are journaled as started, run, and journaled as finished with their counts.

What is done comes only from the run's :class:`~ftctl.journal.RunState`, which the runner
keeps current by folding every event the run records (:func:`folded`), also those recorded
by sub-steps running in parallel. Nothing here reads the journal back.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias, TypeVar

from ftctl.journal.events import (
    AnyEvent,
    Note,
    ServerChanged,
    ServerSeen,
    StepFinished,
    StepName,
    StepSkipped,
    StepStarted,
)
from ftctl.journal.projections import RunState, StepMarks
from ftctl.plan.query_checks import UserQuery
from ftctl.steps.effects import Commands, Parallel, Record, ReplyError, Session, Step
from ftctl.steps.pace import Pacer
from ftctl.steps.spec import RunSpec

R = TypeVar("R")

Counts: TypeAlias = dict[str, int]
Outcome: TypeAlias = Literal["passed", "failed", "awaiting"]
"""How a table run ended: every check passed, some check failed, or it stopped at the
operator gate (an online cut-over waiting for ``ftctl migrate cutover``)."""


@dataclass
class RunContext:
    """What the step bodies of one run read: the spec, and the journal's state.

    ``state`` is this run's projection (the events of every run of its kind), folded as the
    run records events. ``applied`` is the apply runs' projection: what a rollback undoes.
    """

    spec: RunSpec
    state: RunState
    applied: RunState
    force: bool = False
    """Rollback: restore vectors even where they changed after the migration wrote them."""
    abort_only: bool = False
    """Online rollback requested as ``abort``: refuse instead of cutting back."""
    pacer: Pacer | None = None
    """The pace of the run's document writes (online expand runs; None: full speed)."""
    queries: Sequence[UserQuery] = ()
    """The user's queries given to this run (a query check file's ``queries``): the
    baseline step runs them on the source; their thresholds apply to the comparison."""


Body: TypeAlias = Callable[[RunContext], Step[Counts]]
Skip: TypeAlias = Callable[[RunContext], "str | Step[str | None] | None"]
"""Why the step is not needed (None: it is). Pure for most steps; a step that must look at
the server first (has the cut-over happened?) returns a sub-step."""
Gate: TypeAlias = Callable[[RunContext], str | None]


def needed(ctx: RunContext) -> None:
    """The :data:`Skip` of a step every run needs."""
    return None


@dataclass(frozen=True)
class StepDef:
    """One step of a table.

    ``inverse``: the rollback steps that undo it, in order (empty: nothing to undo).
    ``downtime``: inside the window where the index does not answer. ``validation``: its
    checks are the run's validation. ``gate``: a message when the run must stop before this
    step until an operator approves (the journal then holds the approval).
    ``redo_on_change``: done again when the server changed under the journal (restart,
    failover: its writes may be lost); False for steps whose result is the journal's own
    (enumeration, backup) or that only checked what no longer holds (preflights).
    """

    name: StepName
    body: Body
    skip: Skip = needed
    inverse: tuple[StepName, ...] = ()
    downtime: bool = False
    validation: bool = False
    gate: Gate | None = None
    redo_on_change: bool = True


@dataclass(frozen=True)
class Table:
    """The steps of one mode, in order."""

    name: str
    steps: tuple[StepDef, ...]
    names: tuple[StepName, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", tuple(s.name for s in self.steps))

    def marks(self) -> StepMarks:
        """Downtime and validation marks of this table's steps."""
        validation = [s.name for s in self.steps if s.validation]
        downtime = [s.name for s in self.steps if s.downtime]
        return StepMarks(
            downtime=frozenset(downtime),
            downtime_closes=frozenset(downtime[-1:]),
            validation=frozenset(validation),
            validation_starts=frozenset(validation[:1]),
            redo_on_change=frozenset(s.name for s in self.steps if s.redo_on_change),
        )


def merge_marks(tables: Sequence[Table]) -> StepMarks:
    """The marks of several tables together (step names are unique across tables)."""
    parts = [t.marks() for t in tables]
    return StepMarks(
        downtime=frozenset().union(*(p.downtime for p in parts)),
        validation=frozenset().union(*(p.validation for p in parts)),
        validation_starts=frozenset().union(*(p.validation_starts for p in parts)),
        downtime_closes=frozenset().union(*(p.downtime_closes for p in parts)),
        redo_on_change=frozenset().union(*(p.redo_on_change for p in parts)),
    )


class _AwaitingOperator(Exception):
    """Raised inside :func:`run_table` when a gate closes the run."""


def record(state: RunState, events: Sequence[Any]) -> Step[list[AnyEvent]]:
    """Journal ``events`` and fold them into ``state``."""
    stamped: list[AnyEvent] = yield Record(events)
    state.fold_all(stamped)
    return stamped


def folded(step: Step[R], sink: Callable[[list[AnyEvent]], object]) -> Step[R]:
    """Run ``step``, passing every event it (or any sub-step) records to ``sink``, in order.

    Sub-steps of a ``Parallel`` may run in threads: each collects its own events, and they
    reach ``sink`` together (by sequence number) once all have returned.
    """
    reply: object = None
    try:
        while True:
            try:
                effect = step.send(reply)
            except StopIteration as done:
                value: R = done.value
                return value
            match effect:
                case Record():
                    reply = yield effect
                    sink(reply)  # type: ignore[arg-type]
                case Parallel(steps=subs):
                    collected: list[list[AnyEvent]] = [[] for _ in subs]
                    reply = yield Parallel(
                        [folded(sub, got.extend) for sub, got in zip(subs, collected, strict=True)]
                    )
                    merged = sorted((e for got in collected for e in got), key=lambda e: e.seq)
                    if merged:
                        sink(merged)
                case Session(step=sub):
                    reply = yield Session(folded(sub, sink))
                case _:
                    reply = yield effect
    finally:
        step.close()


def _skip_reason(step: StepDef, ctx: RunContext) -> Step[str | None]:
    reason = step.skip(ctx)
    if isinstance(reason, Generator):
        found: str | None = yield from reason
        return found
    return reason


def server_identity() -> Step[str]:
    """The server's ``run_id`` (a restart or a failover gives another one)."""
    (reply,) = yield Commands([("INFO", "server")])
    if isinstance(reply, ReplyError):
        return ""
    text = reply.decode() if isinstance(reply, bytes) else str(reply)
    for line in text.splitlines():
        if line.startswith("run_id:"):
            return line.split(":", 1)[1].strip()
    return ""


def _check_server(state: RunState) -> Step[None]:
    """Journal the server; one that is not the one earlier runs wrote to may have lost
    their writes, so the steps that wrote are done again."""
    current = yield from server_identity()
    if not current or current == state.server_run_id:
        return
    events: list[Any] = []
    if state.server_run_id is not None and (state.steps_started or state.steps_finished):
        events.append(ServerChanged(previous=state.server_run_id, current=current))
    events.append(ServerSeen(run_id=current))
    yield from record(state, events)


def run_table(table: Table, ctx: RunContext) -> Step[Outcome]:
    """Run every step of ``table`` that the journal does not record as done."""
    state = ctx.state
    yield from _check_server(state)
    for step in table.steps:
        if state.step_done(step.name):
            continue
        reason = yield from _skip_reason(step, ctx)
        if reason is not None:
            yield from record(state, [StepSkipped(step=step.name, reason=reason)])
            continue
        waiting = step.gate(ctx) if step.gate is not None else None
        if waiting is not None:
            yield from record(state, [Note(message=waiting)])
            return "awaiting"
        yield from record(state, [StepStarted(step=step.name)])
        counts = yield from folded(step.body(ctx), state.fold_all)
        yield from record(state, [StepFinished(step=step.name, counts=counts)])
    return "failed" if state.checks_failed else "passed"


def rollback_table(
    forward: Table,
    inverses: dict[StepName, StepDef],
    *final: StepDef,
    first: tuple[StepDef, ...] = (),
) -> Table:
    """The rollback of ``forward``: ``first`` (checks), the inverses of its steps in reverse
    order, then ``final``.

    Which inverses run is each inverse's own :data:`Skip` (typically: whether the journal
    says its forward step started).
    """
    order: list[StepDef] = []
    for step in reversed(forward.steps):
        for name in step.inverse:
            if all(s.name != name for s in order):
                order.append(inverses[name])
    return Table(f"rollback of {forward.name}", (*first, *order, *final))


__all__ = [
    "Body",
    "Counts",
    "Outcome",
    "RunContext",
    "Skip",
    "StepDef",
    "Table",
    "folded",
    "merge_marks",
    "needed",
    "record",
    "rollback_table",
    "run_table",
]
