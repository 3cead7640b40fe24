"""SIGKILL online runs (shadow index and FT.ALTER) at every step boundary, under the sync and
the asyncio runner, then recover.

Each scenario seeds its own namespace (:mod:`onlinekit`: a small HNSW HASH index and an
alias), plans an online change with the planner, runs the child with ``FTCTL_FAULT`` so it is
SIGKILLed at the kill point, and recovers. After every kill and every recovery:

- the documents are byte for byte what was seeded (online mode never rewrites a document);
- the index name and the alias answer queries (FT.SEARCH by name finds every document) from
  a fully built index — the source's or the target's schema after a kill; the target's after
  apply/resume/cutover, the source's after rollback/abort;
- after a recovery, that index is the namespace's only one (no shadow or cut-back index left)
  and a second resume/rollback changes nothing.

Flows: a killed ``apply`` recovered by ``apply``, ``resume`` or ``rollback`` (then rolled
back); a killed ``rollback`` (the cut-back) rolled back again; a postponed cut-over whose
``cutover`` verb is killed, then re-run; a killed ``abort`` re-run; ``abort`` after a cut-over
refused with nothing changed (then ``cutover`` still finishes), but allowed when the cutover
step was killed before its swap. Scenarios are independent, so a module fixture runs the
selected ones concurrently; each test checks its own scenario.
"""

from __future__ import annotations

import itertools
import json
import multiprocessing
import os
import signal
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import crashkit
import onlinekit
import pytest
import redis

import ftctl
from ftctl.plan.models import MigrationPlan
from ftctl.schema.compare import reported_differences
from ftctl.steps.spec import named
from ftctl.steps.tables import ALTER, ALTER_ROLLBACK, SHADOW, SHADOW_ROLLBACK, Table

PARALLEL = max(4, min(8, (os.cpu_count() or 2) * 2))
CHILD_TIMEOUT = 60.0
KILLED = -signal.SIGKILL
RUNNERS = ("sync", "async")
WORKERS = {"sync": 1, "async": 2}
"""The asyncio runs use two worker connections, the sync runs one."""


def _step_kill_points(table: Table, *, never_run: tuple[str, ...] = ()) -> list[str]:
    """Every step boundary, and every step with its work done but not journaled (all online
    steps are unbatched)."""
    steps = [s for s in table.names if s not in never_run]
    return [f"after:step_finished:{s}" for s in steps] + [
        f"before:step_finished:{s}" for s in steps
    ]


def _swap_kill_points(step: str) -> list[str]:
    """Inside a swap step: started but nothing swapped; swapped but not journaled; swapped
    and journaled but the step not finished."""
    return [
        f"after:step_started:{step}",
        f"before:cutover_done:{step}",
        f"after:cutover_done:{step}",
    ]


SHADOW_APPLY = _step_kill_points(SHADOW, never_run=("await_cutover",)) + _swap_kill_points(
    "cutover"
)
ALTER_APPLY = [*_step_kill_points(ALTER), "after:step_started:alter_add"]
CUT_BACK = _step_kill_points(SHADOW_ROLLBACK, never_run=("abort_shadow",)) + _swap_kill_points(
    "rb_cutover"
)
ALTER_CUT_BACK = _step_kill_points(ALTER_ROLLBACK) + _swap_kill_points("rb_cutover")
POSTPONED_CUTOVER = [
    "after:step_finished:await_cutover",
    *_swap_kill_points("cutover"),
    "after:step_finished:cutover",
    "before:step_finished:online_validate",
]
ABORT = [
    "after:step_skipped:rb_shadow_create",
    "before:step_finished:abort_shadow",
    "after:step_finished:abort_shadow",
    "before:step_finished:rb_validate",
]


@dataclass(frozen=True)
class Scenario:
    table: str
    """``shadow`` or ``alter``: the plan's online strategy."""
    flow: str
    """``apply`` | ``rollback`` | ``cutover`` | ``abort``: the verb that is SIGKILLed;
    ``abort_after_cutover``: abort once ``cutover`` ran (``kill``: where it was killed, or
    nowhere)."""
    kill: str
    runner: str
    recover: str

    @property
    def id(self) -> str:
        kill = self.kill or "clean"
        return f"{self.table}-{self.flow}-{kill}-{self.runner}-then-{self.recover}"


def _apply_scenarios(table: str, points: list[str]) -> list[Scenario]:
    """Each kill point under each runner; sync recovers by apply, async by resume, both also
    straight by rollback."""
    return [
        Scenario(table, "apply", kill, runner, recover)
        for kill in points
        for runner in RUNNERS
        for recover in (("apply" if runner == "sync" else "resume"), "rollback")
    ]


