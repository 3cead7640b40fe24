"""The batch plan: one shared patch over many indexes, as data (pure, no server).

``batch_plan.yaml`` (:class:`BatchPlan`) lists every selected index, applicable with the
path and sha256 of its reviewed per-index plan, or skipped with the reason. This module
selects the indexes (:func:`select_indexes`), refuses overlapping ones
(:func:`find_overlaps`, :class:`OverlapError`) and turns the snapshots of the selected
indexes into the batch plan (:func:`classify`). Snapshotting is the batch snapshot step's job
(:mod:`ftctl.steps.batch`); writing the files is the batch planner's
(:mod:`ftctl.batch`).
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import secrets
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeAlias

import msgspec

from ftctl.errors import RefusedError, UsageError
from ftctl.plan.build import build_plan, overlapping_prefixes
from ftctl.plan.live import LiveSnapshot
from ftctl.plan.merge import Merged
from ftctl.plan.models import (
    MigrationPlan,
    Mode,
    SchemaPatch,
    dump_patch,
    dump_plan,
    load_plan,
    patch_from_builtins,
    plan_digest,
)
from ftctl.plan.names import public_names
from ftctl.schema.capabilities import Capabilities
from ftctl.schema.model import IndexSchema

FailurePolicy: TypeAlias = Literal["fail_fast", "continue_on_error"]

INTERNAL_INDEX_PREFIX = "__ftctl_"
"""ftctl's own throwaway indexes; a pattern never selects them."""


class BatchPlanIndex(msgspec.Struct, frozen=True, kw_only=True):
    """One selected index: applicable with its reviewed plan, or skipped with the reason."""

    name: str
    applicable: bool
    skip_reason: str | None = None
    plan_path: str | None = None
    """Relative to the batch plan file (``plans/<index>.yaml``)."""
    plan_sha256: str | None = None
    prefixes: list[str] = msgspec.field(default_factory=list)
    public_name: str | None = None
    """The name users know the index by (the alias it was selected by) when it is not
    ``name``, the real index name (an online migration leaves a generated one)."""


class BatchPlan(msgspec.Struct, frozen=True, kw_only=True):
    """``batch_plan.yaml`` in the guide's fields (plus the reviewed plans' paths and digests).

    ``plans`` holds the per-index plans of a batch plan that was planned in this process and
    not written yet; it is never written to the YAML. ``source_path`` is where the file was
    read from (per-index plan paths are relative to its directory).
    """

    version: int = 1
    batch_id: str
    mode: Mode = "drop_recreate"
    failure_policy: FailurePolicy = "fail_fast"
    requires_quantization: bool = False
    shared_patch: SchemaPatch
    indexes: list[BatchPlanIndex] = msgspec.field(default_factory=list)
    created_at: str = ""
    redis_url: str = ""
    ftctl_version: str = ""
    plans: dict[str, MigrationPlan] = msgspec.field(default_factory=dict)
    source_path: str = ""

    @property
    def applicable(self) -> list[BatchPlanIndex]:
        return [i for i in self.indexes if i.applicable]

    @property
    def applicable_count(self) -> int:
        """How many indexes the batch migrates (RedisVL's ``applicable_count``)."""
        return sum(1 for i in self.indexes if i.applicable)

    @property
    def skipped_count(self) -> int:
        """How many selected indexes the batch skips (RedisVL's ``skipped_count``)."""
        return sum(1 for i in self.indexes if not i.applicable)


class SnappedIndex(msgspec.Struct, frozen=True, kw_only=True):
    """A selected index as the batch snapshot step saw it: the input of :func:`classify`.

    ``snapshot`` and ``merged`` are both set when the index could be planned; otherwise
    ``skip_reason`` says why not (``snapshot`` is still set when only the merge failed).
    """

    name: str
    snapshot: LiveSnapshot | None = None
    merged: Merged | None = None
    skip_reason: str | None = None


# --- the file -------------------------------------------------------------------------------


