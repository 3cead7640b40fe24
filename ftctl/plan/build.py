"""Planning as a pure function: (live snapshot, patch or target schema, capabilities) → plan.

Classification is table-driven: each ``_check_*`` rule looks at one aspect of the change and
returns blocked reasons that name the field (or index) and the workaround. A plan is always
produced; ``diff_classification.supported`` says whether ``apply`` may run it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import msgspec
import numpy as np

from ftctl.plan.codecs import CodecError, measure_recall
from ftctl.plan.estimate import human_bytes
from ftctl.plan.live import LiveSnapshot, SnapshotRequest, VectorSample
from ftctl.plan.merge import Merged, diff_target, field_kind, merge_patch
from ftctl.plan.models import (
    DiffClassification,
    Keyspace,
    MigrationPlan,
    SchemaPatch,
    SourceSnapshot,
    StatsSnapshot,
    VectorChange,
)
from ftctl.plan.online import (
    ModeDecision,
    ModeRequest,
    OnlineOptions,
    Rewrites,
    ServerMemory,
    choose_mode,
)
from ftctl.plan.quantization import (
    FLOAT16_MAX,
    INTEGER_DATATYPES,
    QualityMeasure,
    QuantizationParams,
    calibrate,
    float16_overflow,
    is_lossy,
)
from ftctl.schema.capabilities import Capabilities
from ftctl.schema.compare import reported_differences
from ftctl.schema.model import Field, IndexSchema, VectorField

RECALL_K = 10
DOWNTIME_WARNING = "Index downtime is required"
# Rough single-shard rebuild rates (documents per second) when FT.INFO gives no timing.
_REBUILD_RATE = {"hnsw": 2_000.0, "svs-vamana": 2_000.0, "flat": 20_000.0, "none": 50_000.0}
_REWRITE_RATE = 20_000.0
"""Pipelined document rewrites (quantize, rename field, rename key) per second."""


class _Change(VectorChange, frozen=True, kw_only=True):
    """A vector change with its source path (not persisted)."""

    path_in_source: str = ""


@dataclass(frozen=True)
class Context:
    """What every classification rule sees."""

    snapshot: LiveSnapshot
    source: IndexSchema
    merged: Merged
    capabilities: Capabilities
    vector_changes: list[_Change] = field(default_factory=list)

    @property
    def target(self) -> IndexSchema:
        return self.merged.target

    def source_field(self, target_name: str) -> Field | None:
        origin = self.merged.origin.get(target_name)
        return self.source.field(origin) if origin is not None else None


Rule = Callable[[Context], Iterable[str]]


# --- helpers -----------------------------------------------------------------------------


# A single-index apply runs a reviewed lossy plan as RedisVL's guide does; batch-apply asks.
_LOSSY_RUNS = "reviewed here, apply runs it (batch-apply asks for --accept-data-loss)"


def overlapping_prefixes(a: Iterable[str], b: Iterable[str]) -> list[tuple[str, str]]:
    """Every pair ``(x in a, y in b)`` whose keys can meet, under FT.CREATE PREFIX semantics:
    one is a string-prefix of the other; no prefix (``[]``) is ``""``, which matches all."""
    left = list(a) or [""]
    right = list(b) or [""]
    return [(x, y) for x in left for y in right if x.startswith(y) or y.startswith(x)]


def prefixes_overlap(a: Iterable[str], b: Iterable[str]) -> bool:
    """Whether two indexes' prefixes can cover the same keys (see :func:`overlapping_prefixes`)."""
    return bool(overlapping_prefixes(a, b))


def resolve_source(snapshot: LiveSnapshot) -> tuple[IndexSchema, bool]:
    """The source schema, with unreported options restored from ftctl's schema history.

    History is used only when it agrees with FT.INFO on everything FT.INFO reports; then its
    values for the unreported options (phonetic, EF_RUNTIME, key separator, …) are the truth.
    """
    live = snapshot.source.schema
    history = snapshot.history
    if history is None or not live.unreported:
        return live, False
    if history.storage_type != live.storage_type or reported_differences(history, live):
        return live, False
    restored = msgspec.structs.replace(
        history,
        index=msgspec.structs.replace(history.index, name=live.name),
        unreported=[],
    )
    return restored, True


