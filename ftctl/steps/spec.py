"""What a run does, as pure data the steps read: derived once from a plan (:func:`run_spec`).

Steps never look at the plan itself; they read a :class:`RunSpec`, whose names are at the
document level (hash field names or JSON paths), not at the index-attribute level, and,
for an online plan, its :class:`OnlineSpec` (names and schemas of the shadow life cycle).
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from ftctl.errors import RefusedError, UsageError
from ftctl.plan.models import MigrationPlan, VectorChange
from ftctl.plan.quantization import INTEGER_DATATYPES, QuantizationParams, normalize_datatype
from ftctl.schema.model import Field, IndexSchema, VectorField


class DocFieldRename(msgspec.Struct, frozen=True, kw_only=True):
    """A document field to rename: hash field names, or JSON paths (``$.a`` → ``$.b``)."""

    old: str
    new: str


class PrefixChange(msgspec.Struct, frozen=True, kw_only=True):
    """Keys starting with ``old`` are renamed to start with ``new`` instead."""

    old: str
    new: str

    def rename(self, key: bytes) -> bytes:
        old = self.old.encode()
        return self.new.encode() + key[len(old) :] if key.startswith(old) else key


class Conversion(msgspec.Struct, frozen=True, kw_only=True):
    """A hash vector field whose bytes are re-encoded from ``source`` to ``target`` datatype.

    ``backup_field`` is the document field before any field rename (what the backup reads),
    ``field`` the one after (what quantize writes).
    """

    backup_field: str
    field: str
    source: str
    target: str
    dims: int
    params: QuantizationParams | None = None


def named(schema: IndexSchema, name: str) -> IndexSchema:
    """``schema`` under another index name."""
    return msgspec.structs.replace(schema, index=msgspec.structs.replace(schema.index, name=name))


class OnlineSpec(msgspec.Struct, frozen=True, kw_only=True):
    """What the online steps need besides the schemas: the names of the shadow life cycle."""

    serving_name: str
    """The name queries use (the source index itself, or an alias of it)."""
    aliases: list[str] = msgspec.field(default_factory=list)
    shadow_name: str = ""
    strategy: str = "shadow"
    added_fields: list[str] = msgspec.field(default_factory=list)
    keep_old_name: bool = True
    postpone_cutover: bool = False
    shadow_mb: float = 0.0
    sample: int = 50
    temp_fields: dict[str, str] = msgspec.field(default_factory=dict)
    """Expand: a vector converted in place (same key, same field) → the temporary field its
    converted bytes live in until the contract (the first shadow index reads it)."""
    final_name: str = ""
    """Expand with temporary fields: the index the contract builds on the final layout."""
    drop_fields: list[str] = msgspec.field(default_factory=list)
    """Fields the contract removes besides the old layout's (a rollback's: the forward
    migration's temporary fields)."""


