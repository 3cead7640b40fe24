"""Online mode in the plan (pure): may this change run with the source serving, and how?

``auto`` picks online when the change allows it and the memory preflight passes, otherwise
drop_recreate with the reason; ``online`` refuses (blocked reason) instead of falling back.

Strategies:

- ``alter`` — the change only appends fields: ``FT.ALTER <source> SCHEMA ADD`` in place, no
  new index at all;
- ``shadow`` — changes that rewrite no stored byte: a shadow index with the target schema
  on the same prefixes, verified, then swapped in one MULTI/EXEC (``FT.DROPINDEX`` + alias);
- ``expand`` — changes that rewrite stored bytes (a HASH vector's datatype, field renames, a
  prefix change): the new layout is written beside the old one while the source serves,
  indexed by a shadow, swapped in, and the old layout removed (see
  :mod:`ftctl.steps.expand`). A datatype change waits at the operator gate by default: the
  query blob format changes with it.

Aliases: RediSearch has no command that lists aliases. The plan knows the name the user
planned against (an alias left by an earlier online migration resolves to its real index and
is recorded as ``serving_name``), the aliases ftctl's schema history records for the source,
and the aliases the user names (``--alias``); all of them move at cut-over (and back at a
rollback's cut-back). Any other alias of the source is dropped with it at cut-over. That
limitation is in the plan's warnings.
"""

from __future__ import annotations

from typing import Literal, TypeAlias

import msgspec

from ftctl.plan.quantization import element_size
from ftctl.schema.model import IndexSchema, VectorField

ModeRequest: TypeAlias = Literal["auto", "online", "drop_recreate"]
Strategy: TypeAlias = Literal["alter", "shadow", "expand"]

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
    maxmemory_policy: str = ""
    """``INFO memory``'s ``maxmemory_policy`` ("" when not read)."""


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
    temp_fields: dict[str, str] = msgspec.field(default_factory=dict)
    """``expand``: a hash vector converted in place → the field its new bytes live in until
    the contract (the first shadow index reads it)."""
    final_name: str = ""
    """``expand`` with temporary fields: the index built on the final layout at the contract."""
    index_builds: int = 1
    """Indexes the server builds besides the source (the extra server work, in builds)."""


class OnlineOptions(msgspec.Struct, frozen=True, kw_only=True):
    """What the user asked for besides the mode."""

    aliases: list[str] = msgspec.field(default_factory=list)
    keep_old_name: bool = True
    postpone_cutover: bool | None = None
    """None: the default of the change (postponed when it changes the query format)."""
    token: str = "0"
    """Suffix of the shadow's temporary name (random per plan)."""


class ModeDecision(msgspec.Struct, frozen=True, kw_only=True):
    mode: Literal["drop_recreate", "online"]
    reason: str
    online: OnlinePlan | None = None
    refusal: str | None = None
    """``--mode online`` that cannot run online: the blocked reason."""


