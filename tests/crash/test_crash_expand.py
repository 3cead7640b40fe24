"""SIGKILL online expand runs (issue 15) at every step boundary and in the middle of every
phase that writes documents, then recover.

Each scenario seeds its own namespace (:mod:`expandkit`: 40 documents, 8 dims, an alias),
plans one change the planner sends to the expand strategy — ``quantize`` (HASH float32 →
float16), ``rename`` (HASH field), ``rename_json`` (JSON path) or ``prefix`` — and runs the
child with a kill point: an ``FTCTL_FAULT`` journal event, or ``progress:<step>:<n>`` (killed
once ``n`` documents of the step's WATCH groups are written; these phases journal no batch,
so that is their middle). Batches are 10 keys, so every pass takes several groups.

- killed apply, recovered by ``resume`` or ``apply``: the namespace equals a clean run's byte
  for byte (every key, field, byte and TTL; every index's FT.INFO schema and counts; what
  the public names resolve to; the schema-history records), which itself has exactly the
  document layout drop_recreate gives;
- killed apply, recovered by ``rollback``: every original key byte-identical, one index with
  the original definition answering both public names, nothing left of the new layout;
- killed rollback (after a clean apply) rolled back again: the same;
- the operator gate (a postponed cut-over): ``cutover`` killed and re-run reaches the clean
  state; ``abort`` after a kill before the swap restores the original, after the swap it is
  refused with nothing changed; a killed ``abort`` re-run restores the original;
- writes while the migration is down: an application still on the old layout updates,
  deletes and creates documents between the kill and the re-run; the result equals a clean
  run over the same writes (the writes converted).

After every kill both public names answer every document (expand is online). A few
scenarios are killed twice (the second kill in the recovery: catch-up and the drains of the
cut-overs only have work after a restart). Scenarios are independent, so a module fixture
runs the selected ones concurrently; each test checks its own.
"""

from __future__ import annotations

import itertools
import json
import multiprocessing
import os
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import crashkit
import expandkit
import pytest
import redis

from ftctl.executor import MigrationExecutor
from ftctl.plan import patch_from_builtins
from ftctl.planner import MigrationPlanner
from ftctl.steps.tables import EXPAND, EXPAND_ROLLBACK

PARALLEL = max(4, min(8, (os.cpu_count() or 2) * 2))
CHILD_TIMEOUT = 60.0
KILLED = -signal.SIGKILL
RUNNERS = ("sync", "async")

IN_PLACE_ONLY = (
    "enumerate", "backup", "rewrite", "final_create", "final_wait", "final_verify",
    "final_cutover",
)  # fmt: skip
"""Steps only a conversion in place runs (backup, a rewrite and an index on the final
layout); the other kinds skip them."""


def _apply_steps(kind: str) -> list[str]:
    """The EXPAND steps an immediate-cut-over apply of ``kind`` runs (the gate is skipped;
    the gate scenarios stop there)."""
    skipped = ("await_cutover", *(() if kind == "quantize" else IN_PLACE_ONLY))
    return [s for s in EXPAND.names if s not in skipped]


WRITING = (
    "backup", "expand", "shadow_create", "catch_up", "cutover", "rewrite", "final_create",
    "final_cutover", "contract",
)  # fmt: skip
"""Steps that change something (Redis or the journal's segments): killed with their work done
but not journaled, they are done again."""


def _mid_phase(kind: str) -> dict[str, tuple[int, ...]]:
    """``progress`` kill points: expand's reconcile (20 of 40) and, where it writes under
    the source prefix, its drain of the writes it captured from itself (60: 40 + 20); the
    rewrite's and the contract's reconcile."""
    expand = (20,) if kind == "prefix" else (20, 60)
    return {"expand": expand, "rewrite": (20,), "contract": (20,)}


QUERY_STEPS = ("query_baseline", "query_compare")
"""Skipped by these runs (no query check file): killed after they are skipped."""


