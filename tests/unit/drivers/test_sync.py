"""The sync driver's handling of a stop request (Ctrl+C) while a step polls."""

from __future__ import annotations

import threading
import time

import pytest
import redis

from ftctl.drivers import SyncDriver
from ftctl.errors import Interrupted
from ftctl.steps.effects import Sleep, Step


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
