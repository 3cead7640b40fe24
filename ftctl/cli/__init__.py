"""The ``ftctl`` command line: the root group, app state, and error → exit code mapping.

Only this package prints. Library errors (:class:`ftctl.errors.FtctlError`) become one line on
stderr and their exit code; no traceback is shown for them.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

import click
import redis

from ftctl.errors import EXIT_INTERRUPTED, EXIT_REFUSED, FtctlError
from ftctl.logs import LogFormat, configure


@dataclass
class AppState:
    """What every subcommand gets through ``@pass_state``."""

    url: str | None = None
    log_format: LogFormat = "console"
    verbosity: int = 0
    _client: redis.Redis | None = field(default=None, repr=False)

    def client(self) -> redis.Redis:
        """A connected client for ``--url`` (made once per invocation)."""
        from ftctl.drivers import connect

        if self._client is None:
            self._client = connect(self.url)
        return self._client


pass_state = click.make_pass_decorator(AppState)


class FtctlGroup(click.Group):
    """A group whose invocation turns FtctlError into one line and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except FtctlError as exc:
            click.echo(f"error: {exc.one_line()}", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(EXIT_INTERRUPTED)


@click.group(cls=FtctlGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--url", envvar="REDIS_URL", help="Redis URL [default: $REDIS_URL, then redis://localhost:6379]"
)
@click.option(
    "--log-format", type=click.Choice(["console", "json"]), default="console", show_default=True
)
@click.option("-v", "--verbose", count=True, help="More log output.")
@click.option("-q", "--quiet", is_flag=True, help="Warnings and errors only.")
@click.version_option(package_name="ftctl")
@click.pass_context
def cli(
    ctx: click.Context, url: str | None, log_format: LogFormat, verbose: int, quiet: bool
) -> None:
    """ftctl: journaled, crash-proof schema migrations for Redis Search indexes."""
    verbosity = -1 if quiet else verbose
    configure(log_format, verbosity)
    ctx.obj = AppState(url=url, log_format=log_format, verbosity=verbosity)


def _register() -> None:
    from ftctl.cli import demo as demo_commands
    from ftctl.cli import index as index_commands
    from ftctl.cli import server as server_commands

    cli.add_command(server_commands.server)
    cli.add_command(index_commands.index)
    from ftctl.cli import batch as _batch_commands  # noqa: F401 - registers batch-* on `migrate`
    from ftctl.cli import migrate as migrate_commands
    from ftctl.cli import migrate_run as _run_commands  # noqa: F401 - registers on `migrate`
    from ftctl.cli import online as _online_commands  # noqa: F401 - registers cutover/abort

    cli.add_command(migrate_commands.migrate)
    cli.add_command(demo_commands.demo)


_register()


def main() -> None:
    """Console-script entry point."""
    try:
        cli.main(prog_name="ftctl", standalone_mode=True)
    except FtctlError as exc:  # raised outside a group invocation (e.g. option callbacks)
        click.echo(f"error: {exc.one_line()}", err=True)
        sys.exit(exc.exit_code)


__all__ = ["EXIT_REFUSED", "AppState", "cli", "main", "pass_state"]
