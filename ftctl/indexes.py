"""Index management: list, inspect, create and delete Search indexes (``ftctl index``).

Each function takes ``redis_url=`` (default ``$REDIS_URL``, then ``redis://localhost:6379``)
or an open client as ``redis_client=`` (RedisVL's name), which is used as it is and left
open. They run the catalog's sans-IO steps through the sync driver, like every other verb.

``create_index`` records the schema it used under ``ftctl:schema:<index>`` (schema history),
so options FT.INFO does not report survive later migrations; ``delete_index`` drops the
definition only (never ``DD``) and refuses to drop through an alias.

The history also records the aliases ftctl keeps pointing at an index (the public names of
an online migration's generated index, ``--alias`` names): ``list_public_indexes`` and
``describe_index`` show them (RediSearch itself cannot list aliases).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TypeVar

import redis

from ftctl.drivers import SyncDriver, connect
from ftctl.plan.build import resolve_source
from ftctl.schema.ftinfo import IndexInfo
from ftctl.schema.model import IndexSchema, load_schema
from ftctl.steps import catalog
from ftctl.steps.catalog import IndexDescription, PublicIndex
from ftctl.steps.effects import Step
from ftctl.steps.snapshot import read_source
from ftctl.version import ftctl_version

T = TypeVar("T")


def _run(step: Step[T], redis_url: str | None, redis_client: redis.Redis | None) -> T:
    """Drive ``step`` on the caller's client, or on one opened for ``redis_url`` and closed."""
    client = redis_client if redis_client is not None else connect(redis_url)
    try:
        return SyncDriver(client).run(step)
    finally:
        if redis_client is None:
            client.close()


def list_indexes(
    *, redis_url: str | None = None, redis_client: redis.Redis | None = None
) -> list[str]:
    """The names of the indexes on the server (``FT._LIST``), sorted."""
    return _run(catalog.list_indexes(), redis_url, redis_client)


def list_public_indexes(
    *, redis_url: str | None = None, redis_client: redis.Redis | None = None
) -> list[PublicIndex]:
    """Every index by the names users know, sorted by its first public name.

    Each :class:`~ftctl.steps.catalog.PublicIndex` has ``index`` (the real name, FT._LIST's),
    ``aliases`` (those ftctl's schema history records that still resolve to it), ``names``
    (public names first, a name ftctl generated last) and ``name`` (the first of them).
    """
    return _run(catalog.public_indexes(), redis_url, redis_client)


def describe_index(
    index: str, *, redis_url: str | None = None, redis_client: redis.Redis | None = None
) -> IndexDescription:
    """:func:`index_info` of ``index`` (an index or an alias) as ``.info``, with ``.public``:
    the :class:`~ftctl.steps.catalog.PublicIndex` of its real index (the aliases ftctl
    knows for it). An unknown index raises :class:`~ftctl.errors.UsageError`."""
    return _run(catalog.describe_index(index), redis_url, redis_client)


def index_info(
    index: str, *, redis_url: str | None = None, redis_client: redis.Redis | None = None
) -> IndexInfo:
    """``FT.INFO`` of ``index`` parsed into its real name, schema and statistics.

    An alias resolves to its index (``index_name`` is the index's own name). An unknown
    index raises :class:`~ftctl.errors.UsageError`.
    """
    return _run(catalog.index_info(index), redis_url, redis_client)


def create_index(
    schema: IndexSchema | str | os.PathLike[str],
    *,
    redis_url: str | None = None,
    redis_client: redis.Redis | None = None,
) -> IndexSchema:
    """``FT.CREATE`` from a schema (or a RedisVL schema YAML file) and record its history.

    Returns the schema the index was created with. Raises
    :class:`~ftctl.errors.RefusedError` when the name is taken (nothing changed) and
    :class:`~ftctl.errors.UsageError` when the file does not parse or the server refuses
    the schema.
    """
    resolved = schema if isinstance(schema, IndexSchema) else load_schema(Path(schema))
    _run(catalog.create_with_history(resolved, version=ftctl_version()), redis_url, redis_client)
    return resolved


def delete_index(
    index: str, *, redis_url: str | None = None, redis_client: redis.Redis | None = None
) -> list[str]:
    """Drop the definition of ``index`` (``FT.DROPINDEX`` without ``DD``): documents stay.

    Refused (:class:`~ftctl.errors.RefusedError`, nothing changed) when ``index`` is an
    alias; an unknown index raises :class:`~ftctl.errors.UsageError`. The index's schema
    history is forgotten. Returns the aliases ftctl knew for the index: RediSearch drops an
    index's aliases with it (any alias ftctl does not know goes too; it cannot list them).
    """
    return _run(catalog.delete_keeping_documents(index), redis_url, redis_client)


def source_schema(
    index: str, *, redis_url: str | None = None, redis_client: redis.Redis | None = None
) -> IndexSchema:
    """The schema a migration plan of ``index`` (an index or an alias) starts from.

    The live ``FT.INFO`` schema, with the options FT.INFO does not report restored from the
    schema history when that history agrees with everything FT.INFO does report — exactly
    the source :class:`~ftctl.planner.MigrationPlanner` plans against. Read-only.
    """
    snapshot = _run(read_source(index), redis_url, redis_client)
    schema, _ = resolve_source(snapshot)
    return schema


__all__ = [
    "IndexDescription",
    "PublicIndex",
    "create_index",
    "delete_index",
    "describe_index",
    "index_info",
    "list_indexes",
    "list_public_indexes",
    "source_schema",
]
