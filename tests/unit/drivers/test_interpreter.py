"""Interpreter settings the drivers change for speed: the GIL switch interval while batches
run in threads, the cyclic collector while replies are parsed. Both come back."""

from __future__ import annotations

import gc
import sys

import pytest

from ftctl.drivers import SyncDriver
from ftctl.drivers.gil import SWITCH_INTERVAL, responsive_threads
from ftctl.drivers.wire import _no_cycle_collection
from ftctl.steps.effects import Offload, Parallel, Step


def _seen() -> Step[float]:
    value: float = yield Offload(sys.getswitchinterval)
    return value


def test_interval_is_short_inside_and_restored_after() -> None:
    before = sys.getswitchinterval()
    with responsive_threads():
        assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL)
    assert sys.getswitchinterval() == before


def test_parallel_batches_run_with_the_short_interval() -> None:
    before = sys.getswitchinterval()
    driver = SyncDriver(client=None)  # type: ignore[arg-type]

    def top() -> Step[list[float]]:
        seen: list[float] = yield Parallel([_seen(), _seen()])
        return seen

    assert driver.run(top()) == pytest.approx([SWITCH_INTERVAL, SWITCH_INTERVAL])
    assert sys.getswitchinterval() == before


def test_cycle_collection_pauses_while_parsing_and_keeps_the_callers_setting() -> None:
    """On while it was on, off while it was off: the caller's setting always comes back."""
    assert gc.isenabled()
    with _no_cycle_collection():
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with _no_cycle_collection():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()