def _apply_points(kind: str) -> list[str]:
    steps = _apply_steps(kind)
    points = [f"after:step_{'skipped' if s in QUERY_STEPS else 'finished'}:{s}" for s in steps]
    points += [f"before:step_finished:{s}" for s in steps if s in WRITING]
    points += ["after:step_started:cutover", "before:cutover_done:cutover"]
    if kind == "quantize":
        points += ["after:step_skipped:await_cutover", "after:step_started:final_cutover"]
    points += [f"progress:{s}:{n}" for s in steps for n in _mid_phase(kind).get(s, ())]
    return points


def _rollback_steps(kind: str) -> list[str]:
    """The EXPAND_ROLLBACK steps the rollback of a finished apply runs (``abort_shadow`` is
    skipped after a cut-over; the abort scenarios run it)."""
    in_place = ("rb_rewrite", "rb_final_create", "rb_final_wait", "rb_final_verify")
    skipped = ("abort_shadow", *(() if kind == "quantize" else (*in_place, "rb_final_cutover")))
    return [s for s in EXPAND_ROLLBACK.names if s not in skipped]


RB_WRITING = (
    "rb_relayout", "rb_shadow_create", "rb_cutover", "rb_rewrite", "rb_final_create",
    "rb_final_cutover", "rb_unexpand",
)  # fmt: skip
RB_MID_PHASE = {"rb_relayout": 20, "rb_rewrite": 20, "rb_unexpand": 20}


def _rollback_points(kind: str) -> list[str]:
    steps = _rollback_steps(kind)
    points = [f"after:step_finished:{s}" for s in steps]
    points += [f"before:step_finished:{s}" for s in steps if s in RB_WRITING]
    points.append("before:cutover_done:rb_cutover")
    points += [f"progress:{s}:{RB_MID_PHASE[s]}" for s in steps if s in RB_MID_PHASE]
    return points


@dataclass(frozen=True)
class Scenario:
    kind: str
    flow: str
    """``apply`` | ``rollback`` | ``cutover`` | ``abort`` | ``writer``: the verb killed
    (``writer``: apply, with legacy writes between the kill and the recovery)."""
    kill: str
    recover: str
    runner: str
    again: str = ""
    """A second kill point, in the recovery (which then runs once more)."""

    @property
    def id(self) -> str:
        again = f"-again-{self.again}" if self.again else ""
        return f"{self.kind}-{self.flow}-{self.kill}{again}-{self.runner}-then-{self.recover}"


def _alternate(points: list[str]) -> Iterator[tuple[str, str]]:
    """(point, runner), the runners taking turns."""
    return zip(points, itertools.cycle(RUNNERS), strict=False)


def _apply_scenarios(kind: str) -> list[Scenario]:
    """Each kill point recovered by resume (a prefix change by re-running apply) and by
    rollback, under alternating runners. A rollback from ``before:step_finished`` meets the same data and
    steps as from ``after:step_finished``, so JSON takes the boundaries only."""
    resume = "apply" if kind == "prefix" else "resume"
    out = [Scenario(kind, "apply", p, resume, r) for p, r in _alternate(_apply_points(kind))]
    points = [p for p in _apply_points(kind) if not p.startswith("before:step_finished")]
    # Killed right after the skipped first step nothing started: a rollback is refused
    # ("nothing to roll back"), as it must be; resume covers that point.
    points = [p for p in points if p != "after:step_skipped:query_baseline"]
    if kind == "rename_json":
        points = [p for p in points if p.startswith(("after:step_finished", "progress"))]
    out += [
        Scenario(kind, "apply", p, "rollback", RUNNERS[(i + 1) % 2]) for i, p in enumerate(points)
    ]
    return out


APPLY_SCENARIOS = [s for kind in expandkit.KINDS for s in _apply_scenarios(kind)]
AGAIN_SCENARIOS = [
    # catch-up and the cut-overs' drains find work after a restart (capture starts afresh)
    Scenario(k, "writer", "after:step_finished:shadow_wait", "resume", r, "progress:catch_up:20")
    for k, r in zip(expandkit.KINDS, itertools.cycle(RUNNERS), strict=False)
] + [
    Scenario("quantize", "apply", "after:step_finished:shadow_verify", "resume", "sync",
             "progress:cutover:20"),
    Scenario("quantize", "apply", "after:step_finished:final_verify", "resume", "async",
             "progress:final_cutover:20"),
    Scenario("quantize", "apply", "progress:contract:20", "rollback", "async",
             "progress:rb_relayout:20"),
    Scenario("prefix", "apply", "progress:contract:20", "rollback", "sync",
             "progress:rb_unexpand:20"),
    Scenario("rename", "apply", "after:step_finished:expand", "rollback", "async",
             "progress:rb_unexpand:20"),
]  # fmt: skip


