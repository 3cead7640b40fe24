"""``ftctl server start|stop|status``: an embedded Redis 8 + Search for trying ftctl locally."""

from __future__ import annotations

from pathlib import Path

import click

from ftctl import server as embedded
from ftctl.cli import options
from ftctl.cli.exits import exit_unless


@click.group(cls=options.Group)
def server() -> None:
    """Run an embedded Redis 8 + Search (needs the 'server' extra)."""


_dir_option = click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Working directory and pidfile location [default: $FTCTL_SERVER_DIR, else "
    "$XDG_RUNTIME_DIR/ftctl-server, else <tmp>/ftctl-server-<uid>; kept private to you].",
)


@server.command()
@click.option("--port", type=click.IntRange(0, 65535), default=0, help="Port (0 = a free one).")
@_dir_option
def start(port: int, directory: Path | None) -> None:
    """Start the server in the background and print its URL."""
    record = embedded.start_detached(port=port, directory=directory)
    click.echo(record.url)
    click.echo(f"pid {record.pid}, dir {record.directory}", err=True)


@server.command()
@_dir_option
def stop(directory: Path | None) -> None:
    """Stop the server started by 'ftctl server start'.

    Only that server: the pid in the pidfile must run the embedded redis-server and listen
    on the recorded port, otherwise nothing is signalled (exit 2).
    """
    record = embedded.stop_detached(directory)
    if record is None:
        click.echo("no embedded server is running", err=True)
    else:
        click.echo(f"stopped {record.url} (pid {record.pid})")


@server.command()
@_dir_option
def status(directory: Path | None) -> None:
    """Print the URL of the running server, or exit 1 when none runs."""
    record = embedded.read_record(directory)
    reason = "no pidfile" if record is None else embedded.not_ours(record)
    if record is None or reason is not None:
        click.echo(f"not running ({reason})")
    else:
        click.echo(f"running {record.url} (pid {record.pid})")
    exit_unless("not running" if reason else "running", "running")
