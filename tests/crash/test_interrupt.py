"""Ctrl+C (SIGINT) during a slow step: stop at a batch boundary, journal it, resume exactly.

The child runs with ``batch_size`` 10 (30 batches per batched step) and is sent SIGINT once
it has finished a few batches of the step under test; the library must raise
:class:`ftctl.errors.Interrupted` (exit 130 from the CLI, no traceback) after journaling an
``interrupted`` event at a batch boundary, and ``resume`` must then reach the state of an
uninterrupted run byte for byte.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import crashkit
import pytest
import redis

from ftctl.executor import MigrationExecutor, rollback
from ftctl.journal import Journal
from ftctl.journal.events import (
    AnyEvent,
    BatchDone,
    ConflictRecorded,
    KeysEnumerated,
    RunInterrupted,
    StepFinished,
    StepSkipped,
    StepStarted,
)
from ftctl.steps.tables import DROP_RECREATE

DROP_RECREATE_STEPS = DROP_RECREATE.names

CHILD = Path(crashkit.__file__)
BATCH = 10
BATCHES = crashkit.DOCS // BATCH
FTCTL = Path(sys.executable).with_name("ftctl")


@dataclass
class Reference:
    original: dict[str, Any]
    clean: dict[str, Any]


def _forget(client: redis.Redis, ns: str) -> None:
    for raw in client.execute_command("FT._LIST"):
        name = raw.decode() if isinstance(raw, bytes) else str(raw)
        if name.startswith(ns):
            client.execute_command("FT.DROPINDEX", name)
    keys = list(client.scan_iter(match=f"{ns}*", count=1000))
    if keys:
        client.delete(*keys)


@pytest.fixture(scope="module")
def reference(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Reference]:
    """Original and clean-run snapshots of the crash-test migration (uninterrupted, in-process)."""
    root = tmp_path_factory.mktemp("interrupt-ref")
    client = redis.Redis.from_url(redis_url, protocol=3)
    try:
        crashkit.prepare(client, "r000_", root)
        original = crashkit.snapshot(client, "r000_")
        report = MigrationExecutor().apply(
            root / "plan.yaml", client=client, backup_dir=root / "backup", accept_data_loss=True
        )
        assert report.result == "succeeded"
        yield Reference(original, crashkit.snapshot(client, "r000_"))
    finally:
        _forget(client, "r000_")
        client.close()


@pytest.fixture
def workspace(redis_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """A seeded namespace of its own with its plan in ``tmp_path``; removed afterwards."""
    ns = f"i{zlib.crc32(request.node.nodeid.encode()) % 10_000:04d}_"
    client = redis.Redis.from_url(redis_url, protocol=3)
    try:
        crashkit.prepare(client, ns, tmp_path)
        yield ns
    finally:
        _forget(client, ns)
        client.close()


def _events(backup: Path, ns: str) -> list[AnyEvent]:
    directory = backup / crashkit.index_name(ns)
    return Journal.read(directory) if (directory / "journal.log").exists() else []


def _batches_done(events: list[AnyEvent], step: str) -> int:
    return sum(1 for e in events if isinstance(e, BatchDone) and e.step == step)


def _interrupt_when(process: subprocess.Popen[str], backup: Path, ns: str, step: str) -> None:
    """SIGINT ``process`` once the journal shows 3 batches of ``step`` done."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and process.poll() is None:
        if _batches_done(_events(backup, ns), step) >= 3:
            process.send_signal(signal.SIGINT)
            return
        time.sleep(0.002)
    raise AssertionError(f"the child never reached 3 batches of {step}")


BOUNDARIES = (BatchDone, KeysEnumerated, StepFinished, StepSkipped)


def _check_interrupted_at_boundary(events: list[AnyEvent], step: str) -> RunInterrupted:
    """The journal ends with ``interrupted`` right after a boundary (a whole batch, a step's
    end, or a poll of the wait step) at ``step`` or later, before validation finished."""
    stops = [i for i, e in enumerate(events) if isinstance(e, RunInterrupted)]
    assert stops, "no interrupted event in the journal"
    stop = events[stops[-1]]
    assert isinstance(stop, RunInterrupted)
    before = [e for e in events[: stops[-1]] if not isinstance(e, ConflictRecorded)]
    polling = isinstance(before[-1], StepStarted) and before[-1].step == "wait"
    assert polling or isinstance(before[-1], BOUNDARIES), before[-1]
    finished = [e.step for e in events if isinstance(e, StepFinished)]
    assert "validate" not in finished, "it did not stop before the end"
    running = stop.step or before[-1].step  # type: ignore[union-attr]
    assert DROP_RECREATE_STEPS.index(running) >= DROP_RECREATE_STEPS.index(step)
    return stop


def _resume_is_exact(redis_url: str, backup: Path, ns: str, workers: int, ref: Reference) -> None:
    client = redis.Redis.from_url(redis_url, protocol=3)
    try:
        resumed = MigrationExecutor().resume(
            backup, client=client, batch_size=BATCH, num_workers=workers
        )
        assert resumed.result == "succeeded"
        assert crashkit.snapshot(client, ns) == ref.clean
        assert rollback(backup, client=client).result == "rolled_back"
        assert crashkit.snapshot(client, ns) == ref.original
    finally:
        client.close()


