"""Schema patches and migration plans: pure data, in the field names of RedisVL's migrator.

A plan file written by ``rvl migrate plan`` loads here (unknown keys are ignored in plans,
every field we add has a default); a patch is strict so a typo (``add_field:``) is an error
instead of a silently empty change. Plans and patches are YAML via ``msgspec.yaml``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Literal, TypeAlias

import msgspec

from ftctl.errors import UsageError
from ftctl.plan.online import OnlinePlan
from ftctl.plan.quantization import QualityMeasure, QuantizationParams
from ftctl.schema.capabilities import Capabilities
from ftctl.schema.ftinfo import IndexStats
from ftctl.schema.model import (
    Field,
    IndexSchema,
    StorageType,
    normalize_builtins,
    normalize_field_builtins,
    read_yaml,
    schema_to_builtins,
)

Mode: TypeAlias = Literal["drop_recreate", "online"]

# --- the patch ---------------------------------------------------------------------------


class _Strict(
    msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, forbid_unknown_fields=True
):
    """Patch records: strict keys, immutable."""


class FieldUpdate(_Strict, frozen=True, kw_only=True):
    """Change an existing field: ``attrs`` are merged onto the field's current attrs."""

    name: str
    type: str | None = None
    path: str | None = None
    attrs: dict[str, Any] = msgspec.field(default_factory=dict)


class FieldRename(_Strict, frozen=True, kw_only=True):
    """Rename a field in the schema and in every document."""

    old_name: str
    new_name: str


class IndexChange(_Strict, frozen=True, kw_only=True):
    """Rename the index and/or move its documents to a new key prefix."""

    name: str | None = None
    prefix: str | None = None


class PatchChanges(_Strict, frozen=True, kw_only=True):
    """The five optional sections of a patch (RedisVL's ``changes:``)."""

    add_fields: list[Field] = msgspec.field(default_factory=list)
    remove_fields: list[str] = msgspec.field(default_factory=list)
    update_fields: list[FieldUpdate] = msgspec.field(default_factory=list)
    rename_fields: list[FieldRename] = msgspec.field(default_factory=list)
    index: IndexChange | None = None

    def is_empty(self) -> bool:
        return not (
            self.add_fields
            or self.remove_fields
            or self.update_fields
            or self.rename_fields
            or (self.index is not None and (self.index.name or self.index.prefix is not None))
        )


class SchemaPatch(_Strict, frozen=True, kw_only=True):
    """What a user wants changed, not the whole target schema."""

    version: int = 1
    changes: PatchChanges = msgspec.field(default_factory=PatchChanges)


# --- the plan ----------------------------------------------------------------------------


class _Lenient(msgspec.Struct, frozen=True, kw_only=True):
    """Plan records: unknown keys ignored so RedisVL plans (and newer ftctl plans) load."""


StatsSnapshot: TypeAlias = IndexStats
"""The FT.INFO numbers of the source at planning time: the schema layer's own struct
(every field has a default, unknown keys are ignored, so a guide plan with only
``num_docs`` loads)."""


class Keyspace(_Lenient, frozen=True, kw_only=True):
    """Where the source's documents live."""

    storage_type: StorageType = "hash"
    prefixes: list[str] = msgspec.field(default_factory=list)
    key_separator: str = ":"
    key_sample: list[str] = msgspec.field(default_factory=list)


class SourceSnapshot(_Lenient, frozen=True, kw_only=True):
    """The live source index, frozen at planning time."""

    index_name: str = ""
    schema_snapshot: IndexSchema
    stats_snapshot: StatsSnapshot = msgspec.field(default_factory=StatsSnapshot)
    keyspace: Keyspace = msgspec.field(default_factory=Keyspace)
    aliases: list[str] = msgspec.field(default_factory=list)
    """The public names ftctl keeps, verified at planning to resolve to the source: the alias
    the plan was made with, the aliases in its schema history, those given with ``--alias``,
    and on an index rename the old name (unless ``--drop-old-name``). After apply each one
    resolves to the target, after rollback to the source again (a name equal to an index's
    own name needs no alias). Any other alias of the source is dropped with it (RediSearch
    cannot list aliases; the plan's warnings say so)."""

    def __post_init__(self) -> None:
        # RedisVL plans leave index_name out; the snapshot names the index.
        if not self.index_name:
            msgspec.structs.force_setattr(self, "index_name", self.schema_snapshot.name)


class DiffClassification(_Lenient, frozen=True, kw_only=True):
    supported: bool
    blocked_reasons: list[str] = msgspec.field(default_factory=list)


class RenameOperations(_Lenient, frozen=True, kw_only=True):
    rename_index: str | None = None
    """The new index name."""
    change_prefix: str | None = None
    """The NEW prefix (documents move from the source's only prefix to this one)."""
    rename_fields: list[FieldRename] = msgspec.field(default_factory=list)

    def is_empty(self) -> bool:
        return self.rename_index is None and self.change_prefix is None and not self.rename_fields


