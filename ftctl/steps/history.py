"""ftctl's schema history: the full schema it last created an index with, kept in Redis.

FT.INFO does not report every option (PHONETIC, EF_RUNTIME, INITIAL_CAP, SKIPINITIALSCAN,
the key separator, …), so recreating an index from FT.INFO alone would reset them. When
ftctl creates or migrates an index it stores the schema it used under the key
``ftctl:schema:<index name>``, a **string** holding JSON::

    {"schema": <RedisVL schema as in a schema YAML>, "updated_at": "<UTC ISO>",
     "ftctl_version": "0.1.0", "plan_digest": "<sha256 or empty>",
     "aliases": ["<public name>", ...]}

``aliases`` are the public names ftctl keeps pointing at the index (DESIGN §5b "Names."):
the name a plan was made with when it is an alias, a name an online cut-over moved, the
``--alias`` names, the old name of a renamed index. RediSearch cannot list aliases, so this
record is how a later plan knows them; records written before it existed read as ``[]``.

It is a string rather than a hash on purpose: an index with the empty prefix indexes every
hash in the database, and a hash here would become one of its documents. The planner uses
the record only while it agrees with FT.INFO on everything FT.INFO reports.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from ftctl.errors import UsageError
from ftctl.schema.model import IndexSchema, from_builtins, schema_to_builtins
from ftctl.steps.effects import Commands, ReplyError, Step, single

HISTORY_KEY_PREFIX = "ftctl:schema:"


class HistoryRecord(msgspec.Struct, frozen=True, kw_only=True):
    """What is stored under :func:`history_key` (schema kept as RedisVL builtins)."""

    schema: dict[str, object]
    updated_at: str = ""
    ftctl_version: str = ""
    plan_digest: str = ""
    aliases: list[str] = msgspec.field(default_factory=list)
    """Public names (aliases) ftctl keeps resolving to this index."""


def history_key(index: str) -> str:
    """The key holding the schema history of ``index``."""
    return f"{HISTORY_KEY_PREFIX}{index}"


class History(msgspec.Struct, frozen=True, kw_only=True):
    """A decoded record: the schema and the public names ftctl keeps for the index."""

    schema: IndexSchema
    aliases: list[str] = msgspec.field(default_factory=list)


def _public(aliases: Sequence[str], index: str) -> list[str]:
    """``aliases`` deduplicated in order, without the index's own name (not an alias)."""
    return [a for a in dict.fromkeys(aliases) if a and a != index]


def encode_history(
    schema: IndexSchema,
    *,
    updated_at: str = "",
    ftctl_version: str = "",
    plan_digest: str = "",
    aliases: Sequence[str] = (),
) -> bytes:
    record = HistoryRecord(
        schema=schema_to_builtins(msgspec.structs.replace(schema, unreported=[])),
        updated_at=updated_at,
        ftctl_version=ftctl_version,
        plan_digest=plan_digest,
        aliases=_public(aliases, schema.name),
    )
    return msgspec.json.encode(record)


def decode_record(reply: object) -> History | None:
    """The schema and aliases in a GET reply; None when absent or unreadable (history is
    advisory: a damaged record is ignored, never fatal)."""
    if isinstance(reply, str):
        reply = reply.encode()
    if not isinstance(reply, bytes):
        return None
    try:
        record = msgspec.json.decode(reply, type=HistoryRecord)
        schema = from_builtins(record.schema, source="schema history")
    except (msgspec.DecodeError, msgspec.ValidationError, UsageError):
        return None
    return History(schema=schema, aliases=_public(record.aliases, schema.name))


def decode_history(reply: object) -> IndexSchema | None:
    """The schema in a GET reply; None when absent or unreadable (history is advisory)."""
    found = decode_record(reply)
    return None if found is None else found.schema


def read_record(index: str) -> Step[History | None]:
    """The recorded schema and aliases of ``index``, or None."""
    reply = single((yield Commands([("GET", history_key(index))])))
    if isinstance(reply, ReplyError):
        return None
    return decode_record(reply)


def read_history(index: str) -> Step[IndexSchema | None]:
    """The recorded schema of ``index``, or None."""
    found = yield from read_record(index)
    return None if found is None else found.schema


def write_history(
    schema: IndexSchema,
    *,
    updated_at: str = "",
    ftctl_version: str = "",
    plan_digest: str = "",
    aliases: Sequence[str] = (),
) -> Step[None]:
    """Record ``schema`` as the one ``schema.name`` was created with (after FT.CREATE), and
    ``aliases`` as the public names ftctl keeps pointing at it."""
    data = encode_history(
        schema,
        updated_at=updated_at,
        ftctl_version=ftctl_version,
        plan_digest=plan_digest,
        aliases=aliases,
    )
    yield Commands([("SET", history_key(schema.name), data)])


def delete_history(index: str) -> Step[None]:
    """Forget the history of ``index`` (after it was dropped or renamed away)."""
    yield Commands([("DEL", history_key(index))])


def record_history(schema: IndexSchema, *, forget: str, aliases: Sequence[str] = ()) -> Step[None]:
    """Remember the schema an index was created with and the public names (``aliases``) now
    pointing at it; an index that no longer exists under ``forget`` loses its record."""
    yield from write_history(schema, aliases=aliases)
    if forget != schema.name:
        yield from delete_history(forget)


__all__ = [
    "HISTORY_KEY_PREFIX",
    "History",
    "HistoryRecord",
    "decode_history",
    "decode_record",
    "delete_history",
    "encode_history",
    "history_key",
    "read_history",
    "read_record",
    "record_history",
    "write_history",
]
