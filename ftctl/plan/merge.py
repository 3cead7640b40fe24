"""Source schema + request → target schema and rename operations (pure).

Two ways in: a :class:`SchemaPatch` (merged onto the live schema) or a whole target schema
(diffed field by field against the live one). A patch naming a field the index does not have
is the user's mistake, raised as :class:`UsageError` before anything is planned.
"""

from __future__ import annotations

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
    """Target-schema mode: a removed and an added field identical apart from the name."""


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


__all__ = ["FIELD_TYPES", "Merged", "diff_target", "field_kind", "merge_patch"]