def merge_request(source: IndexSchema, request: SchemaPatch | IndexSchema) -> Merged:
    if isinstance(request, SchemaPatch):
        return merge_patch(source, request)
    return diff_target(source, request)


def snapshot_request(source: IndexSchema, merged: Merged) -> SnapshotRequest:
    """What the second round of reads must fetch for this target (pure)."""
    target = merged.target
    names = [merged.renames.rename_index] if merged.renames.rename_index else []
    prefixes = [merged.renames.change_prefix] if merged.renames.change_prefix is not None else []
    field_paths: dict[str, str] = {}
    for rename in merged.renames.rename_fields:
        new = target.field(rename.new_name)
        if new is not None:
            field_paths[rename.new_name] = source.field_path(
                msgspec.structs.replace(new, path=None)
            )
    vectors: dict[str, str] = {}
    for f in target.vector_fields():
        origin = merged.origin.get(f.name)
        old = source.field(origin) if origin else None
        if isinstance(old, VectorField) and old.attrs.datatype != f.attrs.datatype:
            vectors[old.name] = source.field_path(old)
    return SnapshotRequest(
        names=names, prefixes=prefixes, field_paths=field_paths, vector_fields=vectors
    )


def _shown(prefixes: list[str]) -> str:
    return ", ".join(repr(p) for p in prefixes) if prefixes else "''"


# --- rules: the index --------------------------------------------------------------------


def _check_storage(ctx: Context) -> Iterable[str]:
    if ctx.target.storage_type != ctx.source.storage_type:
        yield (
            f"index '{ctx.source.name}': storage type change {ctx.source.storage_type} → "
            f"{ctx.target.storage_type} is not supported (documents have a different format); "
            "workaround: export, transform and reload the data into a new index"
        )


def _check_key_separator(ctx: Context) -> Iterable[str]:
    known = "index.key_separator" not in ctx.source.unreported
    if known and ctx.target.index.key_separator != ctx.source.index.key_separator:
        yield (
            f"index '{ctx.source.name}': key separator change "
            f"{ctx.source.index.key_separator!r} → {ctx.target.index.key_separator!r} is not "
            "supported (key names would have to be rebuilt); workaround: keep the separator, "
            "or write new keys at application level"
        )


def _check_prefix(ctx: Context) -> Iterable[str]:
    new = ctx.merged.renames.change_prefix
    if ctx.target.prefixes == ctx.source.prefixes:
        return
    if new is None or len(ctx.source.prefixes) != 1:
        yield (
            f"index '{ctx.source.name}': prefix change {_shown(ctx.source.prefixes)} → "
            f"{_shown(ctx.target.prefixes)} is supported only from one prefix to one prefix; "
            "workaround: migrate to a single new prefix"
        )
        return
    if new == "" or ctx.source.prefixes[0] == "":
        yield (
            f"index '{ctx.source.name}': prefix change {_shown(ctx.source.prefixes)} → "
            f"{new!r} cannot rename keys to or from the empty prefix; workaround: pick a "
            "non-empty prefix"
        )
        return
    count = ctx.snapshot.prefix_key_counts.get(new, 0)
    if count:
        yield (
            f"index '{ctx.source.name}': new prefix {new!r} already has {count} keys; "
            "renaming documents onto it could overwrite them; workaround: choose an empty "
            "prefix or move those keys first"
        )
    for other in ctx.snapshot.other_indexes:
        if other.storage_type == ctx.source.storage_type and prefixes_overlap(
            [new], other.prefixes
        ):
            yield (
                f"index '{ctx.source.name}': new prefix {new!r} is covered by index "
                f"'{other.name}' (prefixes {_shown(other.prefixes)}), which would index (or "
                "fail to index) every moved document; workaround: choose a prefix no other "
                "index covers"
            )


def _check_index_name(ctx: Context) -> Iterable[str]:
    new = ctx.merged.renames.rename_index
    if new is None:
        return
    if new in ctx.snapshot.taken_names or new in ctx.snapshot.index_names:
        yield (
            f"index rename '{ctx.source.name}' → '{new}': an index or alias named '{new}' "
            "already exists; workaround: choose another name or drop that index first"
        )


def _check_server_accepts(ctx: Context) -> Iterable[str]:
    rejection = ctx.snapshot.target_rejection
    if rejection is not None:
        yield (
            f"index '{ctx.target.name}': the server rejects the target schema "
            f"(throwaway FT.CREATE failed: {rejection}); workaround: fix the target schema"
        )


