"""The rollback matrix: fail an apply at every step of every mode in every way, roll back.

Dimensions (:data:`SCENARIOS`):

- mode and step: every step of :data:`~ftctl.steps.tables.DROP_RECREATE` (rename a field,
  change the prefix, quantize float32 → float16), of :data:`~ftctl.steps.tables.ALTER` and of
  :data:`~ftctl.steps.tables.SHADOW`, each failed in its middle (:data:`POINTS`: a batch's
  writes done but not journaled, a step's work done but not finished);
- failure kind (:data:`KINDS`): SIGKILL, Ctrl+C (SIGINT), and the errors real runs end with,
  raised there by ``FTCTL_FAULT_RAISE``: a codec error, out of memory (a Redis OOM reply), a
  lost connection (reconnect timeout 0, so the run fails), an index wait that timed out, a
  failed check (at the steps that check, :data:`VALIDATING`);
- runner: the sync and the asyncio executor (workers 1 or 2).

Each scenario seeds its own namespace (:mod:`matrixkit`), fails the apply in a child process,
rolls back in another, with the forward conversion poisoned (a rollback that converted a
vector again would fail), and checks: the rollback says ``rolled_back``; every document is
byte for byte the original (keys, fields, vector bytes, key and field TTLs); every public name
(the index name, and the alias of online plans) resolves to the namespace's only index, which
has the source schema, is fully indexed and answers a full-text and a KNN query; no shadow,
cut-back or throwaway index is left.

Failed rollbacks (:data:`FAILED_ROLLBACKS`): every step of every rollback table (the
drop_recreate inverses, the online cut-back, the drop of an uncut shadow) failed in turn by
each kind, then the rollback run again: it restores everything as above.

Damaged journals (:data:`DAMAGED`): damage past the records a rollback needs — a torn last
record (also one ending in zeroed sectors), an orphan segment no event references — is cut or
ignored and the rollback still restores everything.

Scenarios are independent, so a module fixture runs the selected ones concurrently; each test
then checks its own scenario's outcome.
"""

from __future__ import annotations

import itertools
import json
import multiprocessing
import os
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import matrixkit
import pytest
import redis

from ftctl.journal.events import RunFinished, encode_event
from ftctl.journal.framing import frame, scan
from ftctl.plan.models import MigrationPlan
from ftctl.steps.runner import Table
from ftctl.steps.tables import (
    ALTER,
    ALTER_ROLLBACK,
    DROP_RECREATE,
    DROP_RECREATE_ROLLBACK,
    SHADOW,
    SHADOW_ROLLBACK,
)

PARALLEL = max(4, min(8, (os.cpu_count() or 2) * 2))
CHILD_TIMEOUT = 90.0
KILLED = -signal.SIGKILL

POINTS: dict[str, dict[str, str]] = {
    "drop_recreate": {
        "enumerate": "before:keys_enumerated:enumerate:1",
        "backup": "before:batch_done:backup:1",
        "preflight": "before:step_finished:preflight",
        "drop": "before:step_finished:drop",
        "rename_fields": "before:batch_done:rename_fields:1",
        "rename_keys": "before:batch_done:rename_keys:1",
        "quantize": "before:batch_done:quantize:1",
        "create": "before:step_finished:create",
        "wait": "before:step_finished:wait",
        "validate": "after:check_passed:validate",
    },
    "alter": {
        "online_preflight": "before:step_finished:online_preflight",
        "alter_add": "before:step_finished:alter_add",
        "alter_wait": "before:step_finished:alter_wait",
        "online_validate": "after:check_passed:online_validate",
    },
    "shadow": {
        "online_preflight": "before:step_finished:online_preflight",
        "shadow_create": "before:shadow_created:shadow_create",
        "shadow_wait": "before:shadow_ready:shadow_wait",
        "shadow_verify": "before:step_finished:shadow_verify",
        "cutover": "before:cutover_done:cutover",
        "online_validate": "after:check_passed:online_validate",
    },
}
"""One point in the middle of each step: a batch's writes done but not journaled, a step's
work done (the shadow built, the swap made) but not journaled, validation half recorded."""

