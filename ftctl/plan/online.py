"""Online mode in the plan (pure): may this change run with the source serving, and how?

``auto`` picks online when the change allows it and the memory preflight passes, otherwise
drop_recreate with the reason; ``online`` refuses (blocked reason) instead of falling back.

Strategies:

- ``alter`` — the change only appends fields: ``FT.ALTER <source> SCHEMA ADD`` in place, no
  new index at all;
- ``shadow`` — everything else online covers: a shadow index with the target schema on the
  same prefixes, verified, then swapped in one MULTI/EXEC (``FT.DROPINDEX`` + alias).

Aliases: RediSearch has no command that lists aliases. The plan knows the name the user
planned against (an alias left by an earlier online migration resolves to its real index and
is recorded as ``serving_name``), the aliases ftctl's schema history records for the source,
and the aliases the user names (``--alias``); all of them move at cut-over (and back at a
rollback's cut-back). Any other alias of the source is dropped with it at cut-over. That
limitation is in the plan's warnings.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, TypeAlias

import msgspec

from ftctl.plan.quantization import element_size
from ftctl.schema.model import IndexSchema, VectorField

ModeRequest: TypeAlias = Literal["auto", "online", "drop_recreate"]
Strategy: TypeAlias = Literal["alter", "shadow"]

SHADOW_MARGIN = 1.25
"""FT.INFO sizes under-count allocator overhead; the estimate adds a quarter."""
_MB = 1024 * 1024


class ServerMemory(msgspec.Struct, frozen=True, kw_only=True):
    """``INFO memory`` and RediSearch's background-indexing limit at planning time (bytes)."""

    used_memory: int = 0
    maxmemory: int = 0
    """0: no limit."""
    indexing_limit_percent: float = 0.0
    """``search-indexing-memory-limit`` (percent of maxmemory); 0 when the server has none."""


class MemoryEstimate(msgspec.Struct, frozen=True, kw_only=True):
    """What the shadow index adds while both indexes exist, against what the server allows."""

    shadow_mb: float = 0.0
    used_memory_mb: float = 0.0
    maxmemory_mb: float = 0.0
    """0: no limit."""
    indexing_limit_mb: float = 0.0
    """0: the server has no background-indexing limit."""
    basis: str = ""
    fits: bool = True


class OnlinePlan(msgspec.Struct, frozen=True, kw_only=True):
    """How an online migration runs (the plan's ``online`` section)."""

    strategy: Strategy
    serving_name: str
    """The name queries use: the source index, or the alias the plan was made against."""
    shadow_name: str = ""
    """The index built with the target schema (the target name on an index rename)."""
    aliases: list[str] = msgspec.field(default_factory=list)
    """Other aliases of the source (schema history and ``--alias``), moved with
    FT.ALIASUPDATE at cut-over."""
    keep_old_name: bool = True
    """Index rename: the old name stays as an alias of the new index."""
    postpone_cutover: bool = False
    """Stop when the shadow is verified; ``ftctl migrate cutover`` swaps, ``abort`` drops it."""
    added_fields: list[str] = msgspec.field(default_factory=list)
    """``alter``: the fields FT.ALTER adds."""
    memory: MemoryEstimate = msgspec.field(default_factory=MemoryEstimate)


class OnlineOptions(msgspec.Struct, frozen=True, kw_only=True):
    """What the user asked for besides the mode."""

    aliases: list[str] = msgspec.field(default_factory=list)
    keep_old_name: bool = True
    postpone_cutover: bool = False
    token: str = "0"
    """Suffix of the shadow's temporary name (random per plan)."""


class ModeDecision(msgspec.Struct, frozen=True, kw_only=True):
    mode: Literal["drop_recreate", "online"]
    reason: str
    online: OnlinePlan | None = None
    refusal: str | None = None
    """``--mode online`` that cannot run online: the blocked reason."""


def online_blockers(
    source: IndexSchema,
    target: IndexSchema,
    *,
    field_renames: int,
    prefix_change: bool,
    reencoded: Sequence[str],
) -> list[str]:
    """Why this change cannot run online (empty: it can)."""
    out: list[str] = []
    if field_renames:
        out.append("field renames rewrite every document (a shadow would index the old names)")
    if prefix_change or target.prefixes != source.prefixes:
        out.append("a prefix change renames every key (a shadow on the same prefixes sees none)")
    for name in reencoded:
        out.append(
            f"hash quantization of '{name}' rewrites the vector bytes the source index reads"
        )
    return out


def added_only(source: IndexSchema, target: IndexSchema) -> list[str]:
    """The appended fields when the change is only appending non-vector fields, else []."""
    count = len(source.fields)
    if target.index != source.index or len(target.fields) <= count:
        return []
    if list(target.fields[:count]) != list(source.fields):
        return []
    added = target.fields[count:]
    if any(isinstance(f, VectorField) for f in added):
        return []
    return [f.name for f in added]