APPLY_SCENARIOS = _apply_scenarios("shadow", SHADOW_APPLY) + _apply_scenarios("alter", ALTER_APPLY)
ROLLBACK_SCENARIOS = [
    Scenario(table, "rollback", kill, runner, "rollback")
    for table, points in (("shadow", CUT_BACK), ("alter", ALTER_CUT_BACK))
    for kill in points
    for runner in RUNNERS
]
GATE_SCENARIOS = [
    *(Scenario("shadow", "cutover", k, r, "cutover") for k in POSTPONED_CUTOVER for r in RUNNERS),
    *(Scenario("shadow", "abort", k, r, "abort") for k in ABORT for r in RUNNERS),
    *(
        Scenario("shadow", "abort_after_cutover", kill, runner, recover)
        for kill, recover in (
            ("", "cutover"),
            ("before:cutover_done:cutover", "cutover"),
            ("after:step_started:cutover", "abort"),
        )
        for runner in RUNNERS
    ),
]


@dataclass
class Outcome:
    log: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    error: str | None = None


class ScenarioFailed(Exception):
    pass


@dataclass
class Done:
    returncode: int
    stdout: str

    def last(self, key: str) -> str:
        lines = [json.loads(ln) for ln in self.stdout.splitlines() if ln.startswith("{")]
        found = [ln[key] for ln in lines if key in ln]
        return str(found[-1]) if found else ""


_CTX = multiprocessing.get_context("forkserver")
_calls = itertools.count()


def _child(url: str, workdir: Path, verb: str, runner: str, fault: str = "") -> Done:
    """Run ``onlinekit`` ``verb`` in a child forked from a server that preloaded ftctl."""
    argv = [verb, runner, url, str(workdir), str(WORKERS[runner])]
    log = workdir / f"child-{next(_calls)}.log"
    process = _CTX.Process(target=onlinekit.child, args=(argv, fault, str(log)))
    process.start()
    process.join(CHILD_TIMEOUT)
    if process.exitcode is None:
        process.kill()
        process.join()
        process.close()
        raise ScenarioFailed(f"{verb} did not finish within {CHILD_TIMEOUT:.0f}s")
    code = process.exitcode
    process.close()
    text = log.read_text(encoding="utf-8") if log.exists() else ""
    if code == 255:
        # multiprocessing reports 255 when it cannot read the status back from its
        # forkserver (seen under load); a child that exited wrote its code as its last line.
        said = [json.loads(line) for line in text.splitlines() if line.startswith('{"exit"')]
        code = said[-1]["exit"] if said else KILLED
    return Done(code, text)