TABLES: dict[str, Table] = {"drop_recreate": DROP_RECREATE, "alter": ALTER, "shadow": SHADOW}
ROLLBACK_TABLES: dict[str, Table] = {
    "drop_recreate": DROP_RECREATE_ROLLBACK,
    "alter": ALTER_ROLLBACK,
    "shadow": SHADOW_ROLLBACK,
}
GATES = {"await_cutover"}
"""Steps the matrix does not fail: the cut-over gate is skipped unless the cut-over is
postponed (the postponed flows are the online crash suite's)."""

KINDS = ("kill", "sigint", "codec", "oom", "connection", "timeout", "validation")
RAISED = KINDS[2:]
RUNNERS = ("sync", "async")

VALIDATING: dict[str, dict[str, str]] = {
    "drop_recreate": {"wait": "validation", "validate": "validation"},
    "alter": {"online_validate": "validation"},
    "shadow": {"shadow_verify": "verification", "online_validate": "validation"},
}
"""The steps where a check can fail, and how it fails there (the ``FTCTL_FAULT_RAISE``
kind): the validation steps record it and the run ends ``failed``; a shadow's verification
stops the run. A check failed anywhere else is not a state a journal can be in (a
validation step starting clears earlier checks), so the matrix has no such cell."""


ROLLBACK_POINTS: dict[str, dict[str, str]] = {
    "drop_recreate": {
        "rollback_preflight": "before:step_finished:rollback_preflight",
        "drop_target": "before:step_finished:drop_target",
        "restore_vectors": "before:batch_done:restore_vectors:1",
        "restore_keys": "before:batch_done:restore_keys:1",
        "restore_fields": "before:batch_done:restore_fields:1",
        "recreate_source": "before:step_finished:recreate_source",
        "wait_source": "before:step_finished:wait_source",
        "validate_source": "after:check_passed:validate_source",
    },
    "alter": {
        "rb_shadow_create": "before:shadow_created:rb_shadow_create",
        "rb_shadow_wait": "before:shadow_ready:rb_shadow_wait",
        "rb_shadow_verify": "before:step_finished:rb_shadow_verify",
        "rb_cutover": "before:cutover_done:rb_cutover",
        "rb_validate": "after:check_passed:rb_validate",
    },
    "shadow": {
        "rb_shadow_create": "before:shadow_created:rb_shadow_create",
        "rb_shadow_wait": "before:shadow_ready:rb_shadow_wait",
        "rb_shadow_verify": "before:step_finished:rb_shadow_verify",
        "rb_cutover": "before:cutover_done:rb_cutover",
        "abort_shadow": "before:step_finished:abort_shadow",
        "rb_validate": "after:check_passed:rb_validate",
    },
}
"""One point in the middle of each step of each rollback table (the cut-back builds the
source schema as a new index and swaps it in; ``abort_shadow`` drops a shadow never cut
over)."""

ROLLBACK_VALIDATING: dict[str, dict[str, str]] = {
    "drop_recreate": {"validate_source": "validation"},
    "alter": {"rb_shadow_verify": "verification", "rb_validate": "validation"},
    "shadow": {"rb_shadow_verify": "verification", "rb_validate": "validation"},
}


def _workers(runner: str, kind: str) -> int:
    """The asyncio runner runs with two worker connections; the sync runner alternates one
    and two (threads) across the kinds."""
    return 2 if runner == "async" else 1 + KINDS.index(kind) % 2


