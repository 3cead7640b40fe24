"""SIGKILL apply and rollback at every step boundary and inside a batch of every batched step.

One migration renames a field, changes the prefix and quantizes float32 → float16 at once.
Each scenario seeds its own namespace (same seed), runs the child (``crashkit.py``) with
``FTCTL_FAULT`` so it is SIGKILLed at the kill point, recovers, and snapshots Redis:

- killed apply, recovered by ``apply`` again or by ``resume``: the state equals a clean run's
  byte for byte; a rollback then restores the original byte for byte;
- killed apply, recovered by ``rollback`` directly: the original is back byte for byte;
- killed rollback (after a clean apply), rolled back again: the original is back.

Scenarios are independent (own index, prefixes and backup dir), so a module fixture runs the
selected ones concurrently; each test then checks its own scenario's outcome.
"""

from __future__ import annotations

import itertools
import json
import multiprocessing
import os
import signal
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import crashkit
import pytest
import redis

from ftctl.steps.tables import DROP_RECREATE, DROP_RECREATE_ROLLBACK

CHILD = Path(crashkit.__file__)
PARALLEL = max(4, min(8, (os.cpu_count() or 2) * 2))
CHILD_TIMEOUT = 60.0

UNBATCHED_APPLY = (
    "query_baseline", "preflight", "drop", "create", "wait", "validate", "query_compare",
)  # fmt: skip
BATCHED_APPLY = ("backup", "rename_fields", "rename_keys", "quantize")
UNBATCHED_ROLLBACK = ("drop_target", "recreate_source", "wait_source", "validate_source")
BATCHED_ROLLBACK = ("restore_vectors", "restore_keys", "restore_fields")


def _apply_kill_points() -> list[str]:
    """Every step boundary, every unbatched step with its work done but not journaled, and
    the middle of batch 1 (writes done, event not) of every batched step."""
    points = [f"after:step_finished:{step}" for step in DROP_RECREATE.names]
    points += [f"before:step_finished:{step}" for step in UNBATCHED_APPLY]
    points.append("before:keys_enumerated:enumerate:1")
    points += [f"before:batch_done:{step}:1" for step in BATCHED_APPLY]
    points.append("after:check_passed:validate")
    return points


def _rollback_kill_points() -> list[str]:
    points = [f"after:step_finished:{step}" for step in DROP_RECREATE_ROLLBACK.names]
    points += [f"before:step_finished:{step}" for step in UNBATCHED_ROLLBACK]
    points += [f"before:batch_done:{step}:1" for step in BATCHED_ROLLBACK]
    return points


@dataclass(frozen=True)
class Scenario:
    killed: str
    """``apply`` or ``rollback``: the run that is SIGKILLed."""
    kill: str
    """The FTCTL_FAULT kill point."""
    workers: int
    recover: str
    """``apply`` | ``resume`` | ``rollback``: what runs after the kill."""

    @property
    def id(self) -> str:
        return f"{self.killed}-{self.kill}-w{self.workers}-then-{self.recover}"


APPLY_SCENARIOS = [
    Scenario("apply", kill, workers, recover)
    for kill in _apply_kill_points()
    for workers in (1, 2)
    for recover in ("apply", "resume", "rollback")
]
ROLLBACK_SCENARIOS = [
    Scenario("rollback", kill, workers, "rollback")
    for kill in _rollback_kill_points()
    for workers in (1, 2)
]


@dataclass
class Outcome:
    log: list[str] = field(default_factory=list)
    states: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


@dataclass
class Results:
    original: dict[str, Any]
    clean: dict[str, Any]
    outcomes: dict[str, Outcome]
    leftovers: list[str]


@dataclass
class Done:
    returncode: int
    stdout: str


_CTX = multiprocessing.get_context("forkserver")
_calls = itertools.count()


def _child(
    url: str, workdir: Path, command: str, workers: int, fault: str = "", batch_size: int = 0
) -> Done:
    """Run ``crashkit`` ``command`` in a child forked from a server that preloaded ftctl.

    Forking from a preloaded server instead of starting ``python`` saves the ~0.3 s import
    per child, which is most of a child's run time at this data size.
    """
    argv = [command, url, str(workdir), str(workers)]
    if batch_size:
        argv.append(str(batch_size))
    log = workdir / f"child-{next(_calls)}.log"
    process = _CTX.Process(target=crashkit.child, args=(argv, fault, str(log)))
    process.start()
    process.join(CHILD_TIMEOUT)
    if process.exitcode is None:
        process.kill()
        process.join()
        process.close()
        raise ScenarioFailed(f"{command} did not finish within {CHILD_TIMEOUT:.0f}s")
    code = process.exitcode
    process.close()
    text = log.read_text(encoding="utf-8") if log.exists() else ""
    if code == 255:
        # multiprocessing reports 255 when it cannot read the status back from its
        # forkserver (seen under load). A child that exits writes its code as its last line;
        # one that did not was killed, and only the fault hook kills children here.
        said = [json.loads(line) for line in text.splitlines() if line.startswith('{"exit"')]
        code = said[-1]["exit"] if said else -signal.SIGKILL
    return Done(code, text)


def _last_json(stdout: str) -> dict[str, Any]:
    lines = [
        ln for ln in stdout.splitlines() if ln.startswith("{") and not ln.startswith('{"exit"')
    ]
    return json.loads(lines[-1]) if lines else {}


class ScenarioFailed(Exception):
    pass