def _writer_points(kind: str) -> list[str]:
    """Where the writer finds the run down: mid-expand, after the cut-over, and for the
    in-place conversion mid-rewrite and mid-contract. A prefix change is left before its
    cut-over: from then on the old keys are no longer the truth for deletes (a document
    deleted through its old name once the contract may have moved it is not followed)."""
    if kind == "prefix":
        return ["progress:expand:20", "after:step_finished:shadow_verify"]
    points = ["progress:expand:20", "after:step_finished:cutover"]
    return points + (["progress:rewrite:20", "progress:contract:20"] if kind == "quantize" else [])


WRITER_SCENARIOS = [
    Scenario(kind, "writer", point, "resume", runner)
    for kind in expandkit.KINDS
    for point, runner in _alternate(_writer_points(kind))
]
ROLLBACK_SCENARIOS = [
    Scenario(kind, "rollback", p, "rollback", r)
    for kind in expandkit.KINDS
    for p, r in _alternate(_rollback_points(kind))
]
GATE_SCENARIOS = [
    *(
        Scenario("quantize", "cutover", p, "cutover", r)
        for p, r in _alternate(
            [
                "after:step_finished:await_cutover",
                "after:step_started:cutover",
                "before:cutover_done:cutover",
                "progress:rewrite:20",
                "after:step_finished:final_cutover",
                "progress:contract:20",
            ]
        )
    ),
    Scenario("quantize", "cutover", "after:step_finished:await_cutover", "abort", "sync"),
    Scenario("quantize", "cutover", "after:step_started:cutover", "abort", "async"),
    Scenario("quantize", "cutover", "before:cutover_done:cutover", "abort", "sync"),
    Scenario("quantize", "apply", "after:step_finished:shadow_verify", "cutover", "async"),
    Scenario("quantize", "abort", "after:step_finished:abort_shadow", "abort", "sync"),
    Scenario("quantize", "abort", "after:step_finished:rb_unexpand", "abort", "async"),
    Scenario("quantize", "abort", "before:step_finished:rb_unexpand", "abort", "sync"),
]
SCENARIOS = [*APPLY_SCENARIOS, *AGAIN_SCENARIOS, *WRITER_SCENARIOS, *ROLLBACK_SCENARIOS,
             *GATE_SCENARIOS]  # fmt: skip


# --- children ------------------------------------------------------------------------------


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
    """Run ``expandkit`` ``verb`` in a child forked from a server that preloaded ftctl."""
    argv = [verb, runner, url, str(workdir), str(expandkit.BATCH)]
    log = workdir / f"child-{next(_calls)}.log"
    process = _CTX.Process(target=expandkit.child, args=(argv, fault, str(log)))
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


# --- references ----------------------------------------------------------------------------


@dataclass
class Reference:
    """One kind's clean runs, each in a namespace of its own."""

    original: dict[str, Any]
    """The seeded namespace."""
    target: dict[str, Any]
    """After a clean apply (and a second resume, which must change nothing)."""
    resumed: dict[str, Any]
    """After that second resume."""
    rolled_back: dict[str, Any]
    """After a clean rollback of the clean apply."""
    written: dict[str, Any]
    """After the legacy writes, then a clean apply."""
    drop_recreate: dict[str, Any]
    """The keys after a drop_recreate migration of the same change."""


@dataclass
class Outcome:
    log: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    error: str | None = None


