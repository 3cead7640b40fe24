"""Diff classification, one row per supported and per blocked change (pure, no server)."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from planfixtures import FULL_CAPS, SOURCE, make_snapshot, source_schema

from ftctl.errors import UsageError
from ftctl.plan import SchemaPatch, patch_from_builtins
from ftctl.plan.build import build_plan
from ftctl.plan.live import LiveSnapshot
from ftctl.schema.capabilities import Capabilities
from ftctl.schema.model import IndexSchema, TagField, VectorField, from_builtins, schema_to_builtins


def patch(**changes: Any) -> SchemaPatch:
    return patch_from_builtins({"version": 1, "changes": changes})


def upd(name: str, **attrs: Any) -> dict[str, Any]:
    return {"name": name, "attrs": attrs}


SUPPORTED: list[tuple[str, dict[str, Any]]] = [
    ("add text", {"add_fields": [{"name": "body", "type": "text"}]}),
    ("add tag", {"add_fields": [{"name": "brand", "type": "tag", "attrs": {"separator": "|"}}]}),
    ("add numeric", {"add_fields": [{"name": "stock", "type": "numeric"}]}),
    ("add geo", {"add_fields": [{"name": "where", "type": "geo"}]}),
    ("add geoshape", {"add_fields": [{"name": "area", "type": "geoshape"}]}),
    ("remove field", {"remove_fields": ["price"]}),
    ("rename field", {"rename_fields": [{"old_name": "title", "new_name": "name"}]}),
    ("change prefix", {"index": {"prefix": "item:"}}),
    ("rename index", {"index": {"name": "products_v2"}}),
    ("tag separator", {"update_fields": [upd("category", separator=";")]}),
    ("text weight + nostem", {"update_fields": [upd("title", weight=2.0, no_stem=True)]}),
    ("sortable", {"update_fields": [upd("price", sortable=True)]}),
    ("hnsw → flat", {"update_fields": [upd("embedding", algorithm="FLAT")]}),
    ("hnsw → svs-vamana", {"update_fields": [upd("embedding", algorithm="SVS-VAMANA")]}),
    ("metric", {"update_fields": [upd("embedding", distance_metric="L2")]}),
    ("hnsw params", {"update_fields": [upd("embedding", m=32, ef_construction=400)]}),
    ("float32 → float64", {"update_fields": [upd("embedding", datatype="float64")]}),
    ("float32 → float16", {"update_fields": [upd("embedding", datatype="float16")]}),
    ("float32 → bfloat16", {"update_fields": [upd("embedding", datatype="bfloat16")]}),
    ("float32 → int8", {"update_fields": [upd("embedding", datatype="int8")]}),
    ("float32 → uint8", {"update_fields": [upd("embedding", datatype="uint8")]}),
]


@pytest.mark.parametrize(("label", "changes"), SUPPORTED, ids=[s[0] for s in SUPPORTED])
def test_supported_change(label: str, changes: dict[str, Any], snapshot: LiveSnapshot) -> None:
    """Each change of the guide's 'What's Supported' table yields a supported plan."""
    plan = build_plan(snapshot, patch(**changes), FULL_CAPS)
    assert plan.diff_classification.supported, plan.diff_classification.blocked_reasons
    assert plan.diff_classification.blocked_reasons == []
    assert plan.warnings[0].startswith("Index downtime is required")
    assert plan.merged_target_schema != plan.source.schema_snapshot, label


def _target(mutate: Any, base: IndexSchema | None = None) -> IndexSchema:
    raw = schema_to_builtins(base or source_schema())
    mutate(raw)
    return from_builtins(raw)


def _set_attr(name: str, **attrs: Any) -> Any:
    def mutate(raw: dict[str, Any]) -> None:
        for f in raw["fields"]:
            if f["name"] == name:
                f.setdefault("attrs", {}).update(attrs)

    return mutate


def _set_type(name: str, kind: str) -> Any:
    def mutate(raw: dict[str, Any]) -> None:
        for f in raw["fields"]:
            if f["name"] == name:
                f["type"] = kind
                f.pop("attrs", None)

    return mutate


def _json_source() -> IndexSchema:
    return source_schema(storage_type="json")


def _swap_field(old: str, new: str) -> Any:
    def mutate(raw: dict[str, Any]) -> None:
        for f in raw["fields"]:
            if f["name"] == old:
                f["name"] = new

    return mutate


def _shared_index() -> IndexSchema:
    return from_builtins(
        {
            "index": {"name": "other_idx", "prefix": "doc:premium:"},
            "fields": [
                {"name": "embedding", "type": "vector", "attrs": {"dims": 4}},
            ],
        }
    )


NO_INT8 = msgspec.structs.replace(
    FULL_CAPS, vector_types=("FLOAT32", "FLOAT64", "FLOAT16", "BFLOAT16")
)
NO_SVS = msgspec.structs.replace(FULL_CAPS, algorithms=("FLAT", "HNSW"))
NO_GEOSHAPE = msgspec.structs.replace(FULL_CAPS, field_types=("TEXT", "TAG", "NUMERIC", "GEO"))

# label, request builder, snapshot overrides, capabilities, words the reason must contain
BLOCKED: list[tuple[str, Any, dict[str, Any], Capabilities, list[str]]] = [
    ("vector dims", lambda: patch(update_fields=[upd("embedding", dims=8)]), {}, FULL_CAPS,
     ["'embedding'", "dims", "re-embed"]),
    ("storage type", lambda: _target(lambda r: r["index"].update(storage_type="json")), {},
     FULL_CAPS, ["'products'", "storage type"]),
    ("key separator", lambda: _target(lambda r: r["index"].update(key_separator="_")), {},
     FULL_CAPS, ["'products'", "key separator"]),
    ("new vector field", lambda: patch(add_fields=[
        {"name": "img", "type": "vector", "attrs": {"dims": 4}}]), {}, FULL_CAPS,
     ["'img'", "new vector field"]),
    ("tag → text", lambda: patch(update_fields=[{"name": "category", "type": "text"}]), {},
     FULL_CAPS, ["'category'", "tag → text"]),
    ("json path change", lambda: _target(lambda r: r["fields"][0].update(path="$.meta.title"),
                                         _json_source()),
     {"source_schema": _json_source}, FULL_CAPS, ["'title'", "JSON path"]),
    ("capability INT8", lambda: patch(update_fields=[upd("embedding", datatype="int8")]), {},
     NO_INT8, ["'embedding'", "INT8", "capability"]),
    ("capability SVS", lambda: patch(update_fields=[upd("embedding", algorithm="svs-vamana")]),
     {}, NO_SVS, ["'embedding'", "SVS-VAMANA"]),
    ("capability GEOSHAPE", lambda: patch(add_fields=[{"name": "area", "type": "geoshape"}]),
     {}, NO_GEOSHAPE, ["'area'", "GEOSHAPE"]),
    ("server rejects", lambda: patch(update_fields=[upd("title", weight=2.0)]),
     {"target_rejection": "Bad arguments for WEIGHT"}, FULL_CAPS,
     ["'products'", "rejects", "Bad arguments for WEIGHT"]),
    ("rename onto existing index", lambda: patch(index={"name": "taken"}),
     {"taken_names": ["taken"]}, FULL_CAPS, ["'taken'", "already exists"]),
    ("prefix with keys", lambda: patch(index={"prefix": "used:"}),
     {"prefix_key_counts": {"used:": 3}}, FULL_CAPS, ["'used:'", "3 keys"]),
    ("field rename collision", lambda: patch(rename_fields=[{"old_name": "title", "new_name": "name"}]),
     {"field_collisions": {"name": ["doc:1"]}, "collision_sample_size": 5}, FULL_CAPS,
     ["'title'", "'name'", "doc:1"]),
    ("shared keys", lambda: patch(update_fields=[upd("embedding", datatype="float16")]),
     {"other_indexes": [_shared_index()]}, FULL_CAPS, ["'embedding'", "'other_idx'", "corrupt"]),
    ("float16 overflow", lambda: patch(update_fields=[upd("embedding", datatype="float16")]),
     {"scale": 1e6}, FULL_CAPS, ["'embedding'", "float16", "inf"]),
    ("rename as remove+add", lambda: _target(_swap_field("title", "name")), {}, FULL_CAPS,
     ["'title'", "'name'", "rename_fields"]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("label", "request_of", "overrides", "caps", "words"), BLOCKED, ids=[b[0] for b in BLOCKED]
)
def test_blocked_change(
    label: str,
    request_of: Any,
    overrides: dict[str, Any],
    caps: Capabilities,
    words: list[str],
) -> None:
    """Each blocked change gives supported=false and a reason naming the field/index."""
    overrides = dict(overrides)
    schema = overrides.pop("source_schema", source_schema)()
    scale = overrides.pop("scale", 1.0)
    snap = make_snapshot(schema, scale=scale, **overrides)
    plan = build_plan(snap, request_of(), caps)
    assert not plan.diff_classification.supported, label
    reasons = plan.diff_classification.blocked_reasons
    assert any(all(w in r for w in words) for r in reasons), reasons


def test_shared_keys_ignores_disjoint_prefix() -> None:
    """An index on a disjoint prefix does not block quantization."""
    other = msgspec.structs.replace(
        _shared_index(),
        index=msgspec.structs.replace(_shared_index().index, prefix="user:"),
    )
    plan = build_plan(
        make_snapshot(other_indexes=[other]),
        patch(update_fields=[upd("embedding", datatype="float16")]),
        FULL_CAPS,
    )
    assert plan.diff_classification.supported


def test_shared_keys_empty_prefix_overlaps_everything() -> None:
    """An index with the empty prefix covers our keys and blocks re-encoding."""
    other = msgspec.structs.replace(
        _shared_index(), index=msgspec.structs.replace(_shared_index().index, prefix="")
    )
    plan = build_plan(
        make_snapshot(other_indexes=[other]),
        patch(update_fields=[upd("embedding", datatype="int8")]),
        FULL_CAPS,
    )
    assert not plan.diff_classification.supported
    assert "'other_idx'" in plan.diff_classification.blocked_reasons[0]


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"remove_fields": ["nope"]}, "remove_fields names field 'nope'"),
        ({"update_fields": [upd("nope", sortable=True)]}, "update_fields names field 'nope'"),
        (
            {"rename_fields": [{"old_name": "nope", "new_name": "x"}]},
            "rename_fields names field 'nope'",
        ),
        ({"add_fields": [{"name": "title", "type": "text"}]}, "already has"),
        ({"update_fields": [upd("title", bogus=1)]}, "invalid definition"),
    ],
)
def test_patch_naming_missing_field_is_usage_error(
    changes: dict[str, Any], needle: str, snapshot: LiveSnapshot
) -> None:
    """A patch that names a field the index lacks is a UsageError with the field list as hint."""
    with pytest.raises(UsageError) as info:
        build_plan(snapshot, patch(**changes), FULL_CAPS)
    assert needle in info.value.message
    assert info.value.hint


def test_rename_updates_merged_schema_and_operations(snapshot: LiveSnapshot) -> None:
    """A rename appears in rename_operations and the target has the new name, same type."""
    plan = build_plan(
        snapshot,
        patch(
            rename_fields=[{"old_name": "category", "new_name": "kind"}],
            update_fields=[upd("category", sortable=True)],
            index={"name": "v2", "prefix": "item:"},
        ),
        FULL_CAPS,
    )
    assert plan.rename_operations.rename_fields[0].new_name == "kind"
    assert plan.rename_operations.rename_index == "v2"
    assert plan.rename_operations.change_prefix == "item:"
    kind = plan.merged_target_schema.field("kind")
    assert isinstance(kind, TagField) and kind.attrs.sortable
    assert plan.merged_target_schema.field("category") is None


def test_algorithm_switch_drops_old_params(snapshot: LiveSnapshot) -> None:
    """HNSW → FLAT drops m/ef_construction instead of failing validation."""
    plan = build_plan(
        snapshot, patch(update_fields=[upd("embedding", algorithm="flat")]), FULL_CAPS
    )
    emb = plan.merged_target_schema.field("embedding")
    assert isinstance(emb, VectorField)
    assert emb.attrs.algorithm == "flat" and emb.attrs.m is None


def test_target_schema_mode_same_schema_is_supported(snapshot: LiveSnapshot) -> None:
    """Target-schema mode with the unchanged schema plans no renames and no vector change."""
    plan = build_plan(snapshot, from_builtins(SOURCE), FULL_CAPS)
    assert plan.diff_classification.supported
    assert plan.rename_operations.is_empty()
    assert plan.vector_changes == []
    assert plan.requested_changes is None


def test_capability_reasons_name_the_search_module_release() -> None:
    """A missing datatype or algorithm names the Search module's release this server runs
    and the one that brought the feature; a Redis version would mislead (Redis 8.2 may run
    Search 2.10)."""
    caps = msgspec.structs.replace(NO_SVS, vector_types=NO_INT8.vector_types)
    assert caps.search_release == "2.10.5"
    plan = build_plan(
        make_snapshot(),
        patch(update_fields=[upd("embedding", datatype="uint8", algorithm="svs-vamana")]),
        caps,
    )
    assert plan.diff_classification.blocked_reasons[:2] == [
        "field 'embedding': this server's Search module (2.10.5) does not support vector "
        "datatype UINT8 (capability probe); workaround: UINT8 needs the Search module 8.0+ "
        "(bundled with Redis 8.0+): upgrade the Search module or choose another datatype",
        "field 'embedding': this server's Search module (2.10.5) does not support algorithm "
        "SVS-VAMANA (capability probe); workaround: SVS-VAMANA needs the Search module 8.2+ "
        "(bundled with Redis 8.2+): upgrade the Search module or choose FLAT/HNSW",
    ]