@dataclass(frozen=True)
class Scenario:
    mode: str
    step: str
    """The apply step failed."""
    kind: str
    runner: str
    workers: int
    damage: str = ""
    """Damage done to the journal directory before the rollback (:func:`_damage`)."""
    rollback_step: str = ""
    """A rollback step failed first (then damage, if any, then roll back again)."""
    rollback_kind: str = ""

    @property
    def point(self) -> str:
        return POINTS[self.mode][self.step]

    @property
    def raised(self) -> str:
        return _raised(self.kind, VALIDATING[self.mode].get(self.step, ""))

    @property
    def rollback_point(self) -> str:
        return ROLLBACK_POINTS[self.mode][self.rollback_step]

    @property
    def rollback_raised(self) -> str:
        validating = ROLLBACK_VALIDATING[self.mode].get(self.rollback_step, "")
        return _raised(self.rollback_kind, validating)

    @property
    def id(self) -> str:
        out = f"{self.mode}-{self.step}-{self.kind}-{self.runner}-w{self.workers}"
        if self.rollback_step:
            out += f"-then-rollback-{self.rollback_step}-{self.rollback_kind}"
        return out + (f"-{self.damage}" if self.damage else "")


def _raised(kind: str, validating: str) -> str:
    """The ``FTCTL_FAULT_RAISE`` kind of a failure ``kind`` at a step (``validating``: how
    a check fails there)."""
    return validating if kind == "validation" else kind if kind in RAISED else ""


SCENARIOS = [
    Scenario(mode, step, kind, runner, _workers(runner, kind))
    for mode, points in POINTS.items()
    for step in points
    for kind in KINDS
    if kind != "validation" or step in VALIDATING[mode]
    for runner in RUNNERS
]


def _failed_rollbacks() -> list[Scenario]:
    """Each rollback step failed twice (sync and asyncio), the kinds taken in turn (and a
    failed check at each step that checks), after an apply that did everything and failed
    its last check — or, for ``abort_shadow``, failed verifying its shadow."""
    out: list[Scenario] = []
    turn = itertools.cycle(KINDS[:-1])
    for mode, points in ROLLBACK_POINTS.items():
        last = list(POINTS[mode])[-1]
        for position, step in enumerate(points):
            apply_step = "shadow_verify" if step == "abort_shadow" else last
            kinds = [next(turn), next(turn)]
            if step in ROLLBACK_VALIDATING[mode]:
                kinds[1] = "validation"
            for runner, kind in zip(RUNNERS, kinds, strict=True):
                workers = 2 if runner == "async" else 1 + position % 2
                failed = Scenario(mode, apply_step, "validation", runner, workers)
                out.append(replace(failed, rollback_step=step, rollback_kind=kind))
    return out


FAILED_ROLLBACKS = _failed_rollbacks()

DAMAGED = [
    Scenario("drop_recreate", "quantize", "kill", "sync", 1, damage="torn_tail"),
    Scenario("drop_recreate", "rename_keys", "oom", "async", 2, damage="zeroed_tail"),
    Scenario("drop_recreate", "quantize", "kill", "async", 2, damage="orphan_segment"),
    Scenario("drop_recreate", "validate", "validation", "sync", 1, damage="torn_tail"),
    replace(
        Scenario("drop_recreate", "quantize", "codec", "sync", 1, damage="torn_tail"),
        rollback_step="restore_keys",
        rollback_kind="kill",
    ),
    Scenario("shadow", "cutover", "connection", "sync", 1, damage="torn_tail"),
    Scenario("alter", "alter_wait", "timeout", "async", 2, damage="zeroed_tail"),
]


@dataclass
class Outcome:
    log: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0
    cpu: float = 0.0
    """CPU seconds of the children that exited (a killed child cannot say)."""


@dataclass
class Results:
    original: dict[bytes, Any]
    outcomes: dict[str, Outcome]
    leftovers: list[str]
    seconds: float


@dataclass
class Done:
    returncode: int
    stdout: str

    @property
    def cpu(self) -> float:
        """CPU seconds the child used (0 for a killed child: it could not say)."""
        said = [json.loads(ln) for ln in self.stdout.splitlines() if ln.startswith('{"exit"')]
        return float(said[-1].get("cpu", 0.0)) if said else 0.0