class ValidationPolicy(_Lenient, frozen=True, kw_only=True):
    require_doc_count_match: bool = True
    require_schema_match: bool = True


class VectorChange(_Lenient, frozen=True, kw_only=True):
    """A vector field whose datatype changes; hash documents are re-encoded, JSON re-indexed."""

    field: str
    """Attribute name in the target schema (after renames)."""
    source_field: str = ""
    """Attribute name in the source schema (equals ``field`` unless renamed)."""
    source_datatype: str
    target_datatype: str
    dims: int
    lossy: bool
    reencode_documents: bool
    """True for hash storage (bytes in the document change), False for JSON."""
    path: str = ""
    """Hash field / JSON path of the vector in the target documents."""
    params: QuantizationParams | None = None
    """For int8/uint8: how floats map to integers (applications encode queries the same way)."""
    quality: list[QualityMeasure] = msgspec.field(default_factory=list)
    """Measured recall@k on a sample of stored vectors, for lossy changes."""


class ServerIdentity(_Lenient, frozen=True, kw_only=True):
    """The server a plan was made against (see :mod:`ftctl.plan.integrity`).

    ``run_id`` names one server process: equal, it is the same server. A restart gives a
    new one, so apply then accepts the server when it answers at the same ``address``, its
    source index has the same ``source_fingerprint`` and the keys the plan sampled exist.
    """

    run_id: str = ""
    """``INFO server`` run_id at planning time."""
    address: str = ""
    """The server's own address of the planner's connection (``CLIENT INFO`` laddr, e.g.
    ``10.0.0.5:6379``): what the server listens on, whatever name the client used."""
    source_fingerprint: str = ""
    """sha256 of the source index's definition as FT.INFO reported it."""


class MigrationPlan(_Lenient, frozen=True, kw_only=True):
    """Everything ``apply`` needs, reviewed by a human first (RedisVL's plan, plus ours)."""

    version: int = 1
    mode: Mode = "drop_recreate"
    mode_reason: str = ""
    source: SourceSnapshot
    requested_changes: PatchChanges | None = None
    merged_target_schema: IndexSchema
    diff_classification: DiffClassification
    rename_operations: RenameOperations = msgspec.field(default_factory=RenameOperations)
    warnings: list[str] = msgspec.field(default_factory=list)
    validation: ValidationPolicy = msgspec.field(default_factory=ValidationPolicy)
    # ours
    vector_changes: list[VectorChange] = msgspec.field(default_factory=list)
    capabilities: Capabilities | None = None
    schema_history_used: bool = False
    """Unreported options of the source were restored from ``ftctl:schema:<index>``."""
    created_at: str = ""
    ftctl_version: str = ""
    redis_url: str = ""
    """The server planned against, with any credential masked."""
    online: OnlinePlan | None = None
    """``mode: online``: strategy, names, memory estimate (see :mod:`ftctl.plan.online`)."""
    server: ServerIdentity | None = None
    """The server planned against; apply refuses another one unless told otherwise."""
    digest: str = ""
    """``sha256:<hex>`` of everything above as reviewed (:func:`ftctl.plan.integrity.seal`);
    apply refuses a plan whose content no longer matches it unless told otherwise. Empty in
    RedisVL plans and plans of earlier releases (applied without that check)."""

    @property
    def supported(self) -> bool:
        return self.diff_classification.supported

    @property
    def requires_data_loss_ack(self) -> bool:
        """Applying needs ``--accept-data-loss``: some vector change is lossy."""
        return any(v.lossy for v in self.vector_changes)

    @property
    def index_name(self) -> str:
        return self.source.index_name


# --- encoding ----------------------------------------------------------------------------


def _normalize_changes(raw: object) -> object:
    if not isinstance(raw, dict):
        return raw
    out = dict(raw)
    for key in ("add_fields", "update_fields"):
        if isinstance(out.get(key), list):
            out[key] = [normalize_field_builtins(f) for f in out[key]]
    return out


def patch_from_builtins(raw: object, *, label: str = "schema patch") -> SchemaPatch:
    """A :class:`SchemaPatch` from decoded YAML/JSON; a bad shape is a UsageError."""
    if isinstance(raw, dict) and "changes" in raw:
        raw = {**raw, "changes": _normalize_changes(raw["changes"])}
    try:
        return msgspec.convert(raw, SchemaPatch)
    except (msgspec.ValidationError, ValueError) as exc:
        raise UsageError(
            f"{label} is not a valid schema patch: {exc}",
            "a patch is version: 1, changes: {add_fields, remove_fields, update_fields, rename_fields, index}",
        ) from None


def load_patch(source: str | Path | bytes) -> SchemaPatch:
    """Load a schema patch YAML file (a path) or YAML bytes."""
    label, raw = read_yaml(source, "schema patch")
    return patch_from_builtins(raw, label=label)


def _changes_builtins(changes: PatchChanges) -> dict[str, Any]:
    raw: dict[str, Any] = msgspec.to_builtins(changes)
    if "add_fields" in raw:
        raw["add_fields"] = [_field_order(f) for f in raw["add_fields"]]
    return raw


