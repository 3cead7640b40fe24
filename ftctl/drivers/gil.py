"""The interpreter's thread switch interval while a driver runs batches in threads."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from ftctl.drivers.interpreter import tuning_enabled

SWITCH_INTERVAL = 0.0002
"""Seconds a thread may hold the GIL while another wants it (Python's default: 0.005)."""

_lock = threading.Lock()
_holders = 0
_before = 0.0


@contextmanager
def responsive_threads() -> Iterator[None]:
    """Hand the GIL over every 0.2 ms instead of every 5 ms, then restore the setting.

    A batch thread whose reply has just arrived would otherwise wait up to 5 ms behind
    another thread's conversion before it can read the reply and send the next round trip:
    with tens of round trips per segment, that wait, not Redis, set the pace.

    The setting is the process's, so concurrent runs share it: the first to enter saves it,
    the last to leave restores it (each saving and restoring on its own could leave the short
    interval behind). Nothing changes while :func:`ftctl.drivers.tuning` is off.
    """
    global _holders, _before
    entered = tuning_enabled()
    if entered:
        with _lock:
            if _holders == 0:
                _before = sys.getswitchinterval()
                sys.setswitchinterval(min(_before, SWITCH_INTERVAL))
            _holders += 1
    try:
        yield
    finally:
        if entered:
            with _lock:
                _holders -= 1
                if _holders == 0:
                    sys.setswitchinterval(_before)