def _vector_ratio(source: IndexSchema, target: IndexSchema) -> float:
    ratio = 1.0
    for f in target.vector_fields():
        old = source.field(f.name)
        if isinstance(old, VectorField) and old.attrs.datatype != f.attrs.datatype:
            ratio = max(ratio, element_size(f.attrs.datatype) / element_size(old.attrs.datatype))
    return ratio


def estimate_memory(
    source: IndexSchema,
    target: IndexSchema,
    *,
    total_index_mb: float,
    vector_index_mb: float,
    server: ServerMemory,
    strategy: Strategy,
) -> MemoryEstimate:
    """The shadow's size from the source's FT.INFO sizes, and whether the server has room."""
    if strategy == "alter":
        shadow, basis = 0.0, "FT.ALTER adds fields in place: no second index"
    else:
        vector = max(vector_index_mb, 0.0)
        rest = max(total_index_mb - vector, 0.0)
        ratio = _vector_ratio(source, target)
        shadow = round((rest + vector * ratio) * SHADOW_MARGIN, 3)
        basis = (
            f"FT.INFO total_index_memory_sz_mb {total_index_mb:g} (vector part "
            f"{vector:g} * {ratio:g} for datatype changes) + {SHADOW_MARGIN - 1:.0%} margin"
        )
    used = server.used_memory / _MB
    maxmemory = server.maxmemory / _MB
    indexing = maxmemory * server.indexing_limit_percent / 100 if maxmemory else 0.0
    limits = [x for x in (maxmemory, indexing) if x > 0]
    fits = not limits or used + shadow <= min(limits)
    return MemoryEstimate(
        shadow_mb=shadow,
        used_memory_mb=round(used, 3),
        maxmemory_mb=round(maxmemory, 3),
        indexing_limit_mb=round(indexing, 3),
        basis=basis,
        fits=fits,
    )


def choose_mode(
    requested: ModeRequest,
    *,
    source: IndexSchema,
    target: IndexSchema,
    serving_name: str,
    blockers: Sequence[str],
    total_index_mb: float,
    vector_index_mb: float,
    server: ServerMemory,
    options: OnlineOptions,
) -> ModeDecision:
    """The plan's mode and why (pure)."""
    if requested == "drop_recreate":
        return ModeDecision(mode="drop_recreate", reason="requested with --mode drop_recreate")
    added = added_only(source, target)
    strategy: Strategy = "alter" if added else "shadow"
    memory = estimate_memory(
        source,
        target,
        total_index_mb=total_index_mb,
        vector_index_mb=vector_index_mb,
        server=server,
        strategy=strategy,
    )
    problems = list(blockers)
    if not memory.fits:
        limit = min(x for x in (memory.maxmemory_mb, memory.indexing_limit_mb) if x > 0)
        problems.append(
            f"the shadow index needs ~{memory.shadow_mb:g} MB while both indexes exist: "
            f"used_memory {memory.used_memory_mb:g} MB + {memory.shadow_mb:g} MB exceeds "
            f"the limit of {limit:g} MB (maxmemory / background-indexing limit)"
        )
    if problems:
        why = "; ".join(problems)
        if requested == "online":
            return ModeDecision(
                mode="online",
                reason="requested with --mode online",
                refusal=f"online mode is not possible: {why}; workaround: --mode drop_recreate",
            )
        return ModeDecision(mode="drop_recreate", reason=f"online mode is not possible: {why}")
    renamed = target.name != source.name
    shadow_name = target.name if renamed else f"{serving_name}__ftctl_{options.token}"
    online = OnlinePlan(
        strategy=strategy,
        serving_name=serving_name,
        shadow_name="" if strategy == "alter" else shadow_name,
        aliases=[a for a in options.aliases if a not in (serving_name, target.name)],
        keep_old_name=options.keep_old_name,
        postpone_cutover=options.postpone_cutover,
        added_fields=added,
        memory=memory,
    )
    how = (
        f"only adds fields ({', '.join(added)}): FT.ALTER SCHEMA ADD in place"
        if strategy == "alter"
        else f"index-only change: shadow index '{shadow_name}' is built while "
        f"'{serving_name}' serves, then swapped in one MULTI/EXEC"
    )
    return ModeDecision(mode="online", reason=f"{requested}: {how}", online=online)


__all__ = [
    "MemoryEstimate",
    "ModeDecision",
    "ModeRequest",
    "OnlineOptions",
    "OnlinePlan",
    "ServerMemory",
    "added_only",
    "choose_mode",
    "estimate_memory",
    "online_blockers",
]
