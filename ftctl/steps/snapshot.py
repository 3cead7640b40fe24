"""Read what planning needs from the live server (read-only, except a throwaway index).

Two rounds, both sans-IO steps:

1. :func:`read_source` — FT.INFO of the index (an alias resolves to its index), FT._LIST and
   FT.INFO of every other index (shared-keys check), ftctl's schema history and where each
   alias it records resolves now, a key sample.
2. :func:`read_target` — what the target schema makes relevant (a
   :class:`~ftctl.plan.live.SnapshotRequest`): whether a rename destination name exists,
   keys already under a new prefix (counted with a prefix-scoped SCAN), sampled documents
   that already hold a rename destination field, sampled stored vectors of re-encoded
   fields, and the server's verdict on the target schema from a throwaway ``FT.CREATE`` on a
   prefix no key matches, dropped again at once (:func:`validate_schema`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import msgspec
import numpy as np

from ftctl.errors import RedisCommandError, RefusedError, UsageError
from ftctl.plan.codecs import CodecError, decode
from ftctl.plan.live import LiveSnapshot, SnapshotRequest, VectorSample
from ftctl.plan.online import ServerMemory
from ftctl.schema.ftinfo import IndexInfo, parse_ft_info
from ftctl.schema.model import IndexSchema, VectorField
from ftctl.steps.effects import Command, Commands, ReplyError, Step
from ftctl.steps.enumerate import count_keys, glob_escape
from ftctl.steps.history import history_key, read_record
from ftctl.steps.index_ops import throwaway_create
from ftctl.steps.replies import search_ids
from ftctl.steps.spec import named
from ftctl.text import is_utf8, printable

KEY_SAMPLE_SIZE = 5
VECTOR_SAMPLE_SIZE = 256
COLLISION_SAMPLE_SIZE = 100
VALIDATION_INDEX_PREFIX = "__ftctl_validate_"


def _text(value: object) -> str:
    return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else str(value)


def _is_unknown_index(error: ReplyError) -> bool:
    text = error.message.lower()
    return "unknown index" in text or "no such index" in text or "not found" in text


def shown_key(key: bytes) -> str:
    """A key as text for a plan or a message: UTF-8 where it is, escapes elsewhere (``\\xff``,
    ``\\x00``, control characters), so any bytes read back unambiguously and print safely
    (:func:`ftctl.text.printable`, which index names get too)."""
    return printable(key)


def _not_utf8(requested: str, info: IndexInfo) -> list[str]:
    """What of the source cannot be written into a plan (YAML text): names read back from
    bytes that are not UTF-8."""
    schema = info.schema
    names = [("name", info.index_name)]
    if requested != info.index_name:
        names.append((f"alias {printable(requested)}", requested))
    names += [(f"prefix {printable(p)}", p) for p in schema.prefixes]
    for f in schema.fields:
        names += [
            (f"field {printable(f.name)}", f.name),
            (f"field path {printable(f.path or '')}", f.path or ""),
        ]
    return list(dict.fromkeys(what for what, name in names if not is_utf8(name)))


def _sample_keys(index: str, count: int) -> Command:
    return ("FT.SEARCH", index, "*", "NOCONTENT", "LIMIT", "0", str(count), "DIALECT", "2")


def read_source(
    index: str, *, key_sample_size: int = KEY_SAMPLE_SIZE, redis_url: str = ""
) -> Step[LiveSnapshot]:
    """Round 1: the source index, the other indexes, history, a key sample.

    An unknown index is a :class:`UsageError` (nothing was changed).
    """
    info_reply, list_reply = yield Commands([("FT.INFO", index), ("FT._LIST",)])
    if isinstance(info_reply, ReplyError):
        if _is_unknown_index(info_reply):
            raise UsageError(
                f"index '{printable(index)}' does not exist",
                "run 'ftctl index listall' to see the indexes",
            )
        raise RedisCommandError("FT.INFO", info_reply.message)
    source = parse_ft_info(info_reply)
    unwritable = _not_utf8(index, source)
    if unwritable:
        are = "is" if len(unwritable) == 1 else "are"
        raise UsageError(
            f"index '{printable(source.index_name)}' cannot be planned: its "
            f"{', '.join(unwritable)} {are} not UTF-8, and a plan (YAML) holds text",
            "create a copy of the index under UTF-8 names and migrate that one",
        )
    names = (
        sorted(_text(n) for n in list_reply)
        if isinstance(list_reply, list | set | tuple)
        else [source.index_name]
    )
    others = [n for n in names if n != source.index_name]
    commands: list[Command] = [("FT.INFO", n) for n in others]
    commands.append(_sample_keys(source.index_name, key_sample_size))
    replies = yield Commands(commands)
    other_schemas: list[IndexSchema] = []
    for name, reply in zip(others, replies, strict=False):
        if isinstance(reply, ReplyError) and "no permissions" in reply.message.lower():
            # Skipping it would skip the check that no other index reads the same keys.
            raise RefusedError(
                f"cannot read index '{printable(name)}' (FT.INFO: {reply.message}): planning "
                "checks every index for keys it shares with the source",
                "plan as a user who may run FT.INFO on every index",
            )
        if isinstance(reply, ReplyError):
            continue  # dropped between FT._LIST and FT.INFO
        schema = parse_ft_info(reply).schema
        # Other indexes appear in the plan only in reasons and warnings, where a name that
        # is not UTF-8 would break the plan's YAML: those go by their printable form.
        other_schemas.append(schema if is_utf8(name) else named(schema, printable(name)))
    sample_reply = replies[-1]
    key_sample = (
        []
        if isinstance(sample_reply, ReplyError)
        else [shown_key(k) for k in search_ids(sample_reply)]
    )
    history = yield from read_record(source.index_name)
    recorded = [] if history is None else history.aliases
    targets = yield from read_aliases(recorded)
    return LiveSnapshot(
        requested_name=index,
        source=source,
        index_names=names,
        other_indexes=other_schemas,
        key_sample=key_sample[:key_sample_size],
        history=None if history is None else history.schema,
        history_aliases=list(recorded),
        alias_targets=targets,
        redis_url=redis_url,
    )


def validate_schema(schema: IndexSchema, token: str | None = None) -> Step[str | None]:
    """Does the server accept ``schema``? A throwaway FT.CREATE on an unmatched prefix.

    Returns None when accepted, else the server's error. The throwaway index is dropped in
    the same pipeline (without DD; it holds no documents), so nothing remains either way.
    """
    created, _dropped = yield Commands(
        throwaway_create(schema, token, prefix=VALIDATION_INDEX_PREFIX)
    )
    if isinstance(created, ReplyError):
        return created.message
    return None


def _json_vector(reply: object) -> list[float] | None:
    if reply is None or isinstance(reply, ReplyError):
        return None
    try:
        value = json.loads(_text(reply))
    except ValueError:
        return None
    if isinstance(value, list) and value and isinstance(value[0], list):
        value = value[0]  # JSONPath queries return a list of matches
    if isinstance(value, list) and all(isinstance(x, int | float) for x in value):
        return [float(x) for x in value]
    return None


def _json_path(path: str) -> str:
    return path if path.startswith("$") else f"$.{path}"


def read_vectors(
    schema: IndexSchema, field: VectorField, path: str, keys: list[bytes]
) -> Step[VectorSample]:
    """Stored vectors of ``field`` in ``keys`` (documents without a valid vector skipped)."""
    rows: list[np.ndarray] = []
    dims = field.attrs.dims
    if schema.storage_type == "json":
        replies = yield Commands([("JSON.GET", k, _json_path(path)) for k in keys])
        for reply in replies:
            vector = _json_vector(reply)
            if vector is not None and len(vector) == dims:
                rows.append(np.asarray(vector, dtype=np.float64))
    else:
        replies = yield Commands([("HGET", k, path) for k in keys])
        for reply in replies:
            if not isinstance(reply, bytes):
                continue
            try:
                rows.append(decode(reply, field.attrs.datatype, dims)[0].astype(np.float64))
            except CodecError:
                continue
    values = np.vstack(rows) if rows else np.zeros((0, dims))
    return VectorSample.of(field.name, field.attrs.datatype, dims, values)


def _holds(schema: IndexSchema, reply: object) -> bool:
    if isinstance(reply, ReplyError) or reply is None:
        return False
    if schema.storage_type == "json":
        # JSON.TYPE on a JSONPath: RESP2 answers [] / [b"integer"], RESP3 wraps that once more
        # ([[]] / [[b"integer"]]), so a missing path is an empty list either way.
        if isinstance(reply, list) and len(reply) == 1 and isinstance(reply[0], list):
            reply = reply[0]
        return isinstance(reply, list) and len(reply) > 0 and reply[0] is not None
    return bool(reply)


def read_target(
    snapshot: LiveSnapshot,
    request: SnapshotRequest,
    target: IndexSchema,
    *,
    source: IndexSchema | None = None,
    vector_sample_size: int = VECTOR_SAMPLE_SIZE,
    collision_sample_size: int = COLLISION_SAMPLE_SIZE,
    token: str | None = None,
) -> Step[LiveSnapshot]:
    """Round 2: rename destinations, new-prefix key counts, samples, target validation."""
    schema = source or snapshot.source.schema
    taken: list[str] = []
    if request.names:
        replies = yield Commands([("FT.INFO", n) for n in request.names])
        for name, reply in zip(request.names, replies, strict=True):
            if not (isinstance(reply, ReplyError) and _is_unknown_index(reply)):
                taken.append(name)
    counts: dict[str, int] = {}
    for prefix in request.prefixes:
        counts[prefix] = yield from count_keys(prefix)
    keys: list[bytes] = []
    wanted = max(
        vector_sample_size if request.vector_fields else 0,
        collision_sample_size if request.field_paths else 0,
    )
    if wanted:
        (reply,) = yield Commands([_sample_keys(snapshot.source.index_name, wanted)])
        keys = [] if isinstance(reply, ReplyError) else search_ids(reply)
    collisions: dict[str, list[str]] = {}
    collision_keys = keys[:collision_sample_size]
    for new_name, path in request.field_paths.items() if collision_keys else ():
        if schema.storage_type == "json":
            commands: list[Command] = [("JSON.TYPE", k, _json_path(path)) for k in collision_keys]
        else:
            commands = [("HEXISTS", k, path) for k in collision_keys]
        replies = yield Commands(commands)
        hits = [
            shown_key(k) for k, r in zip(collision_keys, replies, strict=True) if _holds(schema, r)
        ]
        if hits:
            collisions[new_name] = hits
    samples: dict[str, VectorSample] = {}
    for name, path in request.vector_fields.items():
        f = schema.field(name)
        if isinstance(f, VectorField):
            samples[name] = yield from read_vectors(schema, f, path, keys[:vector_sample_size])
    rejection = yield from validate_schema(target, token)
    return msgspec.structs.replace(
        snapshot,
        taken_names=taken,
        prefix_key_counts=counts,
        field_collisions=collisions,
        collision_sample_size=len(collision_keys),
        vector_samples=samples,
        target_rejection=rejection,
        target_validated=True,
    )


INDEXING_MEMORY_LIMIT = "search-indexing-memory-limit"
"""RediSearch's background-indexing memory limit (percent of maxmemory), where the server has it."""