# --- rules: fields -----------------------------------------------------------------------


def _check_suspected_renames(ctx: Context) -> Iterable[str]:
    for r in ctx.merged.suspected_renames:
        yield (
            f"field '{r.old_name}' is removed and field '{r.new_name}' added with the same "
            "definition: that is a rename, and a remove+add would leave the documents' "
            f"'{r.old_name}' values unindexed; workaround: use a schema patch with "
            f"rename_fields: [{{old_name: {r.old_name}, new_name: {r.new_name}}}]"
        )


def _check_added_fields(ctx: Context) -> Iterable[str]:
    for f in ctx.target.fields:
        if f.name in ctx.merged.origin:
            continue
        if isinstance(f, VectorField):
            yield (
                f"field '{f.name}': adding a new vector field is not supported (every "
                "document needs a vector); workaround: write the vectors first, then migrate"
            )


def _check_field_changes(ctx: Context) -> Iterable[str]:
    for f in ctx.target.fields:
        old = ctx.source_field(f.name)
        if old is None:
            continue
        old_kind, new_kind = field_kind(old), field_kind(f)
        if old_kind != new_kind:
            yield (
                f"field '{f.name}': type change {old_kind} → {new_kind} is not supported "
                "(documents would need rewriting); workaround: add a new field of type "
                f"{new_kind} and remove '{old.name}' once documents carry it"
            )
            continue
        old_path = ctx.source.field_path(old)
        renamed = old.name != f.name
        expected = (
            ctx.target.field_path(msgspec.structs.replace(f, path=None)) if renamed else old_path
        )
        if (
            renamed
            and old.path is not None
            and old.path != ctx.source.field_path(msgspec.structs.replace(old, path=None))
        ):
            yield (
                f"field '{old.name}': renaming a field stored under a custom path "
                f"({old.path!r}) is not supported; workaround: rename the attribute only "
                "with a target schema that keeps the path"
            )
            continue
        if ctx.target.field_path(f) != expected:
            what = "JSON path" if ctx.target.storage_type == "json" else "hash field"
            yield (
                f"field '{f.name}': {what} change {expected!r} → {ctx.target.field_path(f)!r} "
                "is not supported (documents would need rewriting); workaround: use "
                "rename_fields for a simple rename, or move the data at application level"
            )
        if (
            isinstance(f, VectorField)
            and isinstance(old, VectorField)
            and f.attrs.dims != old.attrs.dims
        ):
            yield (
                f"field '{f.name}': vector dims change {old.attrs.dims} → {f.attrs.dims} "
                "is not supported (requires re-embedding); workaround: re-embed with the "
                "new model into a new field or index and reload"
            )


def _check_rename_collisions(ctx: Context) -> Iterable[str]:
    for rename in ctx.merged.renames.rename_fields:
        keys = ctx.snapshot.field_collisions.get(rename.new_name, [])
        if keys:
            sample = ", ".join(keys[:3])
            yield (
                f"field rename '{rename.old_name}' → '{rename.new_name}': sampled documents "
                f"already have '{rename.new_name}' ({len(keys)} of "
                f"{ctx.snapshot.collision_sample_size} sampled, e.g. {sample}); renaming "
                "would overwrite it; workaround: choose another name or clean those fields"
            )


def _check_capabilities(ctx: Context) -> Iterable[str]:
    caps = ctx.capabilities
    if not caps.search_version:
        return
    for f in ctx.target.fields:
        kind = field_kind(f)
        if isinstance(f, VectorField):
            if not caps.has_vector_type(f.attrs.datatype):
                yield (
                    f"field '{f.name}': this server does not support vector datatype "
                    f"{f.attrs.datatype.upper()} (capability probe); workaround: upgrade the "
                    "server (INT8/UINT8 need Redis 8.0+) or choose another datatype"
                )
            if not caps.has_algorithm(f.attrs.algorithm):
                yield (
                    f"field '{f.name}': this server does not support algorithm "
                    f"{f.attrs.algorithm.upper()} (capability probe); workaround: upgrade "
                    "the server (SVS-VAMANA needs Redis 8.2+) or choose FLAT/HNSW"
                )
        elif not caps.has_field_type(kind):
            yield (
                f"field '{f.name}': this server does not support field type {kind.upper()} "
                "(capability probe); workaround: upgrade the server or use another type"
            )
        attrs = getattr(f, "attrs", None)
        for option, attr in (
            ("INDEXMISSING", "index_missing"),
            ("INDEXEMPTY", "index_empty"),
            ("WITHSUFFIXTRIE", "withsuffixtrie"),
        ):
            if getattr(attrs, attr, False) and option not in caps.field_options:
                yield (
                    f"field '{f.name}': this server does not support {option} "
                    "(capability probe); workaround: drop the option or upgrade the server"
                )


