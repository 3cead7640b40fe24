"""What every command gets through ``@pass_state``: the URL and the logging settings."""

from __future__ import annotations

from dataclasses import dataclass

import click

from ftctl.logs import LogFormat


@dataclass
class AppState:
    """Made by the root group; a subcommand's ``--url`` replaces ``url``.

    ``url`` stays None when neither ``--url`` nor ``$REDIS_URL`` is given: the library then
    resolves it (``redis://localhost:6379``).
    """

    url: str | None = None
    log_format: LogFormat = "console"
    verbosity: int = 0


pass_state = click.make_pass_decorator(AppState)

__all__ = ["AppState", "pass_state"]
