"""``ftctl index listall|info|create|delete``."""

from __future__ import annotations

import click

from ftctl.cli import AppState, pass_state


@click.group()
def index() -> None:
    """Inspect and manage Search indexes."""


@index.command()
@pass_state
def listall(state: AppState) -> None:
    """List the indexes on the server."""
    names = sorted(
        n.decode() if isinstance(n, bytes) else str(n)
        for n in state.client().execute_command("FT._LIST")
    )
    click.echo("Indices:")
    for number, name in enumerate(names, start=1):
        click.echo(f"{number}. {name}")