_CTX = multiprocessing.get_context("forkserver")
_calls = itertools.count()


def _child(argv: list[str], workdir: Path, env: dict[str, str]) -> Done:
    """Run ``matrixkit`` with ``argv`` in a child forked from a server that preloaded ftctl."""
    log = workdir / f"child-{next(_calls)}.log"
    process = _CTX.Process(target=matrixkit.child, args=(argv, env, str(log)))
    process.start()
    process.join(CHILD_TIMEOUT)
    if process.exitcode is None:
        process.kill()
        process.join()
        process.close()
        raise ScenarioFailed(f"{argv[0]} did not finish within {CHILD_TIMEOUT:.0f}s")
    code = process.exitcode
    process.close()
    text = log.read_text(encoding="utf-8") if log.exists() else ""
    if code == 255:
        # multiprocessing reports 255 when it cannot read the status back from its
        # forkserver (seen under load); a child that exited wrote its code as its last line.
        said = [json.loads(line) for line in text.splitlines() if line.startswith('{"exit"')]
        code = said[-1]["exit"] if said else KILLED
    return Done(code, text)


def _said(stdout: str) -> dict[str, Any]:
    lines = [ln for ln in stdout.splitlines() if ln.startswith("{") and '"exit"' not in ln[:8]]
    return json.loads(lines[-1]) if lines else {}


class ScenarioFailed(Exception):
    pass


def _fault_env(point: str, kind: str, raised: str) -> dict[str, str]:
    env = {"FTCTL_FAULT": point}
    if kind == "sigint":
        env["FTCTL_FAULT_SIGNAL"] = "SIGINT"
    elif raised:
        env["FTCTL_FAULT_RAISE"] = raised
    return env


def _check_failed(done: Done, what: str, kind: str, raised: str) -> None:
    """The run ended the way its failure kind ends a run."""
    said = _said(done.stdout)
    if kind == "kill":
        ok = done.returncode == KILLED
    elif kind == "sigint":
        ok = done.returncode == 130 and said.get("error") == "Interrupted"
    else:
        ok = (
            done.returncode == 1
            and said.get("result") == "failed"
            and f"FTCTL_FAULT_RAISE={raised}" in (said.get("error") or "")
        )
    if not ok:
        raise ScenarioFailed(f"{what} exited {done.returncode}: {done.stdout[-1500:]}")


def _check_rolled_back(done: Done, what: str) -> None:
    said = _said(done.stdout)
    if done.returncode != 0 or said.get("result") != "rolled_back":
        raise ScenarioFailed(f"{what} exited {done.returncode}: {done.stdout[-2000:]}")


def _journal_dir(workdir: Path, ns: str) -> Path:
    return workdir / "backup" / matrixkit.index_name(ns)