def _field_order(raw: dict[str, Any]) -> dict[str, Any]:
    order = ("name", "type", "path", "attrs")
    out = {k: raw[k] for k in order if k in raw and raw[k] != {}}
    out.update({k: v for k, v in raw.items() if k not in order})
    return out


def dump_patch(patch: SchemaPatch) -> bytes:
    """The patch as YAML (``version`` then ``changes``; empty sections omitted)."""
    return msgspec.yaml.encode(
        {"version": patch.version, "changes": _changes_builtins(patch.changes)}
    )


def plan_to_builtins(plan: MigrationPlan) -> dict[str, Any]:
    """The plan as plain data in the guide's reading order (schemas in RedisVL's shape)."""
    raw: dict[str, Any] = msgspec.to_builtins(plan)
    raw["source"]["schema_snapshot"] = schema_to_builtins(plan.source.schema_snapshot)
    raw["merged_target_schema"] = schema_to_builtins(plan.merged_target_schema)
    if plan.requested_changes is not None:
        raw["requested_changes"] = _changes_builtins(plan.requested_changes)
    if raw.get("online") is None:
        raw.pop("online", None)  # drop_recreate plans (and their digests) stay as they were
    if not raw["source"].get("aliases"):
        raw["source"].pop("aliases", None)  # so do plans that keep no alias
    if raw.get("server") is None:
        raw.pop("server", None)  # unsealed plans (RedisVL's, earlier releases') too
    if not raw.get("digest"):
        raw.pop("digest", None)
    order = [
        "version",
        "mode",
        "mode_reason",
        "source",
        "requested_changes",
        "merged_target_schema",
        "diff_classification",
        "rename_operations",
        "warnings",
        "validation",
    ]
    out = {k: raw[k] for k in order if k in raw}
    out.update({k: v for k, v in raw.items() if k not in order})
    return out


def dump_plan(plan: MigrationPlan) -> bytes:
    """The plan as YAML, in the guide's order."""
    return msgspec.yaml.encode(plan_to_builtins(plan))


def plan_from_builtins(raw: object, *, label: str = "plan") -> MigrationPlan:
    """A :class:`MigrationPlan` from decoded YAML/JSON; a bad shape is a UsageError."""
    if isinstance(raw, dict):
        raw = dict(raw)
        if isinstance(raw.get("merged_target_schema"), dict):
            raw["merged_target_schema"] = normalize_builtins(raw["merged_target_schema"])
        source = raw.get("source")
        if isinstance(source, dict) and isinstance(source.get("schema_snapshot"), dict):
            snapshot = normalize_builtins(source["schema_snapshot"])
            source = {**source, "schema_snapshot": snapshot}
            keyspace = source.get("keyspace")
            keyspace = dict(keyspace) if isinstance(keyspace, dict) else {}
            index = snapshot.get("index") if isinstance(snapshot, dict) else None
            # RedisVL plans keep storage type and separator in the schema only.
            if isinstance(index, dict):
                for key in ("storage_type", "key_separator"):
                    if key not in keyspace and key in index:
                        keyspace[key] = index[key]
            source["keyspace"] = keyspace
            raw["source"] = source
        if isinstance(raw.get("requested_changes"), dict):
            raw["requested_changes"] = _normalize_changes(raw["requested_changes"])
    try:
        return msgspec.convert(raw, MigrationPlan)
    except (msgspec.ValidationError, ValueError) as exc:
        raise UsageError(
            f"{label} is not a valid migration plan: {exc}",
            "write a plan with 'ftctl migrate plan' or 'ftctl migrate wizard'",
        ) from None


def load_plan(source: str | Path | bytes) -> MigrationPlan:
    """Load a plan YAML file (a path) or YAML bytes; RedisVL-format plans load too."""
    label, raw = read_yaml(source, "plan")
    return plan_from_builtins(raw, label=label)


def plan_digest(plan: MigrationPlan) -> str:
    """sha256 hex of the plan's canonical JSON (sorted keys); equal plans, equal digests.

    Stable across a YAML round trip, so the journal can refuse to resume a different plan.
    """
    # Digest the plan as a file holds it: a freshly built plan and the same plan read back
    # from YAML can differ in which default values msgspec writes out.
    as_read = plan_from_builtins(msgspec.yaml.decode(dump_plan(plan)))
    canonical = msgspec.json.encode(plan_to_builtins(as_read), order="sorted")
    return hashlib.sha256(canonical).hexdigest()


__all__ = [
    "DiffClassification",
    "FieldRename",
    "FieldUpdate",
    "IndexChange",
    "Keyspace",
    "MigrationPlan",
    "Mode",
    "PatchChanges",
    "RenameOperations",
    "SchemaPatch",
    "ServerIdentity",
    "SourceSnapshot",
    "StatsSnapshot",
    "ValidationPolicy",
    "VectorChange",
    "dump_patch",
    "dump_plan",
    "load_patch",
    "load_plan",
    "patch_from_builtins",
    "plan_digest",
    "plan_from_builtins",
    "plan_to_builtins",
]
