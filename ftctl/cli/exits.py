"""How every ``ftctl`` command ends: one error format and one mapping onto exit codes.

- :class:`~ftctl.errors.FtctlError` → ``error: <message> (hint: <hint>)`` on stderr and the
  error's exit code (2 refused with nothing changed, 1 ran and failed, 130 interrupted); no
  traceback.
- Ctrl+C outside a run's own handling → ``interrupted``, 130.
- A report whose result is not a success → 1 (:func:`exit_unless`), after the report was
  shown.
- stdout closed by its reader (``ftctl index listall | head -1``) → no message, exit 141:
  128 + SIGPIPE, what a shell reports for ``cat``, ``grep`` or any program a closed pipe
  ends; never 1, which means "the migration failed". The signal itself stays ignored (as
  Python sets it), so a broken connection to Redis is an error, not a silent death.
"""

from __future__ import annotations

import contextlib
import os
import select
import sys
from collections.abc import Iterator

import click

from ftctl.errors import EXIT_FAILED, EXIT_INTERRUPTED, FtctlError

EXIT_BROKEN_PIPE = 141
"""128 + SIGPIPE: the reader of stdout went away (see the module docstring)."""


def error_text(exc: FtctlError) -> str:
    """``error: `` and the message; a multi-line message keeps its lines, the hint ends it."""
    if "\n" not in exc.message.strip():
        return f"error: {exc.one_line()}"
    text = f"error: {exc.message.strip()}"
    if exc.hint:
        text += f"\n(hint: {' '.join(exc.hint.split())})"
    return text


def _stdout_closed() -> bool:
    """Does stdout's file descriptor report that nobody reads it any more?"""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return False
    poll = getattr(select, "poll", None)
    if poll is None:  # no poll(2): the broken pipe can only be ours to report
        return True
    poller = poll()
    poller.register(fd, select.POLLOUT)
    return any(mask & (select.POLLERR | select.POLLHUP) for _, mask in poller.poll(0))


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the flush at interpreter exit cannot fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    finally:
        os.close(devnull)


@contextlib.contextmanager
def boundary(ctx: click.Context) -> Iterator[None]:
    """Turn what a command raises into its message and exit code (the root group's only)."""
    try:
        yield
    except FtctlError as exc:
        click.echo(error_text(exc), err=True)
        ctx.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        ctx.exit(EXIT_INTERRUPTED)
    except BrokenPipeError:
        if not _stdout_closed():
            raise
        _silence_stdout()
        ctx.exit(EXIT_BROKEN_PIPE)


def exit_unless(outcome: str, *succeeded: str) -> None:
    """Exit 1 unless ``outcome`` (a report's result or status) is one of ``succeeded``."""
    if outcome not in succeeded:
        raise click.exceptions.Exit(EXIT_FAILED)


__all__ = ["EXIT_BROKEN_PIPE", "boundary", "error_text", "exit_unless"]
