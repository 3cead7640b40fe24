"""ftctl's schema history: the full schema it last created an index with, kept in Redis.

FT.INFO does not report every option (PHONETIC, EF_RUNTIME, INITIAL_CAP, SKIPINITIALSCAN,
the key separator, …), so recreating an index from FT.INFO alone would reset them. When
ftctl creates or migrates an index it stores the schema it used under the key
``ftctl:schema:<index name>``, a **string** holding JSON::

    {"schema": <RedisVL schema as in a schema YAML>, "updated_at": "<UTC ISO>",
     "ftctl_version": "0.1.0", "plan_digest": "<sha256 or empty>"}

It is a string rather than a hash on purpose: an index with the empty prefix indexes every
hash in the database, and a hash here would become one of its documents. The planner uses
the record only while it agrees with FT.INFO on everything FT.INFO reports.
"""

from __future__ import annotations

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


def history_key(index: str) -> str:
    """The key holding the schema history of ``index``."""
    return f"{HISTORY_KEY_PREFIX}{index}"


def encode_history(
    schema: IndexSchema, *, updated_at: str = "", ftctl_version: str = "", plan_digest: str = ""
) -> bytes:
    record = HistoryRecord(
        schema=schema_to_builtins(msgspec.structs.replace(schema, unreported=[])),
        updated_at=updated_at,
        ftctl_version=ftctl_version,
        plan_digest=plan_digest,
    )
    return msgspec.json.encode(record)


def decode_history(reply: object) -> IndexSchema | None:
    """The schema in a GET reply; None when absent or unreadable (history is advisory)."""
    if isinstance(reply, str):
        reply = reply.encode()
    if not isinstance(reply, bytes):
        return None
    try:
        record = msgspec.json.decode(reply, type=HistoryRecord)
        return from_builtins(record.schema, source="schema history")
    except (msgspec.DecodeError, msgspec.ValidationError, UsageError):
        # A damaged record is ignored: history is advisory, never fatal.
        return None


def read_history(index: str) -> Step[IndexSchema | None]:
    """The recorded schema of ``index``, or None."""
    reply = single((yield Commands([("GET", history_key(index))])))
    if isinstance(reply, ReplyError):
        return None
    return decode_history(reply)


def write_history(
    schema: IndexSchema, *, updated_at: str = "", ftctl_version: str = "", plan_digest: str = ""
) -> Step[None]:
    """Record ``schema`` as the one ``schema.name`` was created with (after FT.CREATE)."""
    data = encode_history(
        schema, updated_at=updated_at, ftctl_version=ftctl_version, plan_digest=plan_digest
    )
    yield Commands([("SET", history_key(schema.name), data)])


def delete_history(index: str) -> Step[None]:
    """Forget the history of ``index`` (after it was dropped or renamed away)."""
    yield Commands([("DEL", history_key(index))])


def record_history(schema: IndexSchema, *, forget: str) -> Step[None]:
    """Remember the schema an index was created with; an index that no longer exists under
    ``forget`` loses its record."""
    yield from write_history(schema)
    if forget != schema.name:
        yield from delete_history(forget)


__all__ = [
    "HISTORY_KEY_PREFIX",
    "HistoryRecord",
    "decode_history",
    "delete_history",
    "encode_history",
    "history_key",
    "read_history",
    "record_history",
    "write_history",
]