def _damage(kind: str, directory: Path) -> None:
    """Damage past what a rollback needs, as a crash leaves it.

    ``torn_tail``: the first half of a record (an append cut short); ``zeroed_tail``: a
    record whose last sectors were allocated but never written (zeros); ``orphan_segment``:
    a half-written segment file no event references (a crash before its batch's event), and
    a torn tail.
    """
    record = frame(encode_event(RunFinished(seq=10_000, result="failed", error="x" * 300)))
    with (directory / "journal.log").open("ab") as log:
        if kind in ("torn_tail", "orphan_segment"):
            log.write(record[: len(record) // 2])
        elif kind == "zeroed_tail":
            log.flush()
            size = log.tell() + 100
            log.write(record[:100] + bytes(-(-size // 512) * 512 + 512 - size))
        else:
            raise AssertionError(kind)
    if kind == "orphan_segment":
        segments = directory / "segments"
        numbers = [int(p.name.split(".")[0]) for p in segments.glob("*.zst")]
        orphan = segments / f"{max(numbers, default=0) + 1:06d}.zst"
        orphan.write_bytes(b"\x28\xb5\x2f\xfd" + os.urandom(100))
    assert scan((directory / "journal.log").read_bytes()).tail_problem is not None


def _run(url: str, root: Path, n: int, scenario: Scenario, original: dict[bytes, Any]) -> Outcome:
    started = time.monotonic()
    ns = f"m{n:03d}_"
    workdir = root / ns
    outcome = Outcome()
    client = redis.Redis.from_url(url, protocol=3)
    try:
        plan: MigrationPlan = matrixkit.prepare(client, ns, scenario.mode, workdir)
        argv = [scenario.runner, url, str(workdir), str(scenario.workers)]
        env = _fault_env(scenario.point, scenario.kind, scenario.raised)
        applied = _child(["apply", *argv], workdir, env)
        outcome.log.append(f"apply: exit {applied.returncode} {_said(applied.stdout)}")
        outcome.cpu += applied.cpu
        _check_failed(applied, "apply", scenario.kind, scenario.raised)
        if scenario.rollback_step:
            kind, raised = scenario.rollback_kind, scenario.rollback_raised
            env = _fault_env(scenario.rollback_point, kind, raised)
            failed = _child(["rollback", *argv], workdir, env)
            outcome.log.append(f"rollback: exit {failed.returncode} {_said(failed.stdout)}")
            outcome.cpu += failed.cpu
            _check_failed(failed, "failed rollback", kind, raised)
        if scenario.damage:
            _damage(scenario.damage, _journal_dir(workdir, ns))
        back = _child(["rollback", *argv], workdir, {})
        what = "rollback again" if scenario.rollback_step else "rollback"
        outcome.log.append(f"{what}: exit {back.returncode} {_said(back.stdout)}")
        outcome.cpu += back.cpu
        _check_rolled_back(back, what)
        if scenario.damage:
            data = (_journal_dir(workdir, ns) / "journal.log").read_bytes()
            if scan(data).tail_problem is not None:
                outcome.problems.append("the torn tail was not cut before the rollback appended")
        now = matrixkit.documents(client, ns)
        if now != original:
            outcome.problems.append(_differences(now, original))
        source = plan.source.schema_snapshot
        outcome.problems += matrixkit.serving_problems(client, ns, scenario.mode, source, original)
    except ScenarioFailed as exc:
        outcome.problems.append(str(exc))
    finally:
        matrixkit.forget(client, ns)
        client.close()
        outcome.seconds = time.monotonic() - started
    return outcome


def _differences(got: dict[bytes, Any], want: dict[bytes, Any], limit: int = 6) -> str:
    """The first keys whose documents differ (readable where ``==`` is not)."""
    out = []
    for key in sorted(set(got) | set(want)):
        if got.get(key) != want.get(key):
            out.append(f"{key!r}: got {got.get(key)!r:.200} want {want.get(key)!r:.200}")
        if len(out) >= limit:
            break
    return "documents differ from the original:\n  " + "\n  ".join(out)


def _selected(session: pytest.Session) -> list[Scenario]:
    chosen: list[Scenario] = []
    for item in session.items:
        callspec = getattr(item, "callspec", None)
        scenario = callspec.params.get("scenario") if callspec is not None else None
        if isinstance(scenario, Scenario) and scenario not in chosen:
            chosen.append(scenario)
    return chosen


@pytest.fixture(scope="module")
def results(
    redis_url: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Results]:
    """Run every selected scenario (concurrently) against the original documents."""
    started, parent_cpu = time.monotonic(), os.times()
    root = tmp_path_factory.mktemp("matrix")
    _CTX.set_forkserver_preload(["crashkit", "matrixkit", "ftctl.executor"])
    client = redis.Redis.from_url(redis_url, protocol=3)
    server_cpu = _server_cpu(client)
    try:
        matrixkit.seed(client, "m000_", "drop_recreate")
        original = matrixkit.documents(client, "m000_")
        matrixkit.forget(client, "m000_")
        scenarios = _selected(request.session)
        with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
            futures = {
                s.id: pool.submit(_run, redis_url, root, n, s, original)
                for n, s in enumerate(scenarios, start=1)
            }
            outcomes = {sid: f.result() for sid, f in futures.items()}
        leftovers = [
            name
            for name in map(matrixkit._text, client.execute_command("FT._LIST"))
            if name.startswith("__ftctl")
        ]
        seconds = time.monotonic() - started
        _write_timing(outcomes, seconds, parent_cpu, _server_cpu(client) - server_cpu)
        yield Results(original, outcomes, leftovers, seconds)
    finally:
        client.close()


def _server_cpu(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


TIMING_ENV = "FTCTL_MATRIX_TIMING"
"""A file to write the matrix's wall and CPU time to (to measure what it costs the suite)."""


def _write_timing(
    outcomes: dict[str, Outcome], seconds: float, parent: os.times_result, server: float
) -> None:
    path = os.environ.get(TIMING_ENV)
    if not path:
        return
    now = os.times()
    summary = {
        "scenarios": len(outcomes),
        "wall_seconds": round(seconds, 1),
        "children_cpu": round(sum(o.cpu for o in outcomes.values()), 1),
        "parent_cpu": round(now.user + now.system - parent.user - parent.system, 1),
        "server_cpu": round(server, 1),
        "slowest": sorted(((round(o.seconds, 2), k) for k, o in outcomes.items()))[-5:],
    }
    Path(path).write_text(json.dumps(summary, indent=1), encoding="utf-8")


def _assert_restored(results: Results, scenario: Scenario) -> None:
    outcome = results.outcomes[scenario.id]
    assert not outcome.problems, "\n".join([*outcome.log, *outcome.problems])


def test_the_matrix_covers_every_step_of_every_mode() -> None:
    """Each step of each mode's table has a failure point: a step added to a table without
    one fails here instead of going untested."""
    for mode, table in TABLES.items():
        assert set(POINTS[mode]) == set(table.names) - GATES, mode
        validating = {s.name for s in table.steps if s.validation}
        assert set(VALIDATING[mode]) == validating, mode
        back = ROLLBACK_TABLES[mode]
        assert set(ROLLBACK_POINTS[mode]) == set(back.names), mode
        assert set(ROLLBACK_VALIDATING[mode]) == {s.name for s in back.steps if s.validation}
    cells = sum(len(p) * (len(KINDS) - 1) + len(VALIDATING[m]) for m, p in POINTS.items())
    assert len(SCENARIOS) == cells * len(RUNNERS)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.id)
def test_rollback_after_a_failed_apply_restores_everything(
    scenario: Scenario, results: Results
) -> None:
    """Whatever step of whatever mode an apply failed in, and however (killed, Ctrl+C,
    codec, OOM, connection, timeout, failed check), rollback restores every document byte
    for byte and the source index under every public name, without converting again."""
    _assert_restored(results, scenario)


@pytest.mark.parametrize("scenario", FAILED_ROLLBACKS, ids=lambda s: s.id)
def test_rollback_after_a_failed_rollback_restores_everything(
    scenario: Scenario, results: Results
) -> None:
    """A rollback that failed in any of its steps (killed, Ctrl+C, codec, OOM, connection,
    timeout, failed check) is run again and then restores everything."""
    _assert_restored(results, scenario)


@pytest.mark.parametrize("scenario", DAMAGED, ids=lambda s: s.id)
def test_rollback_past_damage_it_does_not_need(scenario: Scenario, results: Results) -> None:
    """A torn last record (cut short, or ending in zeroed sectors) and an orphan segment are
    past the records a rollback needs: it cuts or ignores them and restores everything."""
    _assert_restored(results, scenario)


def test_no_index_left_behind(results: Results) -> None:
    """No scenario leaves a throwaway, shadow or cut-back index on the server."""
    assert results.leftovers == []