def _check_vectors(ctx: Context) -> Iterable[str]:
    """Overflow on narrowing, and other live indexes that read the bytes we re-encode."""
    for change in ctx.vector_changes:
        sample = ctx.snapshot.vector_samples.get(change.source_field)
        if sample is not None and sample.count:
            values = sample.array()
            if change.target_datatype == "float16":
                over = float16_overflow(values)
                if over:
                    yield (
                        f"field '{change.field}': {over} sampled values exceed float16's range "
                        f"(±{FLOAT16_MAX:g}) and would become inf; workaround: use bfloat16 "
                        "or float32, or normalize the vectors first"
                    )
            elif change.target_datatype in ("float32", "bfloat16"):
                limit = float(np.finfo(np.float32).max)
                over = int(np.count_nonzero(np.isfinite(values) & (np.abs(values) > limit)))
                if over:
                    yield (
                        f"field '{change.field}': {over} sampled values exceed "
                        f"{change.target_datatype}'s range and would become inf; workaround: "
                        "keep float64"
                    )
        if not change.reencode_documents:
            continue
        path = change.path_in_source
        for other in ctx.snapshot.other_indexes:
            if other.storage_type != ctx.source.storage_type:
                continue
            if not prefixes_overlap(other.prefixes, ctx.source.prefixes):
                continue
            if any(other.field_path(v) == path for v in other.vector_fields()):
                yield (
                    f"field '{change.field}': index '{other.name}' (prefixes "
                    f"{_shown(other.prefixes)}) also indexes vector field '{path}' of the same "
                    f"keys; re-encoding it to {change.target_datatype} would corrupt that "
                    "index; workaround: migrate at application level with new keys or fields, "
                    f"or drop '{other.name}' first"
                )


RULES: tuple[Rule, ...] = (
    _check_storage,
    _check_key_separator,
    _check_index_name,
    _check_prefix,
    _check_suspected_renames,
    _check_added_fields,
    _check_field_changes,
    _check_rename_collisions,
    _check_capabilities,
    _check_vectors,
    _check_server_accepts,
)


# --- vector changes ----------------------------------------------------------------------


def _quality(
    sample: VectorSample | None, target: str, metric: str, params: QuantizationParams | None
) -> list[QualityMeasure]:
    if sample is None or sample.count <= RECALL_K:
        return []
    upper = metric.upper()
    assert upper in ("COSINE", "L2", "IP")
    try:
        measure = measure_recall(sample.array(), target, upper, params, k=RECALL_K)  # type: ignore[arg-type]
    except CodecError:
        return []  # values the target cannot hold: blocked by the overflow rule
    return [measure]


def vector_changes(
    source: IndexSchema, merged: Merged, samples: dict[str, VectorSample]
) -> list[_Change]:
    out: list[_Change] = []
    target = merged.target
    for f in target.vector_fields():
        origin = merged.origin.get(f.name)
        old = source.field(origin) if origin else None
        if not isinstance(old, VectorField) or old.attrs.datatype == f.attrs.datatype:
            continue
        if old.attrs.dims != f.attrs.dims:
            continue
        sample = samples.get(old.name)
        src, dst = old.attrs.datatype, f.attrs.datatype
        params: QuantizationParams | None = None
        if dst in INTEGER_DATATYPES and sample is not None and sample.count:
            params = calibrate(sample.array(), dst)
        lossy = is_lossy(src, dst)
        quality = _quality(sample, dst, f.attrs.distance_metric, params) if lossy else []
        out.append(
            _Change(
                field=f.name,
                source_field=old.name,
                source_datatype=src,
                target_datatype=dst,
                dims=f.attrs.dims,
                lossy=lossy,
                reencode_documents=target.storage_type == "hash",
                path=target.field_path(f),
                params=params,
                quality=quality,
                path_in_source=source.field_path(old),
            )
        )
    return out


