"""Capability probe: try a throwaway FT.CREATE per feature on a prefix no key can match."""

from __future__ import annotations

import secrets
from collections.abc import Sequence

from ftctl.errors import RefusedError
from ftctl.schema.capabilities import Capabilities
from ftctl.steps.effects import Command, Commands, ReplyError, Step

VECTOR_TYPES = ("FLOAT32", "FLOAT64", "FLOAT16", "BFLOAT16", "INT8", "UINT8")
ALGORITHMS = ("FLAT", "HNSW", "SVS-VAMANA")
FIELD_TYPES = ("TEXT", "TAG", "NUMERIC", "GEO", "GEOSHAPE")
FIELD_OPTIONS: dict[str, tuple[str, ...]] = {
    "INDEXMISSING": ("TAG", "INDEXMISSING"),
    "INDEXEMPTY": ("TAG", "INDEXEMPTY"),
    "WITHSUFFIXTRIE": ("TEXT", "WITHSUFFIXTRIE"),
}

PROBE_INDEX_PREFIX = "__ftctl_probe_"


def _vector(algorithm: str, datatype: str) -> tuple[str, ...]:
    return (
        "VECTOR", algorithm, "6", "TYPE", datatype, "DIM", "4", "DISTANCE_METRIC", "L2",
    )  # fmt: skip


def probe_candidates() -> dict[str, tuple[str, ...]]:
    """Feature name → the field definition a throwaway index tries."""
    out: dict[str, tuple[str, ...]] = {}
    for datatype in VECTOR_TYPES:
        out[f"type:{datatype}"] = _vector("FLAT", datatype)
    for algorithm in ALGORITHMS:
        out[f"algo:{algorithm}"] = _vector(algorithm, "FLOAT32")
    for field_type in FIELD_TYPES:
        out[f"field:{field_type}"] = (field_type,)
    for option, definition in FIELD_OPTIONS.items():
        out[f"option:{option}"] = definition
    return out


def _module_versions(reply: object) -> dict[str, int]:
    versions: dict[str, int] = {}
    entries: Sequence[object] = reply if isinstance(reply, list) else []
    for entry in entries:
        if isinstance(entry, dict):
            pairs = {_s(k): v for k, v in entry.items()}
        elif isinstance(entry, list):
            pairs = {_s(k): v for k, v in zip(entry[::2], entry[1::2], strict=False)}
        else:
            continue
        version = pairs.get("ver")
        versions[_s(pairs.get("name", b""))] = version if isinstance(version, int) else 0
    return versions


def _out_of_memory(message: str) -> bool:
    lowered = message.lower()
    return lowered.startswith("oom") or "maxmemory" in lowered


def _s(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def probe_capabilities(token: str | None = None) -> Step[Capabilities]:
    """Probe the server: one pipeline of create+drop pairs, each on its own unmatched prefix."""
    token = token or secrets.token_hex(6)
    candidates = probe_candidates()
    (modules,) = yield Commands([("MODULE", "LIST")])
    versions = _module_versions(modules)
    search_version = versions.get("search", 0) or versions.get("ft", 0)
    json_present = "ReJSON" in versions or "json" in {k.lower() for k in versions}
    if not search_version:
        return Capabilities(search_version=0, json=json_present)
    commands: list[Command] = []
    names: list[str] = []
    for number, definition in enumerate(candidates.values()):
        name = f"{PROBE_INDEX_PREFIX}{token}_{number}"
        names.append(name)
        prefix = f"{PROBE_INDEX_PREFIX}{token}_{number}:"
        commands.append(("FT.CREATE", name, "ON", "HASH", "PREFIX", "1", prefix,
                         "SCHEMA", "f", *definition))  # fmt: skip
        commands.append(("FT.DROPINDEX", name))
    replies = yield Commands(commands)
    for reply in replies[::2]:
        if isinstance(reply, ReplyError) and "no permissions" in reply.message.lower():
            # Not a missing feature either: the user may not create the probe's indexes.
            raise RefusedError(
                f"the capability probe's throwaway FT.CREATE was refused: {reply.message}",
                f"grant FT.CREATE and FT.DROPINDEX on index names {PROBE_INDEX_PREFIX}*",
            )
        if isinstance(reply, ReplyError) and _out_of_memory(reply.message):
            # Not a missing feature: the server refuses every write until memory is freed.
            raise RefusedError(
                f"the server refuses new indexes: {reply.message}",
                "free memory or raise maxmemory, then plan again",
            )
    accepted = {
        feature
        for feature, reply in zip(candidates, replies[::2], strict=True)
        if not isinstance(reply, ReplyError)
    }

    def having(kind: str) -> tuple[str, ...]:
        return tuple(f.split(":", 1)[1] for f in candidates if f.startswith(kind) and f in accepted)

    return Capabilities(
        search_version=search_version,
        json=json_present,
        vector_types=having("type:"),
        algorithms=having("algo:"),
        field_types=having("field:"),
        field_options=having("option:"),
    )