def _differences(got: Any, want: Any, limit: int = 8) -> list[str]:
    """The first differing paths between two snapshots (readable where ``==`` is not)."""
    out: list[str] = []

    def walk(a: Any, b: Any, path: str) -> None:
        if len(out) >= limit or a == b:
            return
        if isinstance(a, dict) and isinstance(b, dict):
            for k in sorted(set(a) | set(b), key=repr):
                if k not in a or k not in b:
                    out.append(f"{path}/{k!r}: {'missing' if k not in a else 'unexpected'}")
                else:
                    walk(a[k], b[k], f"{path}/{k!r}")
                if len(out) >= limit:
                    return
        else:
            out.append(f"{path}: got {a!r:.160} want {b!r:.160}")

    walk(got, want, "")
    return out


def _reference(url: str, root: Path, kind: str) -> Reference:
    client = redis.Redis.from_url(url, protocol=3)
    try:
        snaps: dict[str, dict[str, Any]] = {}
        for part in ("target", "written"):
            ns = f"r{expandkit.KINDS.index(kind)}{part[0]}_"
            workdir = root / ns
            expandkit.prepare(client, ns, kind, workdir)
            snaps["original"] = expandkit.snapshot(client, ns)
            if part == "written":
                expandkit.write_legacy(client, ns, kind)
            done = _child(url, workdir, "apply", "sync")
            assert done.returncode == 0, done.stdout[-3000:]
            snaps[part] = expandkit.snapshot(client, ns)
            if part == "target":
                for verb, name in (("resume", "resumed"), ("rollback", "rolled_back")):
                    done = _child(url, workdir, verb, "async")
                    assert done.returncode == 0, done.stdout[-3000:]
                    snaps[name] = expandkit.snapshot(client, ns)
        ns = f"r{expandkit.KINDS.index(kind)}d_"
        expandkit.seed(client, ns, kind)
        plan = MigrationPlanner().create_plan(
            expandkit.index_name(ns),
            redis_client=client,
            schema_patch=patch_from_builtins(expandkit.patch(kind, ns)),
        )
        report = MigrationExecutor().apply(plan, client=client, backup_dir=root / ns)
        assert report.result == "succeeded", report.error
        snaps["drop_recreate"] = expandkit.snapshot(client, ns)
        return Reference(**snaps)
    finally:
        client.close()


# --- one scenario --------------------------------------------------------------------------


class _Flow:
    """One scenario's namespace and the checks made along the way."""

    def __init__(self, url: str, root: Path, n: int, scenario: Scenario, ref: Reference) -> None:
        self.url, self.scenario, self.ref = url, scenario, ref
        self.ns = f"e{n:03d}_"
        self.workdir = root / self.ns
        self.client = redis.Redis.from_url(url, protocol=3)
        self.outcome = Outcome()

    def prepare(self, *, postpone: bool = False) -> None:
        expandkit.prepare(self.client, self.ns, self.scenario.kind, self.workdir, postpone=postpone)
        seeded = expandkit.snapshot(self.client, self.ns)
        if seeded != self.ref.original:
            raise ScenarioFailed(f"seeded differently: {_differences(seeded, self.ref.original)}")

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

    def kill(self, verb: str, fault: str) -> None:
        self.run(verb, rc=KILLED, fault=fault)
        self.answering(f"after {verb} killed at {fault}")

    def answering(self, when: str) -> None:
        """Both public names resolve and answer every document (expand never has downtime)."""
        for name in expandkit.public_names(self.ns):
            found = expandkit.hits(self.client, name)
            if found != expandkit.DOCS:
                self.outcome.problems.append(f"{when}: '{name}' finds {found} documents")

    def resolving(self, when: str) -> None:
        """Both public names resolve to an index."""
        names = expandkit.snapshot(self.client, self.ns)["names"]
        if None in names.values():
            self.outcome.problems.append(f"{when}: names resolve to {names}")

    def expect(self, want: dict[str, Any], when: str, *, failures: bool = True) -> None:
        """The namespace is ``want``; ``failures=False``: leave out the indexes' failure
        counters (RediSearch only ever adds to them)."""
        got = expandkit.snapshot(self.client, self.ns)
        if not failures:
            got, want = _without_failures(got), _without_failures(want)
        found = _differences(got, want)
        self.outcome.problems += [f"{when}: {d}" for d in found]

    def original(self, when: str) -> None:
        got = expandkit.snapshot(self.client, self.ns)
        problems = _original_problems(got, self.ref.original)
        self.outcome.problems += [f"{when} (original expected): {p}" for p in problems]

    def close(self) -> None:
        expandkit.forget(self.client, self.ns)
        self.client.close()