def _persisted(change: _Change) -> VectorChange:
    raw = msgspec.structs.asdict(change)
    raw.pop("path_in_source")
    return VectorChange(**raw)


# --- warnings ----------------------------------------------------------------------------


def _seconds(value: float) -> str:
    if value < 1:
        return "under a second"
    if value < 120:
        return f"~{value:.0f}s"
    if value < 7200:
        return f"~{value / 60:.0f} min"
    return f"~{value / 3600:.1f} h"


def downtime_seconds(target: IndexSchema, stats: StatsSnapshot, rewrites: int) -> tuple[float, str]:
    """A likely downtime window and how it was estimated (rebuild + document rewrites)."""
    docs = stats.num_docs
    if stats.total_indexing_time > 0 and stats.indexing is False:
        rebuild = stats.total_indexing_time / 1000.0
        basis = "the source's total_indexing_time"
    else:
        algorithms: list[str] = [v.attrs.algorithm for v in target.vector_fields()] or ["none"]
        rate = min(_REBUILD_RATE[a] for a in algorithms)
        rebuild = docs / rate
        basis = f"~{rate:,.0f} docs/s rebuild"
    rewrite = docs * rewrites / _REWRITE_RATE
    if rewrites:
        basis += f" + {rewrites} document rewrite pass(es) at ~{_REWRITE_RATE:,.0f} docs/s"
    return rebuild + rewrite, basis


def eviction_warning(memory: ServerMemory) -> str:
    """A warning when the server may evict documents while the migration writes (its
    backup reads, converted vectors, copies and index builds all take memory); "" when not.

    ``allkeys-*`` may evict any document; ``volatile-*`` only keys with a TTL. Without a
    ``maxmemory`` limit nothing is evicted.
    """
    policy = memory.maxmemory_policy
    if not memory.maxmemory or not policy or policy == "noeviction":
        return ""
    which = "any document" if policy.startswith("allkeys-") else "documents that have a TTL"
    return (
        f"Eviction policy '{policy}' with maxmemory {human_bytes(memory.maxmemory)} "
        f"(used {human_bytes(memory.used_memory)}): Redis may evict {which} while the "
        "migration writes, and an evicted document is lost to the index and to the backup; "
        "set 'CONFIG SET maxmemory-policy noeviction' for the run, or raise maxmemory"
    )


def _warnings(
    ctx: Context, stats: StatsSnapshot, history_used: bool, mode_patch: bool
) -> list[str]:
    out: list[str] = []
    renames = ctx.merged.renames
    rewrites = (
        sum(1 for c in ctx.vector_changes if c.reencode_documents)
        + (1 if renames.rename_fields else 0)
        + (1 if renames.change_prefix is not None else 0)
    )
    seconds, basis = downtime_seconds(ctx.target, stats, rewrites)
    out.append(
        f"{DOWNTIME_WARNING}: '{ctx.source.name}' is unavailable from its drop until the "
        f"rebuild of {stats.num_docs:,} documents ends, likely {_seconds(seconds)} "
        f"(estimated from {basis}); pause reads and writes"
    )
    eviction = eviction_warning(ctx.snapshot.memory)
    if eviction:
        out.append(eviction)
    if stats.indexing or stats.percent_indexed < 1.0:
        out.append(
            f"Source index '{ctx.source.name}' is still indexing "
            f"({stats.percent_indexed:.0%} done): its document count may still change"
        )
    if stats.hash_indexing_failures:
        out.append(
            f"Source index '{ctx.source.name}' has {stats.hash_indexing_failures:,} hash "
            "indexing failure(s): those documents are enumerated by SCAN and will fail again unless fixed"
        )
    for change in ctx.vector_changes:
        if change.lossy:
            if change.quality:
                q = change.quality[0]
                out.append(
                    f"Lossy quantization of '{change.field}' {change.source_datatype} → "
                    f"{change.target_datatype}: recall@{q.k} {q.recall_at_k:.3f} against "
                    f"float32 brute force on {q.sample_size} sampled vectors "
                    f"({q.metric}), max abs error {q.max_abs_error:.3g}, mean "
                    f"{q.mean_abs_error:.3g}; {_LOSSY_RUNS}"
                )
            else:
                out.append(
                    f"Lossy quantization of '{change.field}' {change.source_datatype} → "
                    f"{change.target_datatype}: too few stored vectors to measure recall@"
                    f"{RECALL_K}; {_LOSSY_RUNS}"
                )
        if change.params is not None:
            p = change.params
            if p.scheme == "symmetric":
                formula = f"q = clip(rint(x / {p.scale:.6g}), -127, 127)"
            else:
                formula = f"q = clip(rint(x / {p.scale:.6g} + {p.zero_point:g}), 0, 255)"
            out.append(
                f"Quantization of '{change.field}' to {change.target_datatype}: {p.scheme} "
                f"scale {p.scale:.6g}, calibrated on {p.calibration or 'a sample'} "
                f"({p.clipped_fraction:.2%} clipped); encode queries the same way: {formula} "
                "(recorded in vector_changes[].params)"
            )
        target_field = ctx.target.field(change.field)
        if (
            change.target_datatype == "uint8"
            and isinstance(target_field, VectorField)
            and target_field.attrs.distance_metric == "ip"
        ):
            recall = (
                f"measured recall@{change.quality[0].k} {change.quality[0].recall_at_k:.3f}"
                if change.quality
                else "recall not measured"
            )
            out.append(
                f"Field '{change.field}': uint8 with IP distance shifts every value by the "
                f"zero point, so inner products no longer rank like the floats ({recall}); "
                "consider int8 or COSINE/L2"
            )
    out.extend(_unreported_warnings(ctx, history_used, mode_patch))
    out.extend(_overlap_warnings(ctx))
    return out


