"""``ftctl index listall|info|create|delete``."""

from __future__ import annotations

from pathlib import Path

import click
import msgspec
import redis

from ftctl.cli import AppState, pass_state
from ftctl.errors import RedisCommandError, RefusedError, UsageError
from ftctl.schema import (
    GeoShapeField,
    IndexInfo,
    TagField,
    TextField,
    VectorField,
    create_argv,
    load_schema,
    parse_ft_info,
    schema_to_builtins,
)
from ftctl.schema.model import Field


@click.group()
def index() -> None:
    """Inspect and manage Search indexes."""


def _names(client: redis.Redis) -> list[str]:
    return sorted(
        n.decode() if isinstance(n, bytes) else str(n) for n in client.execute_command("FT._LIST")
    )


def _is_unknown_index(exc: redis.ResponseError) -> bool:
    text = str(exc).lower()
    return "unknown index" in text or "no such index" in text or "not found" in text


def fetch_info(client: redis.Redis, name: str) -> IndexInfo:
    """FT.INFO of ``name`` parsed; an unknown index is a UsageError with a hint."""
    try:
        reply = client.execute_command("FT.INFO", name)
    except redis.ResponseError as exc:
        if _is_unknown_index(exc):
            raise UsageError(
                f"index '{name}' does not exist", "run 'ftctl index listall'"
            ) from None
        raise RedisCommandError("FT.INFO", str(exc)) from None
    return parse_ft_info(reply)


@index.command()
@pass_state
def listall(state: AppState) -> None:
    """List the indexes on the server."""
    click.echo("Indices:")
    for number, name in enumerate(_names(state.client()), start=1):
        click.echo(f"{number}. {name}")


def _field_summary(f: Field) -> str:
    kind = f.__struct_config__.tag
    parts: list[str] = []
    if f.path is not None:
        parts.append(f"path={f.path}")
    match f:
        case VectorField(attrs=a):
            parts += [a.algorithm, a.datatype, f"dims={a.dims}", a.distance_metric]
        case TagField(attrs=a) if a.separator is not None:
            parts.append(f"separator={a.separator!r}")
        case GeoShapeField(attrs=a):
            parts.append(a.coord_system)
        case TextField(attrs=a) if a.weight != 1.0:
            parts.append(f"weight={a.weight:g}")
        case _:
            pass
    attrs = getattr(f, "attrs", None)
    for flag in ("sortable", "no_index", "no_stem", "case_sensitive", "index_missing"):
        if getattr(attrs, flag, False):
            parts.append(flag)
    return f"{f.name} ({kind})" + (f": {', '.join(parts)}" if parts else "")


@index.command()
@click.option("--index", "-i", "name", required=True, help="Index name.")
@click.option("--json", "as_json", is_flag=True, help="Print the schema and stats as JSON.")
@pass_state
def info(state: AppState, name: str, as_json: bool) -> None:
    """Show an index's schema and statistics."""
    parsed = fetch_info(state.client(), name)
    if as_json:
        payload = {
            "index_name": parsed.index_name,
            "schema": schema_to_builtins(parsed.schema),
            "stats": msgspec.to_builtins(parsed.stats),
        }
        click.echo(msgspec.json.encode(payload).decode())
        return
    schema, stats = parsed.schema, parsed.stats
    click.echo(f"Index: {parsed.index_name}")
    click.echo(f"Storage: {schema.storage_type}")
    click.echo(f"Prefixes: {', '.join(repr(p) for p in schema.prefixes)}")
    click.echo("Fields:")
    for f in schema.fields:
        click.echo(f"  - {_field_summary(f)}")
    click.echo(f"Documents: {stats.num_docs} (indexing failures: {stats.hash_indexing_failures})")
    state_text = f"indexing ({stats.percent_indexed:.0%})" if stats.indexing else "ready"
    click.echo(f"State: {state_text}")


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
    schema = load_schema(schema_path)
    client = state.client()
    if schema.name in _names(client):
        raise RefusedError(
            f"index '{schema.name}' already exists",
            "delete it first (ftctl index delete) or change index.name",
        )
    try:
        client.execute_command(*create_argv(schema))
    except redis.ResponseError as exc:
        raise UsageError(
            f"the server refused the schema in '{schema_path}': {exc}", "fix the schema file"
        ) from None
    click.echo(f"Index created: {schema.name}")


@index.command()
@click.option("--index", "-i", "name", required=True, help="Index name (not an alias).")
@pass_state
def delete(state: AppState, name: str) -> None:
    """Drop an index definition; documents are kept (FT.DROPINDEX without DD)."""
    client = state.client()
    parsed = fetch_info(client, name)
    if parsed.index_name != name:
        raise RefusedError(
            f"'{name}' is an alias of index '{parsed.index_name}'; refusing to drop through an alias",
            f"run 'ftctl index delete --index {parsed.index_name}' to drop the index itself",
        )
    try:
        client.execute_command("FT.DROPINDEX", name)
    except redis.ResponseError as exc:
        raise RedisCommandError("FT.DROPINDEX", str(exc)) from None
    click.echo(f"Index deleted: {name} (documents kept)")
