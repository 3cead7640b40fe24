"""The pause flag of a run: a file named ``PAUSE`` in its journal directory.

``ftctl migrate pause`` creates it, ``ftctl migrate unpause`` removes it; an online run that
rewrites documents looks for it between batches and holds its writes while it is there
(the run journals ``run_paused`` and ``run_resumed``). A file works whether or not a run is
going on, from any process and any shell (``touch PAUSE`` does the same), and survives an
interrupted run: the next one starts paused.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from ftctl.journal.safefs import open_in, os_error

PAUSE_NAME = "PAUSE"


def pause_requested(directory: Path) -> bool:
    """Whether ``directory`` holds a pause flag (of any kind: never followed)."""
    try:
        os.lstat(directory / PAUSE_NAME)
    except FileNotFoundError:
        return False
    except OSError as exc:
        if exc.errno == errno.ENOTDIR:
            return False
        raise os_error(exc, "look for the pause flag", directory / PAUSE_NAME) from None
    return True


def request_pause(directory: Path) -> bool:
    """Create the pause flag; False when it was already there."""
    try:
        fd = open_in(
            directory,
            PAUSE_NAME,
            os.O_WRONLY | os.O_CREAT | os.O_EXCL,
            action="create the pause flag",
        )
    except FileExistsError:
        return False
    os.close(fd)
    return True


def clear_pause(directory: Path) -> bool:
    """Remove the pause flag; False when there was none."""
    try:
        os.unlink(directory / PAUSE_NAME)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise os_error(exc, "remove the pause flag", directory / PAUSE_NAME) from None
    return True


__all__ = ["PAUSE_NAME", "clear_pause", "pause_requested", "request_pause"]