def _unreported_value(schema: IndexSchema, path: str) -> object:
    parts = path.split(".")
    if parts[0] == "index" and len(parts) == 2:
        return getattr(schema.index, parts[1], None)
    if parts[0] == "fields" and len(parts) >= 4:
        f = schema.field(parts[1])
        return getattr(getattr(f, "attrs", None), parts[-1], None)
    return None


def _unreported_warnings(ctx: Context, history_used: bool, mode_patch: bool) -> list[str]:
    if history_used:
        return []
    lost: list[str] = []
    for path in ctx.snapshot.source.schema.unreported:
        if path == "index.key_separator":
            continue  # client-side only; FT.CREATE never sees it
        if not mode_patch and _unreported_value(ctx.target, path) not in (None, False):
            continue  # the target schema sets it explicitly
        lost.append(path)
    if not lost:
        return []
    return [
        "Options this server's FT.INFO does not report will be reset to their defaults "
        f"unless the target schema sets them: {', '.join(lost)} (no ftctl schema history "
        "matches this index)"
    ]


def _overlap_warnings(ctx: Context) -> list[str]:
    renames = ctx.merged.renames
    if not (renames.rename_fields or renames.change_prefix is not None):
        return []
    others = [
        o.name
        for o in ctx.snapshot.other_indexes
        if prefixes_overlap(o.prefixes, ctx.source.prefixes)
    ]
    if not others:
        return []
    return [
        f"Other indexes cover the same keys ({', '.join(sorted(others))}): renamed fields or "
        "keys will change what they index"
    ]


# --- public names ---------------------------------------------------------------------------


@dataclass(frozen=True)
class KeptNames:
    """The names a plan keeps answering (DESIGN §5b "Names."), and what planning found."""

    kept: list[str]
    """Names to point at the target after apply (at the source again after rollback)."""
    why: dict[str, str]
    """Each kept name → where it came from (for the warning)."""
    blocked: list[str]
    """Names the user gave that cannot be kept: the plan is blocked."""
    stale: list[str]
    """Warnings about recorded aliases that no longer resolve to the source (not kept)."""