def batch_plan_to_builtins(batch: BatchPlan) -> dict[str, Any]:
    """The batch plan as plain data in the guide's order (``plans``/``source_path`` left out)."""
    indexes = []
    for entry in batch.indexes:
        # The name users know first; the real name (journals, plan files) beside it. Left
        # out when they are the same, so earlier batch plans keep their digests.
        raw: dict[str, Any] = (
            {} if entry.public_name is None else {"public_name": entry.public_name}
        )
        raw.update(name=entry.name, applicable=entry.applicable)
        raw["skip_reason"] = entry.skip_reason
        if entry.applicable:
            raw["plan_path"] = entry.plan_path
            raw["plan_sha256"] = entry.plan_sha256
        raw["prefixes"] = list(entry.prefixes)
        indexes.append(raw)
    return {
        "version": batch.version,
        "batch_id": batch.batch_id,
        "mode": batch.mode,
        "failure_policy": batch.failure_policy,
        "requires_quantization": batch.requires_quantization,
        "shared_patch": msgspec.yaml.decode(dump_patch(batch.shared_patch)),
        "indexes": indexes,
        "created_at": batch.created_at,
        "redis_url": batch.redis_url,
        "ftctl_version": batch.ftctl_version,
    }


def dump_batch_plan(batch: BatchPlan) -> bytes:
    """``batch_plan.yaml`` bytes."""
    return msgspec.yaml.encode(batch_plan_to_builtins(batch))


def batch_plan_digest(batch: BatchPlan) -> str:
    """sha256 of the batch plan's canonical JSON (it covers every per-index plan digest)."""
    canonical = msgspec.json.encode(batch_plan_to_builtins(batch), order="sorted")
    return hashlib.sha256(canonical).hexdigest()


def load_batch_plan(source: str | os.PathLike[str] | bytes) -> BatchPlan:
    """Load ``batch_plan.yaml`` (a path, or YAML bytes); a bad shape is a UsageError."""
    if isinstance(source, bytes):
        label, data, where = "batch plan", source, ""
    else:
        label, where = f"'{source}'", str(Path(source).resolve())
        try:
            data = Path(source).read_bytes()
        except OSError as exc:
            raise UsageError(
                f"cannot read batch plan {label}: {exc.strerror}", "check --plan"
            ) from None
    try:
        raw = msgspec.yaml.decode(data)
        if not isinstance(raw, dict):
            raise msgspec.ValidationError("expected a mapping")
        raw = dict(raw)
        raw.pop("plans", None)
        raw["source_path"] = where
        raw["shared_patch"] = msgspec.to_builtins(
            patch_from_builtins(raw.get("shared_patch"), label=f"{label} shared_patch")
        )
        return msgspec.convert(raw, BatchPlan)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise UsageError(
            f"{label} is not a valid batch plan: {' '.join(str(exc).split())}",
            "write one with 'ftctl migrate batch-plan'",
        ) from None


def normalized(plan: MigrationPlan) -> MigrationPlan:
    """The plan as it reads back from its YAML (the reviewed file is what runs and is hashed)."""
    return load_plan(dump_plan(plan))


def new_batch_id(now: datetime | None = None) -> str:
    """``batch_YYYYMMDD_HHMMSS_xxxx`` (the guide's form, plus 4 hex so ids never collide)."""
    now = now or datetime.now(UTC)
    return f"batch_{now:%Y%m%d_%H%M%S}_{secrets.token_hex(2)}"


# --- selection ------------------------------------------------------------------------------


def select_indexes(
    live: Sequence[str],
    *,
    pattern: str | None = None,
    indexes: str | Sequence[str] | None = None,
    indexes_file: str | os.PathLike[str] | None = None,
    aliases: Mapping[str, Sequence[str]] | None = None,
) -> list[str]:
    """The index names a batch covers (exactly one selector); pure except reading the file.

    A pattern is a glob over the public names of ``live`` (``aliases``: each index's aliases
    recorded in ftctl's schema history) and their real names, ftctl's internal indexes left
    out, and must match something; each index matched is selected once, by the first of its
    :func:`~ftctl.plan.names.public_names` that matches, sorted by that name. A list or file
    is taken as given (stripped, deduplicated in order; in a file, ``#`` starts a comment),
    whether or not the indexes exist (an alias resolves to its index when it is read).
    """
    given = [x for x in (pattern, indexes, indexes_file) if x is not None]
    if len(given) != 1:
        raise UsageError(
            "give exactly one of a pattern, a list of indexes or an indexes file",
            "use --pattern GLOB, --indexes a,b,c or --indexes-file FILE",
        )
    if pattern is not None:
        names = []
        for index in live:
            if index.startswith(INTERNAL_INDEX_PREFIX):
                continue
            candidates = public_names(index, (aliases or {}).get(index, ()))
            matched = [n for n in candidates if fnmatch.fnmatchcase(n, pattern)]
            if matched:
                names.append(matched[0])
        names.sort()
        if not names:
            raise UsageError(
                f"no index matches '{pattern}'", "run 'ftctl index listall' to see the indexes"
            )
        return names
    if indexes is not None:
        raw = indexes.split(",") if isinstance(indexes, str) else list(indexes)
    else:
        assert indexes_file is not None
        try:
            text = Path(indexes_file).read_bytes().decode()
        except OSError as exc:
            raise UsageError(
                f"cannot read indexes file '{indexes_file}': {exc.strerror}", "check the path"
            ) from None
        except UnicodeDecodeError as exc:
            raise UsageError(
                f"indexes file '{indexes_file}' is not UTF-8 text (byte {exc.start})",
                "list one index name per line, in UTF-8",
            ) from None
        raw = [line.split("#", 1)[0] for line in text.splitlines()]
    names = list(dict.fromkeys(n.strip() for n in raw if n.strip()))
    if not names:
        raise UsageError("no index names given", "list at least one index")
    return names


