"""The sync driver's handling of a stop request (Ctrl+C) while a step polls, of progress
reports, and of the log context in worker threads."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import redis
import structlog

from ftctl.drivers import SyncDriver
from ftctl.errors import Interrupted
from ftctl.steps.effects import Offload, Parallel, Progress, Sleep, Step


def _polls_forever() -> Step[None]:
    while True:
        yield Sleep(60.0)


def test_stop_interrupts_a_sleep_at_once() -> None:
    """A stop set during a long poll raises Interrupted within moments, not after the sleep."""
    stop = threading.Event()
    driver = SyncDriver(redis.Redis(), stop=stop)
    threading.Timer(0.05, stop.set).start()
    started = time.monotonic()
    with pytest.raises(Interrupted):
        driver.run(_polls_forever())
    assert time.monotonic() - started < 5


def test_without_stop_a_sleep_just_sleeps() -> None:
    """Drivers without a stop event (planner, validator) sleep as asked."""
    driver = SyncDriver(redis.Redis())

    def once() -> Step[str]:
        yield Sleep(0.01)
        return "slept"

    assert driver.run(once()) == "slept"


def _moving() -> Step[str]:
    yield Progress(done=3, detail={"percent_indexed": 0.5})
    yield Progress(advance=2)
    return "moved"


def test_progress_effects_go_to_the_progress_sink() -> None:
    """A step's Progress effects reach the driver's ``progress`` sink in order (the run's
    tap); without a sink they are dropped and the step goes on."""
    seen: list[Progress] = []
    assert SyncDriver(redis.Redis(), progress=seen.append).run(_moving()) == "moved"
    assert [(p.done, p.advance) for p in seen] == [(3, 0), (None, 2)]
    assert SyncDriver(redis.Redis()).run(_moving()) == "moved"


def test_parallel_sub_steps_see_the_callers_log_context() -> None:
    """Sub-steps run in worker threads with a copy of the caller's context variables, so
    whatever they log carries the run's bound ``index`` and ``run_id``."""

    def context() -> Step[dict[str, object]]:
        seen: dict[str, object] = yield Offload(structlog.contextvars.get_contextvars)
        return seen

    driver = SyncDriver(redis.Redis())
    with structlog.contextvars.bound_contextvars(index="docs", run_id="r1"):
        found = driver.run(_parallel([context(), context()]))
    assert found == [{"index": "docs", "run_id": "r1"}] * 2


def _parallel(steps: list[Step[Any]]) -> Step[list[Any]]:
    results: list[Any] = yield Parallel(steps)
    return results
