"""``ftctl index listall|info|create|delete``: one :mod:`ftctl.indexes` call each."""

from __future__ import annotations

from pathlib import Path

import click
import msgspec

from ftctl import indexes
from ftctl.cli import options
from ftctl.cli.render import field_summary, indexing_state
from ftctl.cli.state import AppState, pass_state
from ftctl.schema import schema_to_builtins
from ftctl.text import printable, text_only


@click.group(cls=options.Group)
def index() -> None:
    """Inspect and manage Search indexes."""


@index.command()
@pass_state
def listall(state: AppState) -> None:
    """List the indexes on the server."""
    names = indexes.list_indexes(redis_url=state.url)
    click.echo("Indices:")
    for number, name in enumerate(names, start=1):
        # A name may hold an escape sequence or bytes that are not UTF-8: never raw.
        click.echo(f"{number}. {printable(name)}")


@index.command()
@options.index_name("Index name.")
@options.as_json("Print the schema and stats as JSON.")
@pass_state
def info(state: AppState, index_name: str, as_json: bool) -> None:
    """Show an index's schema and statistics."""
    parsed = indexes.index_info(index_name, redis_url=state.url)
    if as_json:
        payload = {
            "index_name": parsed.index_name,
            "schema": schema_to_builtins(parsed.schema),
            "stats": msgspec.to_builtins(parsed.stats),
        }
        click.echo(msgspec.json.encode(text_only(payload)).decode())
        return
    schema, stats = parsed.schema, parsed.stats
    click.echo(f"Index: {printable(parsed.index_name)}")
    click.echo(f"Storage: {schema.storage_type}")
    click.echo(f"Prefixes: {', '.join(repr(p) for p in schema.prefixes)}")
    click.echo("Fields:")
    for f in schema.fields:
        click.echo(f"  - {printable(field_summary(f))}")
    click.echo(f"Documents: {stats.num_docs} (indexing failures: {stats.hash_indexing_failures})")
    click.echo(f"State: {indexing_state(stats.indexing, stats.percent_indexed)}")


@index.command()
@click.option(
    "--schema",
    "-s",
    "schema_path",
    required=True,
    type=click.Path(path_type=Path),
    help="Schema YAML file (RedisVL format).",
)
@pass_state
def create(state: AppState, schema_path: Path) -> None:
    """Create an index from a schema YAML file."""
    schema = indexes.create_index(schema_path, redis_url=state.url)
    click.echo(f"Index created: {printable(schema.name)}")


@index.command()
@options.index_name("Index name (not an alias).")
@pass_state
def delete(state: AppState, index_name: str) -> None:
    """Drop an index definition; documents are kept (FT.DROPINDEX without DD)."""
    indexes.delete_index(index_name, redis_url=state.url)
    click.echo(f"Index deleted: {printable(index_name)} (documents kept)")