class _Flow:
    """One scenario's namespace, its plan, and the checks made along the way."""

    def __init__(self, url: str, root: Path, n: int, scenario: Scenario) -> None:
        self.url, self.scenario = url, scenario
        self.ns = f"o{n:03d}_"
        self.workdir = root / self.ns
        self.client = redis.Redis.from_url(url, protocol=3)
        self.outcome = Outcome()
        self.plan: MigrationPlan | None = None
        self.documents: dict[bytes, object] = {}

    def prepare(self, *, postpone: bool = False) -> None:
        self.plan = onlinekit.prepare(
            self.client, self.ns, self.workdir, self.scenario.table, postpone=postpone
        )
        self.documents = onlinekit.documents(self.client, self.ns)

    def run(self, verb: str, *, rc: int = 0, result: str = "", fault: str = "") -> Done:
        start = time.monotonic()
        done = _child(self.url, self.workdir, verb, self.scenario.runner, fault)
        took = time.monotonic() - start
        what = f"{verb} with {fault}" if fault else verb
        said = done.last("result") or done.last("error")
        self.outcome.log.append(
            f"{what}: exit {done.returncode} {said} {done.last('message')} ({took:.2f}s)"
        )
        if done.returncode != rc or (result and done.last("result") != result):
            want = f"exit {rc}" + (f" result {result}" if result else "")
            raise ScenarioFailed(f"{what}: want {want}:\n{done.stdout[-2500:]}")
        return done

    def kill(self, verb: str) -> None:
        self.run(verb, rc=KILLED, fault=self.scenario.kill)
        self.check_answering("after the kill")

    def _untouched(self, when: str) -> None:
        if onlinekit.documents(self.client, self.ns) != self.documents:
            self.outcome.problems.append(f"{when}: documents changed")

    def check_answering(self, when: str) -> None:
        """Both public names answer from a fully built index with either schema."""
        assert self.plan is not None
        schemas = [self.plan.source.schema_snapshot, self.plan.merged_target_schema]
        built = self.scenario.table == "shadow"
        found = onlinekit.serving(self.client, self.ns).answering(schemas, built=built)
        self.outcome.problems += [f"{when}: {p}" for p in found]
        self._untouched(when)

    def check(self, side: str, when: str) -> onlinekit.Serving:
        """Every name resolves to the namespace's only index, which has the schema of
        ``side`` (source | target)."""
        assert self.plan is not None
        schema = (
            self.plan.merged_target_schema if side == "target" else self.plan.source.schema_snapshot
        )
        state = onlinekit.serving(self.client, self.ns)
        self.outcome.problems += state.problems(schema, f"{when} ({side} expected)")
        self._untouched(when)
        return state

    def again(self, verb: str, result: str, side: str) -> None:
        """Re-running ``verb`` after it finished changes nothing."""
        before = self.check(side, f"before a second {verb}")
        self.run(verb, result=result)
        after = self.check(side, f"after a second {verb}")
        if (before.resolved, before.indexes) != (after.resolved, after.indexes):
            self.outcome.problems.append(
                f"a second {verb} changed {before.resolved} → {after.resolved}"
            )

    def awaiting(self) -> None:
        """A postponed apply: the names still resolve to the source itself; beside it, the
        shadow is built with the target schema."""
        assert self.plan is not None and self.plan.online is not None
        self.run("apply", result="awaiting_cutover")
        state = onlinekit.serving(self.client, self.ns)
        source, shadow = onlinekit.index_name(self.ns), self.plan.online.shadow_name
        if set(state.resolved.values()) != {source} or state.indexes != sorted([source, shadow]):
            self.outcome.problems.append(f"awaiting: {state.resolved}, indexes {state.indexes}")
        elif (
            reported_differences(
                named(self.plan.merged_target_schema, shadow), state.schemas[shadow]
            )
            or not state.ready[shadow]
        ):
            self.outcome.problems.append("awaiting: the shadow is not built with the target schema")
        self.check_answering("awaiting the cut-over")

    def rollback(self) -> None:
        self.run("rollback", result="rolled_back")
        self.check("source", "after rollback")

    def close(self) -> None:
        onlinekit.forget(self.client, self.ns)
        self.client.close()


def _killed_apply(flow: _Flow) -> None:
    flow.prepare()
    flow.kill("apply")
    recover = flow.scenario.recover
    if recover == "rollback":
        flow.rollback()
        flow.again("rollback", "rolled_back", "source")
        return
    flow.run(recover, result="succeeded")
    flow.check("target", f"after {recover}")
    flow.again("resume", "succeeded", "target")
    flow.rollback()


def _killed_rollback(flow: _Flow) -> None:
    flow.prepare()
    flow.run("apply", result="succeeded")
    flow.check("target", "after apply")
    flow.kill("rollback")
    flow.rollback()
    flow.again("rollback", "rolled_back", "source")


def _killed_cutover(flow: _Flow) -> None:
    flow.prepare(postpone=True)
    flow.awaiting()
    flow.kill("cutover")
    flow.run("cutover", result="succeeded")
    flow.check("target", "after cutover")
    flow.again("cutover", "succeeded", "target")
    flow.rollback()


def _abort(flow: _Flow) -> None:
    """Abort drops the shadow; the source itself serves again, and a second abort is a no-op."""
    flow.run("abort", result="rolled_back")
    state = flow.check("source", "after abort")
    if state.indexes != [onlinekit.index_name(flow.ns)]:
        flow.outcome.problems.append(f"abort did not leave the source itself: {state.indexes}")
    flow.again("abort", "rolled_back", "source")


def _killed_abort(flow: _Flow) -> None:
    flow.prepare(postpone=True)
    flow.awaiting()
    flow.kill("abort")
    _abort(flow)