def _original_problems(got: dict[str, Any], want: dict[str, Any]) -> list[str]:
    """Why ``got`` is not the original layout of ``want``: every original key byte-identical
    and no other; one index, with the original definition (its name aside: a cut-back index
    has its own), fully built with every document, which both public names resolve to;
    schema history only for that index, naming the public names."""
    problems = _differences(got["keys"], want["keys"])
    indexes = list(got["indexes"])
    if len(indexes) != 1:
        return [*problems, f"indexes {indexes}, want one"]
    (index,) = indexes
    (source,) = want["indexes"].values()
    info = got["indexes"][index]
    schema = {**info["schema"], "index": {**info["schema"]["index"], "name": "docs"}}
    problems += _differences(schema, source["schema"])
    if not info["ready"] or info["num_docs"] != expandkit.DOCS or info["failures"]:
        problems.append(f"'{index}': {info}")
    if set(got["names"].values()) != {index}:
        problems.append(f"names resolve to {got['names']}, want '{index}'")
    for key, record in got["history"].items():
        owner = key.removeprefix("ftctl:schema:")
        public = sorted(n for n in got["names"] if n != owner)
        if owner != index or record["aliases"] != public:
            problems.append(f"history {key}: aliases {record['aliases']}")
    return problems


def _without_failures(snapshot: dict[str, Any]) -> dict[str, Any]:
    indexes = {
        name: {k: v for k, v in index.items() if k != "failures"}
        for name, index in snapshot["indexes"].items()
    }
    return {**snapshot, "indexes": indexes}


def _recover(flow: _Flow, verb: str, again: str, result: str) -> None:
    if again:
        flow.kill(verb, again)
    flow.run(verb, result=result)


def _killed_apply(flow: _Flow) -> None:
    s = flow.scenario
    flow.prepare(postpone=s.recover == "cutover")
    flow.kill("apply", s.kill)
    if s.recover == "rollback":
        _recover(flow, "rollback", s.again, "rolled_back")
        flow.original("after rollback")
        return
    _recover(flow, s.recover, s.again, "succeeded")
    flow.expect(flow.ref.target, f"after {s.recover}")


def _writer(flow: _Flow) -> None:
    s = flow.scenario
    flow.prepare()
    flow.kill("apply", s.kill)
    expandkit.write_legacy(flow.client, flow.ns, s.kind)
    # float32 written under an index that already reads float16 fails to index until the
    # run converts it: the names resolve, not every document answers meanwhile
    flow.resolving("after the legacy writes")
    _recover(flow, s.recover, s.again, "succeeded")
    flow.expect(flow.ref.written, f"after {s.recover}", failures=False)


def _killed_rollback(flow: _Flow) -> None:
    flow.prepare()
    flow.run("apply", result="succeeded")
    flow.kill("rollback", flow.scenario.kill)
    flow.run("rollback", result="rolled_back")
    flow.original("after rollback")


def _awaiting(flow: _Flow) -> None:
    """A postponed apply stops at the gate with the source itself still serving."""
    flow.prepare(postpone=True)
    flow.run("apply", result="awaiting_cutover")
    names = expandkit.snapshot(flow.client, flow.ns)["names"]
    if set(names.values()) != {"docs"}:
        flow.outcome.problems.append(f"awaiting the cut-over, names resolve to {names}")
    flow.answering("awaiting the cut-over")


