"""How every ``ftctl`` command ends: one error format and one mapping onto exit codes.

- :class:`~ftctl.errors.FtctlError` → ``error: <message> (hint: <hint>)`` on stderr and the
  error's exit code (2 refused with nothing changed, 1 ran and failed, 130 interrupted); no
  traceback.
- Ctrl+C outside a run's own handling → ``interrupted``, 130.
- A report whose result is not a success → 1 (:func:`exit_unless`), after the report was
  shown.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import click

from ftctl.errors import EXIT_FAILED, EXIT_INTERRUPTED, FtctlError


def error_text(exc: FtctlError) -> str:
    """``error: `` and the message; a multi-line message keeps its lines, the hint ends it."""
    if "\n" not in exc.message.strip():
        return f"error: {exc.one_line()}"
    text = f"error: {exc.message.strip()}"
    if exc.hint:
        text += f"\n(hint: {' '.join(exc.hint.split())})"
    return text


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


def exit_unless(outcome: str, *succeeded: str) -> None:
    """Exit 1 unless ``outcome`` (a report's result or status) is one of ``succeeded``."""
    if outcome not in succeeded:
        raise click.exceptions.Exit(EXIT_FAILED)


__all__ = ["boundary", "error_text", "exit_unless"]
