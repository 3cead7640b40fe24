"""RedisVL's ``query_check_file``: documents that must be fetchable and keys that must exist.

The file is YAML with two optional lists (RedisVL 0.28, ``MigrationValidator``)::

    fetch_ids: ["1", "2"]        # document ids: <target prefix><separator><id> must exist
    keys_exist: ["doc:1"]        # full Redis keys that must exist after the migration

Other keys are ignored, as RedisVL ignores them. Validation runs each entry as one check
(``fetch:<id>``, ``key:<key>``) and the report lists them in ``validation.query_checks``.
"""

from __future__ import annotations

import os
from pathlib import Path

import msgspec

from ftctl.errors import UsageError
from ftctl.schema.model import IndexSchema, read_yaml


class QueryChecks(msgspec.Struct, frozen=True, kw_only=True):
    """The checks of a ``query_check_file`` (ids and keys as strings)."""

    fetch_ids: list[str] = msgspec.field(default_factory=list)
    keys_exist: list[str] = msgspec.field(default_factory=list)


def _strings(raw: object, key: str, label: str) -> list[str]:
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(v, str | int) for v in raw):
        raise UsageError(
            f"{label}: '{key}' must be a list of strings",
            "a query check file is fetch_ids: [ids] and/or keys_exist: [keys]",
        )
    return [str(v) for v in raw]


def query_checks_from_builtins(raw: object, *, label: str = "query check file") -> QueryChecks:
    """:class:`QueryChecks` from decoded YAML; a bad shape is a :class:`UsageError`."""
    if raw is None:
        return QueryChecks()
    if not isinstance(raw, dict):
        raise UsageError(
            f"{label} is not a mapping",
            "a query check file is fetch_ids: [ids] and/or keys_exist: [keys]",
        )
    return QueryChecks(
        fetch_ids=_strings(raw.get("fetch_ids"), "fetch_ids", label),
        keys_exist=_strings(raw.get("keys_exist"), "keys_exist", label),
    )


def load_query_checks(source: str | os.PathLike[str] | bytes) -> QueryChecks:
    """Read a ``query_check_file`` (a path, or YAML bytes)."""
    label, raw = read_yaml(
        source if isinstance(source, bytes) else Path(source), "query check file"
    )
    return query_checks_from_builtins(raw, label=label)


def document_key(schema: IndexSchema, doc_id: str) -> str:
    """The key of document ``doc_id`` in an index of ``schema``, as RedisVL forms it.

    RedisVL's ``SearchIndex.key(id)``: the first prefix without trailing separators, the
    separator, then the id; the bare id when the index has no prefix.
    """
    prefixes = schema.prefixes
    prefix = prefixes[0] if prefixes else ""
    separator = schema.index.key_separator
    if not prefix:
        return doc_id
    normalized = prefix.rstrip(separator) if separator else prefix
    return f"{normalized}{separator}{doc_id}" if normalized else doc_id


__all__ = ["QueryChecks", "document_key", "load_query_checks", "query_checks_from_builtins"]
