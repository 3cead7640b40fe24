"""The ``ftctl`` command line: the root group, its global options, and the commands.

Only this package prints. Each command maps its options onto one library call and renders
the result; how a command ends (error line, exit code) is decided in one place,
:mod:`ftctl.cli.exits`. Shared options live in :mod:`ftctl.cli.options`.
"""

from __future__ import annotations

from typing import Any

import click

from ftctl.cli import options
from ftctl.cli.exits import boundary
from ftctl.cli.state import AppState, pass_state
from ftctl.errors import EXIT_REFUSED
from ftctl.logs import LogFormat, configure


class FtctlGroup(click.Group):
    """The root group: everything below it ends through :func:`ftctl.cli.exits.boundary`."""

    command_class = options.Command
    group_class = options.Group

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        with boundary(ctx):  # --help / --version write to stdout here
            return super().parse_args(ctx, args)
        raise AssertionError("unreachable")  # boundary exits or re-raises

    def invoke(self, ctx: click.Context) -> Any:
        with boundary(ctx):
            return super().invoke(ctx)
        raise AssertionError("unreachable")  # boundary exits or re-raises


@click.group(cls=FtctlGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--url", envvar="REDIS_URL", help=options.URL_HELP)
@click.option(
    "--log-format", type=click.Choice(["console", "json"]), default="console", show_default=True
)
@click.option("-v", "--verbose", count=True, help="More log output.")
@click.option("-q", "--quiet", is_flag=True, help="Errors only.")
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
    cli.main(prog_name="ftctl")


__all__ = ["EXIT_REFUSED", "AppState", "cli", "main", "pass_state"]