def kept_names(
    snapshot: LiveSnapshot, source: IndexSchema, target: IndexSchema, options: OnlineOptions
) -> KeptNames:
    """Which names resolving to the source the plan keeps (pure).

    - the name planned with, when it is an alias, or on an index rename (the old name) —
      unless the rename drops it (``keep_old_name`` false);
    - the aliases ftctl's schema history records for the source, while they still resolve
      to it (one that does not is not kept, with a warning);
    - the ``--alias`` names: each must resolve to the source, else the plan is blocked.

    The target's own name is never an alias of it.
    """
    real = snapshot.source.index_name
    requested = snapshot.requested_name or real
    renamed = target.name != source.name
    kept: dict[str, str] = {}
    blocked: list[str] = []
    stale: list[str] = []
    dropped = requested if renamed and not options.keep_old_name else None
    if requested != real and requested != dropped:
        kept[requested] = "the name planned with"
    elif renamed and requested != dropped:
        kept[requested] = "the old name"
    for alias in snapshot.history_aliases:
        resolved = snapshot.alias_targets.get(alias, "")
        if alias == dropped or alias in kept:
            continue
        if resolved == real:
            kept[alias] = "schema history"
        else:
            where = f"resolves to '{resolved}'" if resolved else "no longer exists"
            stale.append(
                f"Alias '{alias}' recorded in ftctl's schema history of '{real}' {where}: "
                "not kept (ftctl no longer manages it)"
            )
    for alias in options.aliases:
        resolved = snapshot.alias_targets.get(alias, "")
        if resolved != real:
            where = f"resolves to '{resolved}'" if resolved else "does not exist"
            blocked.append(
                f"alias '{alias}' {where}, not to '{real}'; "
                "workaround: name only aliases of the source with --alias"
            )
        elif alias not in kept:
            kept[alias] = "--alias"
    kept.pop(target.name, None)
    return KeptNames(kept=list(kept), why=kept, blocked=blocked, stale=stale)


def _names_warning(names: KeptNames, real: str) -> str:
    """What happens to aliases when the source index is dropped (RediSearch cannot list
    them, so those nobody named go with it)."""
    known = ", ".join(f"'{n}' ({names.why[n]})" for n in names.kept)
    return (
        "Aliases: RediSearch cannot list aliases; "
        + (
            f"ftctl keeps {known}, pointed at the new index (back at the source on rollback); "
            if known
            else "ftctl knows no alias of this index; "
        )
        + f"any other alias of '{real}' is dropped with it: name each with --alias NAME to "
        "keep it"
    )


# --- mode ---------------------------------------------------------------------------------


def _mode(
    ctx: Context,
    stats: StatsSnapshot,
    requested: ModeRequest,
    options: OnlineOptions,
    blocked: list[str],
) -> ModeDecision:
    snapshot = ctx.snapshot
    serving = snapshot.requested_name or snapshot.source.index_name
    rewrites = rewrites_of(ctx)
    if blocked and requested == "auto":
        return ModeDecision(mode="drop_recreate", reason="auto: the plan is blocked")
    return choose_mode(
        requested,
        source=ctx.source,
        target=ctx.target,
        serving_name=serving,
        rewrites=rewrites,
        total_index_mb=stats.total_index_memory_sz_mb,
        vector_index_mb=stats.vector_index_sz_mb,
        server=snapshot.memory,
        options=options,
        num_docs=stats.num_docs,
    )


def rewrites_of(ctx: Context) -> Rewrites:
    """What the change rewrites in documents, and what keeps it from running online."""
    renames = ctx.merged.renames
    source, target = ctx.source, ctx.target
    converted = [c for c in ctx.vector_changes if c.reencode_documents]
    in_place = [
        c.path_in_source
        for c in converted
        if renames.change_prefix is None and (c.source_field or c.field) == c.field
    ]
    blockers: list[str] = []
    if source.storage_type == "json":
        for rename in renames.rename_fields:
            old, new = source.field(rename.old_name), target.field(rename.new_name)
            paths = [source.field_path(old) if old else "", target.field_path(new) if new else ""]
            if any(p.count(".") != 1 or not p.startswith("$.") for p in paths):
                blockers.append(
                    f"renaming '{rename.old_name}' moves a nested JSON path: online rename "
                    "copies top-level fields only"
                )
    if target.prefixes != source.prefixes and renames.change_prefix is None:
        blockers.append("the prefixes change without a one-to-one prefix change")
    return Rewrites(
        field_renames=[f"{r.old_name} → {r.new_name}" for r in renames.rename_fields],
        prefix_change=renames.change_prefix is not None,
        converted_in_place=in_place,
        converted=[c.field for c in converted],
        blockers=blockers,
    )


