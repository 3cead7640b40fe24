"""The switch interval is short only while a driver runs batches in threads."""

from __future__ import annotations

import sys

import pytest

from ftctl.drivers import SyncDriver
from ftctl.drivers.gil import SWITCH_INTERVAL, responsive_threads
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
