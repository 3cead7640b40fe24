"""Interpreter settings the drivers change for speed: the GIL switch interval while batches
run in threads, the cyclic collector while replies are parsed. Both come back, and neither
changes while ``ftctl.drivers.tuning(False)`` is in force."""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterator

import pytest
from click.testing import CliRunner

from ftctl.cli import cli
from ftctl.drivers import SyncDriver, tuning, tuning_enabled
from ftctl.drivers.gil import SWITCH_INTERVAL, responsive_threads
from ftctl.drivers.wire import _no_cycle_collection
from ftctl.steps.effects import Offload, Parallel, Step


@pytest.fixture(autouse=True)
def _tuning_back_on() -> Iterator[None]:
    yield
    tuning(True)


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


def test_tuning_is_on_by_default_and_the_cli_keeps_it_on() -> None:
    """A library user gets the fast settings without asking; running a command keeps them."""
    assert tuning_enabled()
    assert CliRunner().invoke(cli, ["--help"]).exit_code == 0
    assert tuning_enabled()


def test_with_tuning_off_the_switch_interval_is_left_alone() -> None:
    """A program that embeds ftctl and turns tuning off sees its own interval throughout."""
    tuning(False)
    before = sys.getswitchinterval()
    with responsive_threads():
        assert sys.getswitchinterval() == before
    driver = SyncDriver(client=None)  # type: ignore[arg-type]

    def top() -> Step[list[float]]:
        seen: list[float] = yield Parallel([_seen(), _seen()])
        return seen

    assert driver.run(top()) == [before, before]
    assert sys.getswitchinterval() == before


def test_with_tuning_off_the_collector_keeps_running() -> None:
    """Parsing replies does not pause the embedding program's garbage collector."""
    tuning(False)
    assert gc.isenabled()
    with _no_cycle_collection():
        assert gc.isenabled()
    assert gc.isenabled()


def test_turning_tuning_off_mid_run_still_restores_the_interval() -> None:
    """A run that shortened the interval restores it even if tuning was turned off meanwhile."""
    before = sys.getswitchinterval()
    with responsive_threads():
        tuning(False)
    assert sys.getswitchinterval() == before


def test_overlapping_runs_restore_the_interval_once_the_last_one_ends() -> None:
    """Two runs in one process (threads of an embedding program) that end in either order
    leave the original interval, not the short one a second run saw as its 'before'."""
    before = sys.getswitchinterval()
    first, second = responsive_threads(), responsive_threads()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL)
    second.__exit__(None, None, None)
    assert sys.getswitchinterval() == before
