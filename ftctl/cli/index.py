"""``ftctl index listall|info|create|delete``."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import click
import msgspec

from ftctl.cli import AppState, pass_state
from ftctl.drivers import SyncDriver
from ftctl.schema import (
    GeoShapeField,
    TagField,
    TextField,
    VectorField,
    load_schema,
    schema_to_builtins,
)
from ftctl.schema.model import Field
from ftctl.steps.catalog import (
    create_with_history,
    delete_keeping_documents,
    index_info,
    list_indexes,
)
from ftctl.steps.effects import Step
from ftctl.version import ftctl_version

T = TypeVar("T")


@click.group()
def index() -> None:
    """Inspect and manage Search indexes."""


def _run(state: AppState, step: Step[T]) -> T:
    return SyncDriver(state.client()).run(step)


@index.command()
@pass_state
def listall(state: AppState) -> None:
    """List the indexes on the server."""
    click.echo("Indices:")
    for number, name in enumerate(_run(state, list_indexes()), start=1):
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
    parsed = _run(state, index_info(name))
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
    _run(state, create_with_history(schema, version=ftctl_version()))
    click.echo(f"Index created: {schema.name}")


@index.command()
@click.option("--index", "-i", "name", required=True, help="Index name (not an alias).")
@pass_state
def delete(state: AppState, name: str) -> None:
    """Drop an index definition; documents are kept (FT.DROPINDEX without DD)."""
    _run(state, delete_keeping_documents(name))
    click.echo(f"Index deleted: {name} (documents kept)")