class Rewrites(msgspec.Struct, frozen=True, kw_only=True):
    """What a change rewrites in the documents (empty: it is index-only)."""

    field_renames: list[str] = msgspec.field(default_factory=list)
    prefix_change: bool = False
    converted_in_place: list[str] = msgspec.field(default_factory=list)
    """Hash vector fields whose datatype changes under the same name and key."""
    converted: list[str] = msgspec.field(default_factory=list)
    """Every hash vector field whose stored bytes change."""
    blockers: list[str] = msgspec.field(default_factory=list)
    """Why even the expand strategy cannot run this change online."""

    @property
    def any(self) -> bool:
        return bool(self.field_renames or self.prefix_change or self.converted)


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
    extra_data_mb: float = 0.0,
    builds: int = 1,
) -> MemoryEstimate:
    """The shadow's size from the source's FT.INFO sizes, and whether the server has room.

    ``extra_data_mb``: document bytes written beside the old ones (expand); ``builds``: new
    indexes alive at once at the peak.
    """
    if strategy == "alter":
        shadow, basis = 0.0, "FT.ALTER adds fields in place: no second index"
    else:
        vector = max(vector_index_mb, 0.0)
        rest = max(total_index_mb - vector, 0.0)
        ratio = _vector_ratio(source, target)
        shadow = round((rest + vector * ratio) * SHADOW_MARGIN * max(builds, 1), 3)
        shadow = round(shadow + extra_data_mb, 3)
        basis = (
            f"FT.INFO total_index_memory_sz_mb {total_index_mb:g} (vector part "
            f"{vector:g} * {ratio:g} for datatype changes) + {SHADOW_MARGIN - 1:.0%} margin"
        )
        if builds > 1:
            basis += f", {builds} new indexes at the peak"
        if extra_data_mb:
            basis += f", + {extra_data_mb:g} MB of documents written beside the old layout"
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
    rewrites: Rewrites,
    total_index_mb: float,
    vector_index_mb: float,
    server: ServerMemory,
    options: OnlineOptions,
    num_docs: int = 0,
) -> ModeDecision:
    """The plan's mode and why (pure)."""
    if requested == "drop_recreate":
        return ModeDecision(mode="drop_recreate", reason="requested with --mode drop_recreate")
    added = added_only(source, target)
    strategy: Strategy = "expand" if rewrites.any else "alter" if added else "shadow"
    memory = estimate_memory(
        source,
        target,
        total_index_mb=total_index_mb,
        vector_index_mb=vector_index_mb,
        server=server,
        strategy=strategy,
        extra_data_mb=_copied_mb(target, rewrites, num_docs, server, total_index_mb),
        builds=2 if rewrites.converted_in_place else 1,
    )
    problems = list(rewrites.blockers) if strategy == "expand" else []
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
    temps = {name: f"{name}__ftctl_{options.token}" for name in rewrites.converted_in_place}
    postpone = options.postpone_cutover
    if postpone is None:
        # A datatype change changes the query blob format: clients switch at the gate.
        postpone = strategy == "expand" and bool(rewrites.converted)
    online = OnlinePlan(
        strategy=strategy,
        serving_name=serving_name,
        shadow_name="" if strategy == "alter" else shadow_name,
        aliases=[a for a in options.aliases if a not in (serving_name, target.name)],
        keep_old_name=options.keep_old_name,
        postpone_cutover=postpone,
        added_fields=added,
        memory=memory,
        temp_fields=temps if strategy == "expand" else {},
        final_name=f"{serving_name}__ftctl_{options.token}f"
        if strategy == "expand" and temps
        else "",
        index_builds=0 if strategy == "alter" else (2 if temps else 1),
    )
    if strategy == "alter":
        how = f"only adds fields ({', '.join(added)}): FT.ALTER SCHEMA ADD in place"
    elif strategy == "shadow":
        how = (
            f"index-only change: shadow index '{shadow_name}' is built while "
            f"'{serving_name}' serves, then swapped in one MULTI/EXEC"
        )
    else:
        what = ", ".join(
            [*(f"rename {r}" for r in rewrites.field_renames)]
            + (["prefix change"] if rewrites.prefix_change else [])
            + [f"convert {c}" for c in rewrites.converted]
        )
        how = (
            f"rewrites documents ({what}): the new layout is written beside the old while "
            f"'{serving_name}' serves, indexed by '{shadow_name}', swapped in, then the old "
            f"layout removed ({online.index_builds} index build"
            f"{'s' if online.index_builds > 1 else ''})"
        )
    return ModeDecision(mode="online", reason=f"{requested}: {how}", online=online)


def _copied_mb(
    target: IndexSchema,
    rewrites: Rewrites,
    num_docs: int,
    server: ServerMemory,
    total_index_mb: float,
) -> float:
    """Document bytes the expand strategy adds while both layouts exist (an estimate)."""
    if rewrites.prefix_change:
        # Every document is copied: at most what the data (not the indexes) takes now.
        return max(server.used_memory / _MB - total_index_mb, 0.0)
    out = 0.0
    for name in rewrites.converted:
        f = target.field(name)
        if isinstance(f, VectorField):
            out += num_docs * f.attrs.dims * element_size(f.attrs.datatype) / _MB
    return round(out * SHADOW_MARGIN, 3)


__all__ = [
    "MemoryEstimate",
    "ModeDecision",
    "ModeRequest",
    "OnlineOptions",
    "OnlinePlan",
    "Rewrites",
    "ServerMemory",
    "added_only",
    "choose_mode",
    "estimate_memory",
]