def _said(out: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(
        [ln for ln in out.splitlines() if ln.startswith("{") and not ln.startswith('{"exit"')][-1]
    )
    return result


@pytest.mark.parametrize("workers", [1, 2])
def test_sigint_during_backup_stops_at_boundary_and_resume_is_exact(
    redis_url: str, workspace: str, tmp_path: Path, reference: Reference, workers: int
) -> None:
    """SIGINT sent while backup runs raises Interrupted (exit 130) with a resume hint and no
    traceback, journals where it stopped, and resume then matches a clean run byte for byte."""
    ns, backup = workspace, tmp_path / "backup"
    argv = [sys.executable, str(CHILD), "apply", redis_url, str(tmp_path), str(workers)]
    with subprocess.Popen(
        [*argv, str(BATCH)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        _interrupt_when(process, backup, ns, "backup")
        out, err = process.communicate(timeout=60)
    assert process.returncode == 130, err[-2000:]
    assert "Traceback" not in err
    said = _said(out)
    assert said["error"] == "Interrupted"
    assert f"ftctl migrate resume --backup-dir {backup}" in said["hint"]
    _check_interrupted_at_boundary(_events(backup, ns), "backup")
    _resume_is_exact(redis_url, backup, ns, workers, reference)


SIGINT_POINTS = [
    ("before:batch_done:quantize:3", 1, "quantize"),
    ("before:batch_done:quantize:3", 2, "quantize"),
    ("after:step_started:drop", 1, "drop"),
    ("after:step_started:create", 1, "create"),
    ("after:step_started:wait", 1, "wait"),
    ("after:step_started:wait", 2, "wait"),
]


@pytest.mark.parametrize(("point", "workers", "step"), SIGINT_POINTS)
def test_sigint_at_exact_point_stops_at_next_boundary(
    redis_url: str,
    workspace: str,
    tmp_path: Path,
    reference: Reference,
    point: str,
    workers: int,
    step: str,
) -> None:
    """A Ctrl+C in the middle of a batch or of an unbatched step (the wait for the index can
    last hours) stops at the very next boundary with Interrupted; resume is exact."""
    ns, backup = workspace, tmp_path / "backup"
    env = {**os.environ, "FTCTL_FAULT": point, "FTCTL_FAULT_SIGNAL": "SIGINT"}
    argv = [sys.executable, str(CHILD), "apply", redis_url, str(tmp_path), str(workers)]
    done = subprocess.run(
        [*argv, str(BATCH)], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 130, done.stderr[-2000:] + done.stdout[-500:]
    assert "Traceback" not in done.stderr
    assert _said(done.stdout)["error"] == "Interrupted"
    stop = _check_interrupted_at_boundary(_events(backup, ns), step)
    assert stop.step in ("", step, DROP_RECREATE_STEPS[DROP_RECREATE_STEPS.index(step) + 1])
    _resume_is_exact(redis_url, backup, ns, workers, reference)


@pytest.mark.parametrize("point", ["before:batch_done:quantize:3", "after:step_started:wait"])
def test_sigint_under_the_async_executor_stops_at_next_boundary(
    redis_url: str, workspace: str, tmp_path: Path, reference: Reference, point: str
) -> None:
    """The asyncio executor honours Ctrl+C the same way: Interrupted (exit 130), an
    ``interrupted`` event at a boundary, and an exact resume."""
    ns, backup = workspace, tmp_path / "backup"
    env = {**os.environ, "FTCTL_FAULT": point, "FTCTL_FAULT_SIGNAL": "SIGINT"}
    argv = [sys.executable, str(CHILD), "apply-async", redis_url, str(tmp_path), "2"]
    done = subprocess.run(
        [*argv, str(BATCH)], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 130, done.stderr[-2000:] + done.stdout[-500:]
    assert "Traceback" not in done.stderr
    assert _said(done.stdout)["error"] == "Interrupted"
    step = point.split(":")[2]
    _check_interrupted_at_boundary(_events(backup, ns), step)
    _resume_is_exact(redis_url, backup, ns, 2, reference)


def test_cli_ctrl_c_exits_130_and_prints_how_to_resume(
    redis_url: str, workspace: str, tmp_path: Path, reference: Reference
) -> None:
    """`ftctl migrate apply` on Ctrl+C exits 130 with one line naming the resume command and
    no traceback; `ftctl migrate resume` then finishes to the clean run's exact state."""
    ns, backup = workspace, tmp_path / "backup"
    base = [str(FTCTL), "--url", redis_url, "migrate"]
    apply = [*base, "apply", "--plan", str(tmp_path / "plan.yaml"), "--backup-dir", str(backup)]
    with subprocess.Popen(
        [*apply, "--batch-size", str(BATCH), "--accept-data-loss"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        _interrupt_when(process, backup, ns, "rename_keys")
        _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err[-2000:]
    assert "Traceback" not in err
    assert f"ftctl migrate resume --backup-dir {backup}" in err
    _check_interrupted_at_boundary(_events(backup, ns), "rename_keys")

    resumed = subprocess.run(
        [*base, "resume", "--backup-dir", str(backup), "--batch-size", str(BATCH)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    client = redis.Redis.from_url(redis_url, protocol=3)
    try:
        assert crashkit.snapshot(client, ns) == reference.clean
    finally:
        client.close()