def _killed_cutover(flow: _Flow) -> None:
    s = flow.scenario
    _awaiting(flow)
    flow.kill("cutover", s.kill)
    if s.recover == "cutover":
        flow.run("cutover", result="succeeded")
        flow.expect(flow.ref.target, "after cutover")
        return
    if s.kill == "before:cutover_done:cutover":
        # swapped, not journaled: abort sees the names moved and refuses, changing nothing
        before = expandkit.snapshot(flow.client, flow.ns)
        flow.run("abort", rc=2)
        flow.expect(before, "after the refused abort")
        flow.run("cutover", result="succeeded")
        flow.expect(flow.ref.target, "after cutover")
        return
    flow.run("abort", result="rolled_back")
    flow.original("after abort")


def _killed_abort(flow: _Flow) -> None:
    _awaiting(flow)
    flow.kill("abort", flow.scenario.kill)
    flow.run("abort", result="rolled_back")
    flow.original("after abort")


FLOWS: dict[str, Callable[[_Flow], None]] = {
    "apply": _killed_apply,
    "writer": _writer,
    "rollback": _killed_rollback,
    "cutover": _killed_cutover,
    "abort": _killed_abort,
}


def _run(url: str, root: Path, n: int, scenario: Scenario, ref: Reference) -> Outcome:
    flow = _Flow(url, root, n, scenario, ref)
    try:
        FLOWS[scenario.flow](flow)
    except ScenarioFailed as exc:
        flow.outcome.error = str(exc)
    finally:
        flow.close()
        if flow.outcome.error is None and not flow.outcome.problems:
            shutil.rmtree(flow.workdir, ignore_errors=True)
    return flow.outcome


def _selected(session: pytest.Session) -> list[Scenario]:
    chosen: list[Scenario] = []
    for item in session.items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and isinstance(callspec.params.get("scenario"), Scenario):
            chosen.append(callspec.params["scenario"])
    return chosen


@dataclass
class Results:
    references: dict[str, Reference]
    outcomes: dict[str, Outcome]
    throwaways: list[str]


@pytest.fixture(scope="module")
def results(
    redis_url: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Results]:
    """The clean references of every kind, then every selected scenario (concurrently)."""
    root = tmp_path_factory.mktemp("crash-expand")
    _CTX.set_forkserver_preload([*crashkit.FORKSERVER_PRELOAD, "expandkit"])
    client = redis.Redis.from_url(redis_url, protocol=3)
    client.flushall()
    try:
        with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
            refs = dict(
                zip(
                    expandkit.KINDS,
                    pool.map(lambda k: _reference(redis_url, root, k), expandkit.KINDS),
                    strict=True,
                )
            )
            futures = {
                s.id: pool.submit(_run, redis_url, root, n, s, refs[s.kind])
                for n, s in enumerate(_selected(request.session), start=1)
            }
            outcomes = {sid: f.result() for sid, f in futures.items()}
        throwaways = [
            name
            for name in (expandkit.text(n) for n in client.execute_command("FT._LIST"))
            if name.startswith("__ftctl")
        ]
        yield Results(refs, outcomes, throwaways)
    finally:
        client.flushall()
        client.close()


def _verdict(outcome: Outcome) -> None:
    assert outcome.error is None, "\n".join([*outcome.log, outcome.error])
    assert outcome.problems == [], "\n".join([*outcome.log, *outcome.problems])


@pytest.mark.parametrize("kind", expandkit.KINDS)
def test_clean_expand_reaches_the_drop_recreate_layout(kind: str, results: Results) -> None:
    """The reference a recovered run is compared with is real: a clean expand run changed
    the documents to exactly what drop_recreate makes of them, one index with the target
    schema (fully built, every document) answers both public names, and the schema history
    of that index lists them."""
    ref = results.references[kind]
    assert ref.target["keys"] == ref.drop_recreate["keys"]
    assert ref.target["keys"] != ref.original["keys"]
    ((index, info),) = ref.target["indexes"].items()
    ((_, final),) = ref.drop_recreate["indexes"].items()
    schema = {**info["schema"], "index": final["schema"]["index"]}
    assert schema == final["schema"]
    assert info["ready"] and info["num_docs"] == expandkit.DOCS
    assert set(ref.target["names"].values()) == {index}
    assert ref.target["history"][f"ftctl:schema:{index}"]["aliases"] == ["alias", "docs"]
    assert list(ref.target["history"]) == [f"ftctl:schema:{index}"]


