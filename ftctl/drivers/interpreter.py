"""The switch for the process-wide interpreter settings the drivers change for speed.

While they run, the drivers shorten the GIL switch interval (batches in threads, see
:mod:`ftctl.drivers.gil`) and pause the cyclic garbage collector (while buffered replies are
parsed, see :mod:`ftctl.drivers.wire`); both come back afterwards. Both settings belong to
the whole process, so a program that embeds ftctl and tunes them itself, or cannot afford
its other threads seeing them change, turns them off with ``tuning(False)``. They are on by
default, and the ``ftctl`` command keeps them on.
"""

from __future__ import annotations

_enabled = True


def tuning(enabled: bool) -> None:
    """Allow (the default) or forbid the drivers to change process-wide interpreter settings.

    Takes effect for every driver in the process from its next batch; a run in progress
    keeps what it changed until that batch ends. With tuning off, replies and journals are
    the same; runs may be slower (batches in threads, large reply pages).
    """
    global _enabled
    _enabled = enabled


def tuning_enabled() -> bool:
    """Whether the drivers may change the switch interval and pause the garbage collector."""
    return _enabled
