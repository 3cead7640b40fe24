"""Source schema + request → target schema and rename operations (pure).

Two ways in: a :class:`SchemaPatch` (merged onto the live schema) or a whole target schema
(diffed field by field against the live one). A patch naming a field the index does not have
is the user's mistake, raised as :class:`UsageError` before anything is planned.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from ftctl.errors import UsageError
from ftctl.plan.models import FieldRename, PatchChanges, RenameOperations, SchemaPatch
from ftctl.schema.model import FIELD_TYPES, BaseField, Field, IndexSchema, VectorField

_ALGORITHM_PARAMS: dict[str, tuple[str, ...]] = {
    "flat": ("block_size",),
    "hnsw": ("m", "ef_construction", "ef_runtime", "epsilon"),
    "svs-vamana": (
        "graph_max_degree",
        "construction_window_size",
        "search_window_size",
        "compression",
        "reduce",
        "training_threshold",
        "epsilon",
    ),
}


class Merged(msgspec.Struct, frozen=True, kw_only=True):
    """The target schema, where each target field came from, and the renames to perform."""

    target: IndexSchema
    renames: RenameOperations
    origin: dict[str, str]
    """Target field name → source field name, for fields that exist in both (renamed or not)."""
    suspected_renames: list[FieldRename] = msgspec.field(default_factory=list)
    """Target-schema mode: a removed and an added field identical apart from the name, not
    yet decided (see :func:`decide_renames`)."""


def field_kind(f: BaseField) -> str:
    kind = f.__struct_config__.tag
    assert isinstance(kind, str)
    return kind


def _names(schema: IndexSchema) -> str:
    return ", ".join(f.name for f in schema.fields) or "(none)"


def _missing(name: str, section: str, source: IndexSchema) -> UsageError:
    return UsageError(
        f"{section} names field '{name}', which index '{source.name}' does not have",
        f"the index's fields are: {_names(source)}",
    )


def _field_from(raw: dict[str, Any], name: str) -> Field:
    try:
        field: Field = msgspec.convert(raw, Field)
    except (msgspec.ValidationError, ValueError) as exc:
        raise UsageError(
            f"update of field '{name}' gives an invalid definition: {exc}",
            "check the attribute names and values against the field type",
        ) from None
    return field


def _default_path(schema: IndexSchema, name: str) -> str:
    return f"$.{name}" if schema.storage_type == "json" else name


def _renamed(f: Field, new_name: str, schema: IndexSchema) -> Field:
    path = f.path
    if path is not None and path == _default_path(schema, f.name):
        path = None
    return msgspec.structs.replace(f, name=new_name, path=path)


def _updated(f: Field, kind: str | None, path: str | None, attrs: dict[str, Any]) -> Field:
    raw: dict[str, Any] = msgspec.to_builtins(f)
    current = dict(raw.get("attrs", {}))
    if kind is not None and kind.lower() != field_kind(f):
        raw["type"] = kind.lower()
        current = {}
    new_algorithm = attrs.get("algorithm")
    if (
        isinstance(f, VectorField)
        and isinstance(new_algorithm, str)
        and new_algorithm != f.attrs.algorithm
    ):
        # Switching algorithms drops the old one's parameters unless the update restates them.
        for param in _ALGORITHM_PARAMS.get(f.attrs.algorithm, ()):
            if param not in attrs:
                current.pop(param, None)
    current.update(attrs)
    raw["attrs"] = current
    if path is not None:
        raw["path"] = path
    return _field_from(raw, f.name)


def merge_patch(source: IndexSchema, patch: SchemaPatch) -> Merged:
    """Apply ``patch`` to ``source``: removals, renames, updates, additions, index changes."""
    changes: PatchChanges = patch.changes
    fields: list[Field] = list(source.fields)
    origin = {f.name: f.name for f in fields}

    def index_of(name: str) -> int | None:
        return next((i for i, f in enumerate(fields) if f.name == name), None)

    for name in changes.remove_fields:
        i = index_of(name)
        if i is None:
            raise _missing(name, "remove_fields", source)
        origin.pop(fields[i].name, None)
        del fields[i]

    renamed_to: dict[str, str] = {}
    for rename in changes.rename_fields:
        i = index_of(rename.old_name)
        if i is None:
            raise _missing(rename.old_name, "rename_fields", source)
        if rename.new_name == rename.old_name:
            raise UsageError(
                f"rename_fields renames '{rename.old_name}' to itself",
                "give a different new_name or drop the entry",
            )
        if index_of(rename.new_name) is not None:
            raise UsageError(
                f"rename_fields renames '{rename.old_name}' to '{rename.new_name}', which the schema already has",
                f"remove or rename '{rename.new_name}' first",
            )
        fields[i] = _renamed(fields[i], rename.new_name, source)
        origin[rename.new_name] = origin.pop(rename.old_name)
        renamed_to[rename.old_name] = rename.new_name

    for update in changes.update_fields:
        name = renamed_to.get(update.name, update.name)
        i = index_of(name)
        if i is None:
            raise _missing(update.name, "update_fields", source)
        attrs = {
            k: v.lower()
            if k in ("algorithm", "datatype", "distance_metric") and isinstance(v, str)
            else v
            for k, v in update.attrs.items()
        }
        if attrs.get("algorithm") in ("svs", "svs_vamana"):
            attrs["algorithm"] = "svs-vamana"
        fields[i] = _updated(fields[i], update.type, update.path, attrs)

    for added in changes.add_fields:
        if index_of(added.name) is not None:
            raise UsageError(
                f"add_fields adds '{added.name}', which the schema already has",
                "use update_fields to change an existing field",
            )
        fields.append(added)

    settings = source.index
    rename_index: str | None = None
    change_prefix: str | None = None
    if changes.index is not None:
        if changes.index.name and changes.index.name != source.name:
            rename_index = changes.index.name
            settings = msgspec.structs.replace(settings, name=rename_index)
        if changes.index.prefix is not None and [changes.index.prefix] != source.prefixes:
            change_prefix = changes.index.prefix
            settings = msgspec.structs.replace(settings, prefix=change_prefix)
    try:
        target = IndexSchema(index=settings, fields=fields, unreported=list(source.unreported))
    except ValueError as exc:
        raise UsageError(f"the patched schema is invalid: {exc}", "fix the patch") from None
    renames = RenameOperations(
        rename_index=rename_index,
        change_prefix=change_prefix,
        rename_fields=list(changes.rename_fields),
    )
    return Merged(target=target, renames=renames, origin=origin)


def _definition(f: Field, schema: IndexSchema) -> dict[str, Any]:
    """A field without its name, its path made explicit only when it is not the default."""
    raw: dict[str, Any] = msgspec.to_builtins(f)
    raw.pop("name", None)
    if f.path is None or f.path == _default_path(schema, f.name):
        raw.pop("path", None)
    return raw


def diff_target(source: IndexSchema, target: IndexSchema) -> Merged:
    """Target-schema mode: match fields by name, derive index renames, flag hidden renames."""
    source_names = {f.name for f in source.fields}
    target_names = {f.name for f in target.fields}
    origin = {name: name for name in target_names & source_names}
    removed = [f for f in source.fields if f.name not in target_names]
    added = [f for f in target.fields if f.name not in source_names]
    suspected: list[FieldRename] = []
    for old in removed:
        for new in added:
            if _definition(old, source) == _definition(new, target):
                suspected.append(FieldRename(old_name=old.name, new_name=new.name))
    rename_index = target.name if target.name != source.name else None
    change_prefix: str | None = None
    if target.prefixes != source.prefixes and len(target.prefixes) == 1:
        change_prefix = target.prefixes[0]
    # Options FT.INFO could not report stay unknown unless the target file sets them.
    target = msgspec.structs.replace(target, unreported=[])
    return Merged(
        target=target,
        renames=RenameOperations(rename_index=rename_index, change_prefix=change_prefix),
        origin=origin,
        suspected_renames=suspected,
    )


@dataclass(frozen=True)
class RenameEvidence:
    """What sampled documents say about suspected renames."""

    sample_size: int
    """Documents sampled (0: none were read)."""
    holding: dict[str, int]
    """Field name (a suspected rename's old or new one) → sampled documents that hold it."""
    num_docs: int = 0
    """Documents in the source index: with none, there is nothing a rename would move."""


@dataclass(frozen=True)
class RenameDecision:
    """Suspected renames decided: the merge with the renames the data shows, why, and what
    stays undecided (blocked)."""

    merged: Merged
    warnings: list[str]
    blocked: list[str]


def _pair(r: FieldRename) -> str:
    return f"{r.old_name}:{r.new_name}"


def decide_renames(
    merged: Merged, evidence: RenameEvidence, not_renames: Sequence[tuple[str, str]] = ()
) -> RenameDecision:
    """Decide each suspected rename of a target schema from the data (pure).

    A removed and an added field with the same definition are a rename only when the data
    says so: sampled documents hold the old field and none holds the new one (a real rename
    has its values still to move). Then the plan renames the field in every document.
    Otherwise (documents already hold the new field, or none holds the old one) they are a
    removal and an addition, as the target schema reads. ``not_renames`` (``(old, new)``
    pairs) states a pair is not a rename: it is a removal and an addition whatever the data
    says. Undecidable pairs are blocked: an old field the data would rename to two new ones
    (or the reverse), or documents that could not be sampled. A pair in ``not_renames`` that
    is not a suspected rename is a UsageError.
    """
    suspected = {(r.old_name, r.new_name): r for r in merged.suspected_renames}
    stated = set(not_renames)
    for old, new in not_renames:
        if (old, new) not in suspected:
            known = ", ".join(_pair(r) for r in merged.suspected_renames)
            raise UsageError(
                f"not a rename '{old}:{new}': the target schema does not remove '{old}' and "
                f"add '{new}' with the same definition, so it was never taken for a rename",
                f"suspected renames of this plan: {known}"
                if known
                else "this plan suspects no rename; drop the option",
            )
    warnings: list[str] = []
    blocked: list[str] = []
    undecided: list[FieldRename] = []
    data_says: list[FieldRename] = []
    for (old, new), rename in suspected.items():
        held_old, held_new = evidence.holding.get(old, 0), evidence.holding.get(new, 0)
        if (old, new) in stated:
            warnings.append(
                f"Field '{old}' is removed and '{new}' added, as stated (not a rename): "
                f"documents keep their '{old}' values, no longer indexed"
            )
        elif evidence.sample_size == 0 and evidence.num_docs > 0:
            undecided.append(rename)
            blocked.append(
                f"field '{old}' is removed and field '{new}' added with the same definition, "
                "and no document could be sampled to tell whether that is a rename; "
                f"workaround: a schema patch with rename_fields: [{{old_name: {old}, "
                f"new_name: {new}}}], or state it is not one (--not-a-rename {old}:{new})"
            )
        elif held_old and not held_new:
            data_says.append(rename)
        elif held_old and held_new:
            warnings.append(
                f"Field '{old}' is removed and '{new}' added with the same definition, not as "
                f"a rename: {held_new} of {evidence.sample_size} sampled documents already "
                f"hold '{new}'"
            )
    accepted: list[FieldRename] = []
    for rename in data_says:
        rivals = [
            r
            for r in data_says
            if r is not rename and (r.old_name == rename.old_name or r.new_name == rename.new_name)
        ]
        if not rivals:
            accepted.append(rename)
            continue
        undecided.append(rename)
        pairs = ", ".join(sorted(_pair(r) for r in [rename, *rivals]))
        reason = (
            f"fields {pairs}: each pair has the same definition and sampled documents hold "
            "the old field and not the new one, so the data cannot tell which is the rename; "
            "workaround: a schema patch with rename_fields naming the rename, or "
            "--not-a-rename OLD:NEW for each pair that is not one"
        )
        if reason not in blocked:
            blocked.append(reason)
    for rename in accepted:
        old, new = rename.old_name, rename.new_name
        warnings.append(
            f"Field '{old}' is planned as a rename to '{new}': the target schema removes "
            f"'{old}' and adds '{new}' with the same definition, and "
            f"{evidence.holding.get(old, 0)} of {evidence.sample_size} sampled documents hold "
            f"'{old}' while none holds '{new}', so every document's '{old}' value moves to "
            f"'{new}'; if they are different fields, plan again with --not-a-rename {old}:{new}"
        )
    origin = dict(merged.origin)
    for rename in accepted:
        origin[rename.new_name] = rename.old_name
    renames = msgspec.structs.replace(
        merged.renames, rename_fields=[*merged.renames.rename_fields, *accepted]
    )
    decided = msgspec.structs.replace(
        merged, renames=renames, origin=origin, suspected_renames=undecided
    )
    return RenameDecision(merged=decided, warnings=warnings, blocked=blocked)


__all__ = [
    "FIELD_TYPES",
    "Merged",
    "RenameDecision",
    "RenameEvidence",
    "decide_renames",
    "diff_target",
    "field_kind",
    "merge_patch",
]