def _expect(done: Done, what: str, outcome: Outcome, rc: int) -> None:
    outcome.log.append(f"{what}: exit {done.returncode} {_last_json(done.stdout)}")
    if done.returncode != rc:
        tail = done.stdout[-1500:]
        raise ScenarioFailed(f"{what} exited {done.returncode}, expected {rc}:\n{tail}")


def _run(url: str, root: Path, n: int, scenario: Scenario) -> Outcome:
    ns = f"s{n:03d}_"
    workdir = root / ns
    outcome = Outcome()
    client = redis.Redis.from_url(url, protocol=3)
    try:
        crashkit.prepare(client, ns, workdir)
        w = scenario.workers
        if scenario.killed == "rollback":
            _expect(_child(url, workdir, "apply", w), "clean apply", outcome, 0)
        killed = _child(url, workdir, scenario.killed, w, fault=scenario.kill)
        _expect(killed, f"{scenario.killed} with {scenario.kill}", outcome, -signal.SIGKILL)
        if scenario.recover in ("apply", "resume"):
            _expect(_child(url, workdir, scenario.recover, w), scenario.recover, outcome, 0)
            outcome.states["recovered"] = crashkit.snapshot(client, ns)
        _expect(_child(url, workdir, "rollback", w), "rollback", outcome, 0)
        outcome.states["rolled_back"] = crashkit.snapshot(client, ns)
    except ScenarioFailed as exc:
        outcome.error = str(exc)
    finally:
        _forget(client, ns)
        client.close()
    return outcome


def _forget(client: redis.Redis, ns: str) -> None:
    """Drop a finished scenario's indexes and keys: every FT.CREATE scans the whole keyspace,
    so leftovers would slow every later scenario down."""
    for raw in client.execute_command("FT._LIST"):
        name = raw.decode() if isinstance(raw, bytes) else str(raw)
        if name.startswith(ns):
            client.execute_command("FT.DROPINDEX", name)
    keys = list(client.scan_iter(match=f"{ns}*", count=1000))
    if keys:
        client.delete(*keys)


def _selected(session: pytest.Session) -> list[Scenario]:
    chosen: list[Scenario] = []
    for item in session.items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and isinstance(callspec.params.get("scenario"), Scenario):
            chosen.append(callspec.params["scenario"])
    return chosen


@pytest.fixture(scope="module")
def results(
    redis_url: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Results]:
    """Run the clean reference and every selected scenario (concurrently), then clean up."""
    root = tmp_path_factory.mktemp("crash")
    _CTX.set_forkserver_preload(crashkit.FORKSERVER_PRELOAD)
    client = redis.Redis.from_url(redis_url, protocol=3)
    client.flushall()
    try:
        crashkit.prepare(client, "s000_", root / "s000_")
        original = crashkit.snapshot(client, "s000_")
        clean_apply = _child(redis_url, root / "s000_", "apply", 1)
        assert clean_apply.returncode == 0, clean_apply.stdout[-2000:]
        clean = crashkit.snapshot(client, "s000_")
        scenarios = _selected(request.session)
        with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
            futures = {
                s.id: pool.submit(_run, redis_url, root, n, s)
                for n, s in enumerate(scenarios, start=1)
            }
            outcomes = {sid: f.result() for sid, f in futures.items()}
        leftovers = [
            raw.decode() if isinstance(raw, bytes) else str(raw)
            for raw in client.execute_command("FT._LIST")
            if (raw.decode() if isinstance(raw, bytes) else str(raw)).startswith("__ftctl")
        ]
        yield Results(original, clean, outcomes, leftovers)
    finally:
        client.flushall()
        client.close()


def _differences(got: dict[str, Any], want: dict[str, Any], limit: int = 8) -> list[str]:
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
            out.append(f"{path}: got {a!r:.120} want {b!r:.120}")

    walk(got, want, "")
    return out


def test_reference_run_changes_what_the_plan_says(results: Results) -> None:
    """The clean run renamed keys and the field and halved the vectors (the baseline is real)."""
    keys = results.clean["keys"]
    assert len(keys) == crashkit.DOCS
    assert all(k.startswith(b"item:") for k in keys)
    doc = keys[b"item:10"]["fields"]
    assert b"headline" in doc and b"title" not in doc
    assert len(doc[b"emb"]) == crashkit.DIMS * 2
    assert results.clean["indexes"]["docs"]["num_docs"] == crashkit.DOCS
    assert results.original != results.clean


@pytest.mark.parametrize("scenario", APPLY_SCENARIOS, ids=lambda s: s.id)
def test_killed_apply_recovers_byte_for_byte(scenario: Scenario, results: Results) -> None:
    """After a SIGKILL anywhere in apply, apply/resume reaches the clean run's exact state and
    rollback (also straight after the kill) restores the original exactly."""
    outcome = results.outcomes[scenario.id]
    assert outcome.error is None, "\n".join([*outcome.log, outcome.error])
    if scenario.recover != "rollback":
        assert not _differences(outcome.states["recovered"], results.clean)
    assert not _differences(outcome.states["rolled_back"], results.original)


@pytest.mark.parametrize("scenario", ROLLBACK_SCENARIOS, ids=lambda s: s.id)
def test_killed_rollback_recovers_byte_for_byte(scenario: Scenario, results: Results) -> None:
    """After a SIGKILL anywhere in rollback, rollback again restores the original exactly."""
    outcome = results.outcomes[scenario.id]
    assert outcome.error is None, "\n".join([*outcome.log, outcome.error])
    assert not _differences(outcome.states["rolled_back"], results.original)


def test_no_throwaway_index_left_behind(results: Results) -> None:
    """Killed preflights never leave a throwaway validation index on the server."""
    assert results.leftovers == []