def _mode_warnings(decision: ModeDecision, warnings: list[str], names_warning: str) -> list[str]:
    online = decision.online
    if online is None:
        if decision.reason.startswith("online mode is not possible"):
            warnings = [*warnings, f"drop_recreate chosen: {decision.reason}"]
        return [*warnings, names_warning]
    out = [w for w in warnings if not w.startswith(DOWNTIME_WARNING)]
    memory = online.memory
    if online.strategy == "alter":
        out.insert(
            0, f"Online (no downtime): FT.ALTER adds {', '.join(online.added_fields)} in place"
        )
        return out
    limit = f"maxmemory {memory.maxmemory_mb:g} MB" if memory.maxmemory_mb else "no maxmemory limit"
    out.insert(
        0,
        f"Online (no downtime): '{online.serving_name}' keeps serving while shadow index "
        f"'{online.shadow_name}' is built; both exist until cut-over: ~{memory.shadow_mb:g} MB "
        f"more index memory (used_memory {memory.used_memory_mb:g} MB, {limit}; "
        f"estimated from {memory.basis})",
    )
    out.append(names_warning)
    return out


# --- entry point -------------------------------------------------------------------------


def build_plan(
    snapshot: LiveSnapshot,
    request: SchemaPatch | IndexSchema,
    capabilities: Capabilities,
    *,
    created_at: str = "",
    ftctl_version: str = "",
    merged: Merged | None = None,
    mode: ModeRequest = "drop_recreate",
    online_options: OnlineOptions | None = None,
) -> MigrationPlan:
    """The plan for ``request`` against ``snapshot`` (pure; raises UsageError on bad input).

    ``merged`` may be passed when the caller already merged (to plan the second round of
    reads); it must come from :func:`merge_request` on the same source and request.
    ``mode`` ``auto`` plans online when the change allows it (see :mod:`ftctl.plan.online`);
    the snapshot must then carry ``memory`` and ``alias_targets``.
    """
    source, history_used = resolve_source(snapshot)
    if merged is None:
        merged = merge_request(source, request)
    changes = vector_changes(source, merged, snapshot.vector_samples)
    ctx = Context(
        snapshot=snapshot,
        source=source,
        merged=merged,
        capabilities=capabilities,
        vector_changes=list(changes),
    )
    blocked: list[str] = []
    for rule in RULES:
        for reason in rule(ctx):
            if reason not in blocked:
                blocked.append(reason)
    stats = snapshot.source.stats
    is_patch = isinstance(request, SchemaPatch)
    warnings = _warnings(ctx, stats, history_used, is_patch)
    renames = merged.renames
    options = online_options or OnlineOptions()
    names = kept_names(snapshot, source, merged.target, options)
    blocked += [b for b in names.blocked if b not in blocked]
    warnings += names.stale
    # Online moves the kept names at cut-over; the serving name is its own (keep_old_name).
    options = msgspec.structs.replace(options, aliases=names.kept)
    decision = _mode(ctx, stats, mode, options, blocked)
    if decision.refusal is not None:
        blocked.append(decision.refusal)
    warnings = _mode_warnings(decision, warnings, _names_warning(names, snapshot.source.index_name))
    return MigrationPlan(
        mode=decision.mode,
        mode_reason=decision.reason,
        online=decision.online,
        source=SourceSnapshot(
            index_name=snapshot.source.index_name,
            schema_snapshot=source,
            stats_snapshot=stats,
            keyspace=Keyspace(
                storage_type=source.storage_type,
                prefixes=source.prefixes,
                key_separator=source.index.key_separator,
                key_sample=list(snapshot.key_sample),
            ),
            aliases=names.kept,
        ),
        requested_changes=request.changes if isinstance(request, SchemaPatch) else None,
        merged_target_schema=merged.target,
        diff_classification=DiffClassification(supported=not blocked, blocked_reasons=blocked),
        rename_operations=renames,
        warnings=warnings,
        vector_changes=[_persisted(c) for c in changes],
        capabilities=capabilities,
        schema_history_used=history_used,
        created_at=created_at,
        ftctl_version=ftctl_version,
        redis_url=snapshot.redis_url,
    )


__all__ = [
    "DOWNTIME_WARNING",
    "RULES",
    "KeptNames",
    "build_plan",
    "downtime_seconds",
    "kept_names",
    "merge_request",
    "overlapping_prefixes",
    "prefixes_overlap",
    "resolve_source",
    "snapshot_request",
    "vector_changes",
]
