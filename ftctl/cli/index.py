"""``ftctl index listall|info|create|delete``: one :mod:`ftctl.indexes` call each."""

from __future__ import annotations

from pathlib import Path

import click
import msgspec

from ftctl import indexes
from ftctl.cli import options
from ftctl.cli.render import field_summary
from ftctl.cli.state import AppState, pass_state
from ftctl.schema import schema_to_builtins
from ftctl.schema.ftinfo import indexing_state
from ftctl.text import printable, text_only


@click.group(cls=options.Group)
def index() -> None:
    """Inspect and manage Search indexes."""


def public_line(public: indexes.PublicIndex) -> str:
    """An index as ``listall`` shows it: its public name, then where that name points and the
    index's other names (``docs (alias of docs__ftctl_1a2b; also: mine)``), or the plain
    name of an index ftctl knows no alias of."""
    name, real = printable(public.name), printable(public.index)
    others = [printable(n) for n in public.names if n not in (public.name, public.index)]
    if public.name != public.index:
        also = f"; also: {', '.join(others)}" if others else ""
        return f"{name} (alias of {real}{also})"
    return f"{name} (aliases: {', '.join(others)})" if others else name


@index.command()
@pass_state
def listall(state: AppState) -> None:
    """List the indexes on the server by the names applications use.

    An index ftctl created under a generated name (an online migration's) is listed by its
    public name, an alias ftctl keeps; other aliases ftctl knows follow. RediSearch cannot
    list aliases: those ftctl did not record are not shown.
    """
    found = indexes.list_public_indexes(redis_url=state.url)
    click.echo("Indices:")
    for number, public in enumerate(found, start=1):
        # A name may hold an escape sequence or bytes that are not UTF-8: never raw.
        click.echo(f"{number}. {public_line(public)}")


@index.command()
@options.index_name("Index name.")
@options.as_json("Print the schema and stats as JSON.")
@pass_state
def info(state: AppState, index_name: str, as_json: bool) -> None:
    """Show an index's schema and statistics, and the aliases ftctl keeps for it."""
    described = indexes.describe_index(index_name, redis_url=state.url)
    parsed, aliases = described.info, described.public.aliases
    if as_json:
        payload = {
            "index_name": parsed.index_name,
            "aliases": aliases,
            "schema": schema_to_builtins(parsed.schema),
            "stats": msgspec.to_builtins(parsed.stats),
        }
        click.echo(msgspec.json.encode(text_only(payload)).decode())
        return
    schema, stats = parsed.schema, parsed.stats
    click.echo(f"Index: {printable(parsed.index_name)}")
    if aliases:
        click.echo(f"Aliases: {', '.join(printable(a) for a in aliases)}")
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
    """Drop an index definition; documents are kept (FT.DROPINDEX without DD).

    RediSearch drops the index's aliases with it: those ftctl knows are named.
    """
    dropped = indexes.delete_index(index_name, redis_url=state.url)
    click.echo(f"Index deleted: {printable(index_name)} (documents kept)")
    if dropped:
        click.echo(f"Aliases dropped with it: {', '.join(printable(a) for a in dropped)}")