# --- overlaps -------------------------------------------------------------------------------


class OverlapError(RefusedError):
    """batch-plan refused: applicable indexes (or an outside index) share keys."""

    def __init__(self, conflicts: list[str], outside: list[str]) -> None:
        lines = ["Refusing to create batch plan: overlapping indexes detected."]
        if conflicts:
            lines += [
                "Multiple indexes in the batch share Redis key prefixes. Running a",
                "batch migration over overlapping indexes can mutate the same keys",
                "more than once (e.g., double-quantization of vectors), corrupting",
                "the underlying data.",
            ]
        if outside:
            lines += [
                "Live indexes outside the batch share keys with an applicable index and",
                "index a vector field the batch re-encodes; they would see the new bytes",
                "and silently drop or fail to index those documents.",
            ]
        lines.append("Conflicts:")
        lines += [f"- {c}" for c in conflicts + outside]
        lines += [
            "Resolve by migrating overlapping indexes one at a time, or by",
            "narrowing the batch to a set of indexes with disjoint prefixes.",
        ]
        super().__init__(
            "\n".join(lines),
            "split the indexes into prefix-disjoint groups and run batch-plan once per group",
        )
        self.conflicts = conflicts
        self.outside = outside


def _pairs_text(pairs: list[tuple[str, str]]) -> str:
    return ", ".join(f"'{x}' <-> '{y}'" for x, y in pairs)


def _reencoded_paths(plan: MigrationPlan) -> dict[str, str]:
    """Source document path → field name of every vector field the plan re-encodes."""
    source = plan.source.schema_snapshot
    out: dict[str, str] = {}
    for change in plan.vector_changes:
        if not change.reencode_documents:
            continue
        f = source.field(change.source_field or change.field)
        if f is not None:
            out[source.field_path(f)] = f.name
    return out


def find_overlaps(
    candidates: Sequence[MigrationPlan], live: Sequence[IndexSchema]
) -> tuple[list[str], list[str]]:
    """Conflicts among the applicable plans, and with live indexes outside them (pure).

    Inside: any two applicable indexes whose prefixes overlap (FT.CREATE PREFIX semantics).
    Outside: a live index not applicable in the batch, on the same storage type, whose
    prefixes overlap an applicable index's and that indexes a vector field it re-encodes.
    """
    inside: list[str] = []
    for i, a in enumerate(candidates):
        for b in candidates[i + 1 :]:
            pairs = overlapping_prefixes(
                a.source.schema_snapshot.prefixes, b.source.schema_snapshot.prefixes
            )
            if pairs:
                inside.append(f"{a.index_name} <-> {b.index_name}: {_pairs_text(pairs)}")
    names = {p.index_name for p in candidates}
    outside: list[str] = []
    for plan in candidates:
        paths = _reencoded_paths(plan)
        if not paths:
            continue
        source = plan.source.schema_snapshot
        for other in live:
            if other.name in names or other.storage_type != source.storage_type:
                continue
            pairs = overlapping_prefixes(source.prefixes, other.prefixes)
            shared = sorted(
                paths[other.field_path(v)]
                for v in other.vector_fields()
                if other.field_path(v) in paths
            )
            if pairs and shared:
                outside.append(
                    f"{plan.index_name} <-> {other.name} (not in the batch): "
                    f"{_pairs_text(pairs)}; both index vector field "
                    + ", ".join(f"'{s}'" for s in shared)
                )
    return inside, outside


