"""Small readers for raw replies (RESP2 lists or RESP3 maps), shared by the steps."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ftctl.errors import MigrationFailed
from ftctl.steps.effects import ReplyError


def text(value: object) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def as_map(reply: object) -> dict[str, Any]:
    """A RESP3 map or a RESP2 flat key/value list as a dict with str keys."""
    if isinstance(reply, dict):
        return {text(k): v for k, v in reply.items()}
    if isinstance(reply, list):
        return {text(k): v for k, v in zip(reply[::2], reply[1::2], strict=False)}
    return {}


def ok(reply: object, what: str) -> object:
    """The reply, or MigrationFailed naming ``what`` when Redis answered with an error."""
    if isinstance(reply, ReplyError):
        raise MigrationFailed(f"{what} failed: {reply.message}")
    return reply


def field_present(reply: object) -> bool:
    """Whether an HEXISTS or JSON.TYPE reply says the field (or JSON path) is there.

    JSON.TYPE on a JSONPath answers ``[type]`` in RESP2 and ``[[type]]`` in RESP3, an empty
    list (``[[]]`` in RESP3) where the path matches nothing; on a legacy path, the type or
    nil. HEXISTS answers 1 or 0.
    """
    if isinstance(reply, ReplyError) or reply is None:
        return False
    if isinstance(reply, int):
        return reply == 1
    if isinstance(reply, list):
        return any(
            field_present(item) if isinstance(item, list) else item is not None for item in reply
        )
    return True


def script_statuses(replies: Sequence[object], what: str) -> list[int]:
    """The per-key statuses of one or more batch-script replies, in key order."""
    out: list[int] = []
    for reply in replies:
        statuses = ok(reply, what)
        if not isinstance(statuses, list):
            raise MigrationFailed(f"{what}: script returned {statuses!r:.100}")
        out += [int(s) for s in statuses]
    return out


def is_unknown_index(reply: object) -> bool:
    if not isinstance(reply, ReplyError):
        return False
    message = reply.message.lower()
    return "unknown index" in message or "no such index" in message or "not found" in message


def aggregate_keys(reply: object) -> tuple[list[bytes], int, int]:
    """Keys (``@__key``), the cursor id, and how many rows came without a key, of one
    FT.AGGREGATE/FT.CURSOR READ page.

    The server answers an empty row for a key it cannot load (a key holding a NUL byte):
    such rows are counted, never silently dropped.
    """
    if not isinstance(reply, list) or len(reply) != 2:
        raise MigrationFailed(f"unexpected FT.AGGREGATE reply: {reply!r:.200}")
    page, cursor = reply
    keys: list[bytes] = []
    rows_seen = 0
    if isinstance(page, dict):
        for row in page.get(b"results", ()):
            rows_seen += 1
            # RESP3 rows: {extra_attributes: {__key: key}, values: []}; read them directly,
            # this loop runs once per document.
            attributes = row.get(b"extra_attributes") if isinstance(row, dict) else None
            key = attributes.get(b"__key") if isinstance(attributes, dict) else None
            if isinstance(key, bytes):
                keys.append(key)
        return keys, int(cursor), rows_seen - len(keys)
    if isinstance(page, list):
        rows = page[1:]
        try:
            # RESP2 rows are [b"__key", key]: one comprehension, checked once afterwards.
            keys = [row[1] for row in rows]
        except (TypeError, IndexError, KeyError):
            keys = []
        if len(keys) != len(rows) or not set(map(type, keys)) <= {bytes}:
            keys = [
                row[1]
                for row in rows
                if isinstance(row, list) and len(row) == 2 and isinstance(row[1], bytes)
            ]
        return keys, int(cursor), len(rows) - len(keys)
    return keys, int(cursor), 0


def search_ids(reply: object) -> list[bytes]:
    """The document ids of an FT.SEARCH reply (NOCONTENT or not), binary-safe."""
    return [doc_id for doc_id, _ in search_hits(reply)]


def search_hits(reply: object) -> list[tuple[bytes, dict[str, Any]]]:
    """(id, returned fields) of each FT.SEARCH hit, RESP2 or RESP3."""
    hits: list[tuple[bytes, dict[str, Any]]] = []
    if isinstance(reply, dict):
        for row in as_map(reply).get("results", []):
            row_map = as_map(row)
            doc_id = row_map.get("id")
            if isinstance(doc_id, bytes):
                hits.append((doc_id, as_map(row_map.get("extra_attributes", {}))))
    elif isinstance(reply, list) and reply:
        rest = reply[1:]
        with_fields = len(rest) >= 2 and isinstance(rest[1], list)
        step = 2 if with_fields else 1
        for i in range(0, len(rest), step):
            doc_id = rest[i]
            fields = as_map(rest[i + 1]) if with_fields else {}
            if isinstance(doc_id, bytes):
                hits.append((doc_id, fields))
    return hits