class RunSpec(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the steps of a run need, nothing they don't."""

    source_index: str
    target_index: str
    storage_type: str
    source_schema: IndexSchema
    target_schema: IndexSchema
    prefix_change: PrefixChange | None = None
    field_renames: list[DocFieldRename] = msgspec.field(default_factory=list)
    attribute_renames: dict[str, str] = msgspec.field(default_factory=dict)
    """Renamed fields by index attribute name (old → new), as queries name them."""
    conversions: list[Conversion] = msgspec.field(default_factory=list)
    batch_size: int = 500
    """Keys per server call (one script call or pipeline chunk)."""
    segment_batches: int = 4
    """Pipeline batches per segment: a segment is the unit of the journal (one file, one
    event, one fsync group) and of resume; its keys go to Redis ``batch_size`` at a time."""
    timeout: float = 3600.0
    """Seconds to wait for the target index to finish indexing."""
    validation_sample: int = 50
    source_failures: int = 0
    """``hash_indexing_failures`` of the source at planning time."""
    expected_docs: int = 0
    """``num_docs + hash_indexing_failures`` of the source at planning time."""
    online: OnlineSpec | None = None
    """The online plan's names; None for drop_recreate."""
    skip_invalid: bool = False
    """Leave vectors that cannot be converted untouched instead of refusing the run."""
    aliases: list[str] = msgspec.field(default_factory=list)
    """The public names the plan keeps (``source.aliases``): they resolve to the source
    before, to the target after apply, to the source again after rollback."""

    def online_names(self) -> OnlineSpec:
        """The online part (the online steps run only for online plans)."""
        if self.online is None:
            raise UsageError(
                "the plan is not an online plan", "re-plan with 'ftctl migrate plan --mode online'"
            )
        return self.online

    @property
    def renamed(self) -> bool:
        """Whether the target index has another name than the source."""
        return self.target_schema.name != self.source_schema.name

    def names_after(self) -> list[str]:
        """Every name the new index answers after the apply (its own aside): for an online
        run once it cut over, for drop_recreate once it created the target."""
        if self.online is None:
            return [a for a in self.aliases if a != self.target_index]
        online = self.online
        names = [] if self.renamed and not online.keep_old_name else [online.serving_name]
        return names + [a for a in online.aliases if a not in names]

    def names_before(self) -> list[str]:
        """Every alias of the source the run keeps: what a drop_recreate rollback points
        at the recreated source (its own name aside)."""
        return [a for a in self.aliases if a != self.source_index]

    @property
    def segment_size(self) -> int:
        return self.batch_size * self.segment_batches

    def chunks(self, keys: Sequence[bytes]) -> list[Sequence[bytes]]:
        """``keys`` in server-call sized chunks (``batch_size`` each)."""
        return [keys[i : i + self.batch_size] for i in range(0, len(keys), self.batch_size)]

    @property
    def needs_keys(self) -> bool:
        """Whether any step touches documents (and so needs the enumerated key list)."""
        return bool(self.prefix_change or self.field_renames or self.conversions)

    def final_key(self, key: bytes) -> bytes:
        return self.prefix_change.rename(key) if self.prefix_change else key


def _checked_conversion(
    change: VectorChange,
    old_field: Field,
    new_field: Field,
    source: IndexSchema,
    target: IndexSchema,
) -> Conversion:
    """The conversion of a plan's vector change, refused (nothing changed) unless its values
    agree with the schemas: a plan edited by hand must not fail after the drop."""
    where = f"plan re-encodes field '{change.field}'"
    hint = "re-create the plan with 'ftctl migrate plan' (plans are not edited by hand)"
    if not isinstance(old_field, VectorField) or not isinstance(new_field, VectorField):
        raise UsageError(f"{where}, which is not a vector field in both schemas", hint)
    for datatype in (change.source_datatype, change.target_datatype):
        normalize_datatype(datatype)
    pairs = [
        ("source_datatype", change.source_datatype, old_field.attrs.datatype),
        ("target_datatype", change.target_datatype, new_field.attrs.datatype),
    ]
    for name, planned, schema in pairs:
        if normalize_datatype(planned) != normalize_datatype(schema):
            raise UsageError(f"{where}: {name} {planned} but the schema says {schema}", hint)
    for side, f in (("source", old_field), ("target", new_field)):
        if change.dims != f.attrs.dims or change.dims <= 0:
            raise UsageError(
                f"{where}: dims {change.dims} but the {side} schema says {f.attrs.dims}", hint
            )
    if normalize_datatype(change.target_datatype) in INTEGER_DATATYPES and change.params is None:
        raise UsageError(f"{where} to {change.target_datatype} without its quantization", hint)
    return Conversion(
        backup_field=source.field_path(old_field),
        field=target.field_path(new_field),
        source=change.source_datatype,
        target=change.target_datatype,
        dims=change.dims,
        params=change.params,
    )


def run_spec(
    plan: MigrationPlan,
    *,
    batch_size: int = 500,
    timeout: float = 3600.0,
    skip_invalid: bool = False,
) -> RunSpec:
    """The :class:`RunSpec` of a plan (hash fields / JSON paths, key prefixes, online names).

    Plan values the run relies on are checked here, before anything runs (UsageError).
    """
    source = plan.source.schema_snapshot
    target = plan.merged_target_schema
    renames = plan.rename_operations
    prefix_change = None
    if renames.change_prefix is not None:
        prefixes = source.prefixes
        if len(prefixes) != 1:
            raise RefusedError(
                f"index '{source.name}' has {len(prefixes)} prefixes; a prefix change needs exactly one",
                "change the prefix of an index with a single prefix",
            )
        prefix_change = PrefixChange(old=prefixes[0], new=renames.change_prefix)
    field_renames = []
    new_names = {r.old_name: r.new_name for r in renames.rename_fields}
    for old_name, new_name in new_names.items():
        old_field, new_field = source.field(old_name), target.field(new_name)
        if old_field is None or new_field is None:
            raise UsageError(
                f"plan renames field '{old_name}' → '{new_name}' but the schemas do not have both",
                "re-create the plan with 'ftctl migrate plan'",
            )
        old_path, new_path = source.field_path(old_field), target.field_path(new_field)
        if old_path != new_path:
            field_renames.append(DocFieldRename(old=old_path, new=new_path))
    conversions = []
    for change in plan.vector_changes:
        if not change.reencode_documents:
            continue
        source_name = change.source_field or change.field
        old_field, new_field = source.field(source_name), target.field(change.field)
        if old_field is None or new_field is None:
            raise UsageError(
                f"plan re-encodes field '{change.field}' but the schemas do not have it",
                "re-create the plan with 'ftctl migrate plan'",
            )
        conversions.append(_checked_conversion(change, old_field, new_field, source, target))
    online = None
    if plan.mode == "online":
        if plan.online is None:
            raise UsageError(
                "the plan says mode: online but has no online section",
                "re-create the plan with 'ftctl migrate plan --mode online'",
            )
        o = plan.online
        # Plans of earlier releases keep only online.aliases; newer ones list them in both.
        kept = [a for a in plan.source.aliases if a not in (o.serving_name, target.name)]
        online = OnlineSpec(
            serving_name=o.serving_name,
            aliases=list(dict.fromkeys([*o.aliases, *kept])),
            shadow_name=o.shadow_name,
            strategy=o.strategy,
            added_fields=list(o.added_fields),
            keep_old_name=o.keep_old_name,
            postpone_cutover=o.postpone_cutover,
            shadow_mb=o.memory.shadow_mb,
            temp_fields=dict(o.temp_fields),
            final_name=o.final_name,
        )
    stats = plan.source.stats_snapshot
    return RunSpec(
        source_index=plan.source.index_name,
        target_index=target.name,
        storage_type=plan.source.keyspace.storage_type,
        source_schema=source,
        target_schema=target,
        prefix_change=prefix_change,
        field_renames=field_renames,
        attribute_renames=new_names,
        conversions=conversions,
        batch_size=batch_size,
        timeout=timeout,
        source_failures=stats.hash_indexing_failures,
        expected_docs=stats.num_docs + stats.hash_indexing_failures,
        online=online,
        skip_invalid=skip_invalid,
        aliases=list(plan.source.aliases),
    )