def _abort_after_cutover(flow: _Flow) -> None:
    """Abort once ``cutover`` ran (to the end, or killed at ``kill``): refused with nothing
    changed once the swap happened, and ``cutover`` then still finishes the migration;
    allowed (drops the shadow) when the cutover step started but did not swap."""
    flow.prepare(postpone=True)
    flow.awaiting()
    if flow.scenario.kill:
        flow.kill("cutover")
    else:
        flow.run("cutover", result="succeeded")
    if flow.scenario.recover == "abort":
        _abort(flow)
        return
    before = onlinekit.serving(flow.client, flow.ns)
    flow.run("abort", rc=2)
    after = onlinekit.serving(flow.client, flow.ns)
    if (before.resolved, before.indexes) != (after.resolved, after.indexes):
        flow.outcome.problems.append(f"refused abort changed {before.resolved} → {after.resolved}")
    flow._untouched("after the refused abort")
    flow.run("cutover", result="succeeded")
    flow.check("target", "after cutover")
    flow.rollback()


FLOWS: dict[str, Callable[[_Flow], None]] = {
    "apply": _killed_apply,
    "rollback": _killed_rollback,
    "cutover": _killed_cutover,
    "abort": _killed_abort,
    "abort_after_cutover": _abort_after_cutover,
}


def _run(url: str, root: Path, n: int, scenario: Scenario) -> Outcome:
    flow = _Flow(url, root, n, scenario)
    try:
        FLOWS[scenario.flow](flow)
    except ScenarioFailed as exc:
        flow.outcome.error = str(exc)
    finally:
        flow.close()
    return flow.outcome


def _selected(session: pytest.Session) -> list[Scenario]:
    chosen: list[Scenario] = []
    for item in session.items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and isinstance(callspec.params.get("scenario"), Scenario):
            chosen.append(callspec.params["scenario"])
    return chosen


@pytest.fixture(scope="module")
def outcomes(
    redis_url: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Outcome]]:
    """Run every selected scenario (concurrently), then clean up."""
    root = tmp_path_factory.mktemp("crash-online")
    _CTX.set_forkserver_preload(crashkit.FORKSERVER_PRELOAD)
    client = redis.Redis.from_url(redis_url, protocol=3)
    client.flushall()
    try:
        scenarios = _selected(request.session)
        with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
            futures = {
                s.id: pool.submit(_run, redis_url, root, n, s)
                for n, s in enumerate(scenarios, start=1)
            }
            yield {sid: f.result() for sid, f in futures.items()}
    finally:
        client.flushall()
        client.close()


def _verdict(outcome: Outcome) -> None:
    assert outcome.error is None, "\n".join([*outcome.log, outcome.error])
    assert outcome.problems == [], "\n".join([*outcome.log, *outcome.problems])


@pytest.mark.parametrize("scenario", APPLY_SCENARIOS, ids=lambda s: s.id)
def test_killed_online_apply_recovers(scenario: Scenario, outcomes: dict[str, Outcome]) -> None:
    """After a SIGKILL anywhere in an online apply the names still answer from a complete
    index; apply/resume reaches the target schema under every name with no shadow left, and
    rollback (also straight after the kill) brings the source schema back; documents never
    change and a second resume/rollback is a no-op."""
    _verdict(outcomes[scenario.id])


@pytest.mark.parametrize("scenario", ROLLBACK_SCENARIOS, ids=lambda s: s.id)
def test_killed_cut_back_rolls_back_again(scenario: Scenario, outcomes: dict[str, Outcome]) -> None:
    """After a SIGKILL anywhere in the cut-back of an online migration the names still
    answer; rolling back again ends with the source schema under every name, one index, the
    documents untouched, and a further rollback changes nothing."""
    _verdict(outcomes[scenario.id])


@pytest.mark.parametrize("scenario", GATE_SCENARIOS, ids=lambda s: s.id)
def test_postponed_cutover_and_abort_survive_kills(
    scenario: Scenario, outcomes: dict[str, Outcome]
) -> None:
    """A postponed cut-over: a killed ``cutover`` re-run succeeds; a killed ``abort`` re-run
    drops the shadow and leaves the source itself; ``abort`` after a cut-over (even one
    killed right after the swap) is refused with nothing changed, and ``cutover`` then still
    finishes the migration; ``abort`` after a cutover killed before its swap drops the
    shadow."""
    _verdict(outcomes[scenario.id])


def test_children_run_the_code_under_test(tmp_path: Path) -> None:
    """The forked children import the same ftctl as the test process (not another checkout)."""
    log = tmp_path / "where.log"
    process = _CTX.Process(target=onlinekit.child, args=(["where"], "", str(log)))
    process.start()
    process.join(CHILD_TIMEOUT)
    assert process.exitcode in (0, 255), process.exitcode  # 255: see _child
    assert Done(0, log.read_text(encoding="utf-8")).last("ftctl") == ftctl.__file__