def _info_fields(reply: object) -> dict[str, str]:
    if isinstance(reply, Mapping):
        return {_text(k): _text(v) for k, v in reply.items()}
    out: dict[str, str] = {}
    for line in _text(reply).splitlines():
        key, sep, value = line.partition(":")
        if sep and not key.startswith("#"):
            out[key.strip()] = value.strip()
    return out


def _config_value(reply: object, name: str) -> str | None:
    if isinstance(reply, Mapping):
        found = {_text(k): v for k, v in reply.items()}.get(name)
        return None if found is None else _text(found)
    if isinstance(reply, list):
        pairs = dict(zip(reply[::2], reply[1::2], strict=False))
        found = {_text(k): v for k, v in pairs.items()}.get(name)
        return None if found is None else _text(found)
    return None


def read_memory() -> Step[ServerMemory]:
    """``INFO memory`` and the background-indexing limit (absent on older servers: 0)."""
    info, config = yield Commands([("INFO", "memory"), ("CONFIG", "GET", INDEXING_MEMORY_LIMIT)])
    fields = {} if isinstance(info, ReplyError) else _info_fields(info)
    limit = None if isinstance(config, ReplyError) else _config_value(config, INDEXING_MEMORY_LIMIT)
    try:
        percent = float(limit) if limit else 0.0
    except ValueError:
        percent = 0.0
    return ServerMemory(
        used_memory=int(fields.get("used_memory", "0") or 0),
        maxmemory=int(fields.get("maxmemory", "0") or 0),
        indexing_limit_percent=percent,
        maxmemory_policy=fields.get("maxmemory_policy", ""),
    )


def read_aliases(names: list[str]) -> Step[dict[str, str]]:
    """Each name → the real index FT.INFO resolves it to ("" when no such index or alias)."""
    if not names:
        return {}
    replies = yield Commands([("FT.INFO", n) for n in names])
    out: dict[str, str] = {}
    for name, reply in zip(names, replies, strict=True):
        out[name] = "" if isinstance(reply, ReplyError) else parse_ft_info(reply).index_name
    return out


__all__ = [
    "INDEXING_MEMORY_LIMIT",
    "KEY_SAMPLE_SIZE",
    "VALIDATION_INDEX_PREFIX",
    "count_keys",
    "glob_escape",
    "history_key",
    "read_aliases",
    "read_memory",
    "read_source",
    "read_target",
    "read_vectors",
    "shown_key",
    "validate_schema",
]