@pytest.mark.parametrize("kind", expandkit.KINDS)
def test_clean_expand_resumes_as_a_no_op_and_rolls_back(kind: str, results: Results) -> None:
    """A second resume of a finished expand changes nothing; a rollback of it restores the
    original layout and index definition under both public names."""
    ref = results.references[kind]
    assert not _differences(ref.resumed, ref.target)
    assert _original_problems(ref.rolled_back, ref.original) == []


def test_every_boundary_is_a_kill_point() -> None:
    """The scenarios kill after every EXPAND and EXPAND_ROLLBACK step (finished, or skipped
    where a kind never runs it), and mid-phase in every step that writes documents in
    groups: a step added to a table without a kill point fails here."""
    after = {
        (s.flow if s.flow in ("rollback", "abort") else "apply", p.split(":")[2])
        for s in SCENARIOS
        for p in (s.kill, s.again)
        if p.startswith(("after:step_finished:", "after:step_skipped:"))
    }
    assert {s for f, s in after if f == "apply"} >= set(EXPAND.names)
    assert {s for f, s in after if f != "apply"} >= set(EXPAND_ROLLBACK.names)
    mid = {p.split(":")[1] for s in SCENARIOS for p in (s.kill, s.again) if "progress" in p}
    batched = {"expand", "catch_up", "cutover", "rewrite", "final_cutover", "contract"}
    assert mid >= batched | {"rb_relayout", "rb_rewrite", "rb_unexpand"}


def test_the_legacy_writes_change_the_result(results: Results) -> None:
    """The writer scenarios' reference differs from the clean run's in every kind (the
    writes are there, converted)."""
    for ref in results.references.values():
        assert ref.written["keys"] != ref.target["keys"]
        assert len(ref.written["keys"]) == len(ref.target["keys"])


@pytest.mark.parametrize("scenario", APPLY_SCENARIOS, ids=lambda s: s.id)
def test_killed_expand_apply_recovers(scenario: Scenario, results: Results) -> None:
    """After a SIGKILL at any step boundary or mid-phase of an expand apply, both names
    still answer; resume/apply reaches the clean run's state byte for byte, and rollback
    (straight after the kill) brings back the original layout and index definition."""
    _verdict(results.outcomes[scenario.id])


@pytest.mark.parametrize("scenario", AGAIN_SCENARIOS, ids=lambda s: s.id)
def test_killed_twice_recovers(scenario: Scenario, results: Results) -> None:
    """A recovery killed in its turn (catch-up, the cut-overs' drains, the rollback's
    relayout and discard) recovers the same way."""
    _verdict(results.outcomes[scenario.id])


@pytest.mark.parametrize("scenario", WRITER_SCENARIOS, ids=lambda s: s.id)
def test_legacy_writes_between_kill_and_resume_are_converted(
    scenario: Scenario, results: Results
) -> None:
    """Documents updated, deleted and created in the old format while the migration was
    down end exactly as a clean run over the same writes leaves them."""
    _verdict(results.outcomes[scenario.id])


@pytest.mark.parametrize("scenario", ROLLBACK_SCENARIOS, ids=lambda s: s.id)
def test_killed_expand_rollback_rolls_back_again(scenario: Scenario, results: Results) -> None:
    """After a SIGKILL at any boundary or mid-phase of the rollback of a finished expand,
    both names still answer; rolling back again restores the original exactly."""
    _verdict(results.outcomes[scenario.id])


@pytest.mark.parametrize("scenario", GATE_SCENARIOS, ids=lambda s: s.id)
def test_killed_at_the_cutover_gate(scenario: Scenario, results: Results) -> None:
    """A postponed quantization: ``cutover`` killed anywhere and re-run reaches the clean
    state; ``abort`` after a kill before the swap (or a killed abort, re-run) restores the
    original, after the swap it is refused with nothing changed and ``cutover`` finishes."""
    _verdict(results.outcomes[scenario.id])


def test_no_throwaway_index_left_behind(results: Results) -> None:
    """Killed preflights never leave a throwaway validation index on the server."""
    assert results.throwaways == []