# --- classification -------------------------------------------------------------------------


def _unchanged(plan: MigrationPlan) -> bool:
    return (
        plan.source.schema_snapshot == plan.merged_target_schema
        and plan.rename_operations.is_empty()
        and not plan.vector_changes
    )


def classify(
    snapped: Sequence[SnappedIndex],
    patch: SchemaPatch,
    capabilities: Capabilities,
    *,
    batch_id: str,
    failure_policy: FailurePolicy,
    created_at: str,
    ftctl_version: str,
    redis_url: str = "",
) -> BatchPlan:
    """The batch plan from the snapshots (pure); raises :class:`OverlapError`.

    Applicability is the single-index planner's verdict on the index by itself; overlaps
    between indexes are then the batch's own check, so that two batch members sharing keys
    are refused (with both named) rather than quietly both skipped. ``redis_url`` is written
    to the plan as given: pass it masked.
    """
    verdicts: dict[str, str | None] = {}
    alone: dict[str, MigrationPlan] = {}
    live: dict[str, IndexSchema] = {}
    for item in snapped:
        if item.snapshot is None or item.merged is None:
            verdicts[item.name] = item.skip_reason or "not planned"
            continue
        live[item.name] = item.snapshot.source.schema
        for other in item.snapshot.other_indexes:
            live.setdefault(other.name, other)
        by_itself = msgspec.structs.replace(item.snapshot, other_indexes=[])
        plan = build_plan(
            by_itself,
            patch,
            capabilities,
            merged=item.merged,
            created_at=created_at,
            ftctl_version=ftctl_version,
        )
        if not plan.supported:
            verdicts[item.name] = "; ".join(plan.diff_classification.blocked_reasons)
        elif _unchanged(plan):
            verdicts[item.name] = "the index already matches the patch (nothing to change)"
        else:
            verdicts[item.name] = None
            alone[item.name] = plan
    inside, outside = find_overlaps(list(alone.values()), list(live.values()))
    if inside or outside:
        raise OverlapError(inside, outside)
    entries: list[BatchPlanIndex] = []
    plans: dict[str, MigrationPlan] = {}
    for item in snapped:
        reason = verdicts[item.name]
        prefixes = item.snapshot.source.schema.prefixes if item.snapshot else []
        requested = item.snapshot.requested_name if item.snapshot else item.name
        shown = requested if requested and requested != item.name else None
        if reason is None:
            assert item.snapshot is not None and item.merged is not None
            # The plan as the single-index planner makes it: with every other live index.
            built = build_plan(
                item.snapshot,
                patch,
                capabilities,
                merged=item.merged,
                created_at=created_at,
                ftctl_version=ftctl_version,
            )
            plan = normalized(built)
            if not plan.supported:
                reason = "; ".join(plan.diff_classification.blocked_reasons)
            else:
                plans[item.name] = plan
                entries.append(
                    BatchPlanIndex(
                        name=item.name,
                        applicable=True,
                        plan_sha256=plan_digest(plan),
                        prefixes=list(prefixes),
                        public_name=shown,
                    )
                )
                continue
        entries.append(
            BatchPlanIndex(
                name=item.name,
                applicable=False,
                skip_reason=reason,
                prefixes=list(prefixes),
                public_name=shown,
            )
        )
    modes = {p.mode for p in plans.values()}
    return BatchPlan(
        batch_id=batch_id,
        mode=modes.pop() if len(modes) == 1 else "drop_recreate",
        failure_policy=failure_policy,
        requires_quantization=any(p.vector_changes for p in plans.values()),
        shared_patch=patch,
        indexes=entries,
        created_at=created_at,
        redis_url=redis_url,
        ftctl_version=ftctl_version,
        plans=plans,
    )


__all__ = [
    "INTERNAL_INDEX_PREFIX",
    "BatchPlan",
    "BatchPlanIndex",
    "FailurePolicy",
    "OverlapError",
    "SnappedIndex",
    "batch_plan_digest",
    "batch_plan_to_builtins",
    "classify",
    "dump_batch_plan",
    "find_overlaps",
    "load_batch_plan",
    "new_batch_id",
    "normalized",
    "select_indexes",
]
