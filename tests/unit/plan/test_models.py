"""Plan and patch models: loading the guide's files, YAML round trips, the digest."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from ftctl.errors import UsageError
from ftctl.plan import (
    FieldRename,
    MigrationPlan,
    VectorChange,
    dump_patch,
    dump_plan,
    load_patch,
    load_plan,
    plan_digest,
)
from ftctl.schema.model import TagField

FIXTURES = Path(__file__).parents[3] / "fixtures"


def test_guide_plan_loads() -> None:
    """The example plan of RedisVL's guide loads, with our fields defaulted sensibly."""
    plan = load_plan(FIXTURES / "plans" / "guide_plan.yaml")
    assert plan.source.index_name == "myindex"
    assert plan.source.stats_snapshot.num_docs == 10000
    assert plan.source.keyspace.storage_type == "json"
    assert plan.source.keyspace.key_sample == ["doc:1", "doc:2", "doc:3"]
    assert plan.requested_changes is not None
    assert isinstance(plan.requested_changes.add_fields[0], TagField)
    assert plan.diff_classification.supported
    assert plan.mode == "drop_recreate"
    assert not plan.requires_data_loss_ack


def test_plan_yaml_round_trip_keeps_digest() -> None:
    """dump → load gives an equal plan and the same digest (the journal relies on it)."""
    plan = load_plan(FIXTURES / "plans" / "guide_plan.yaml")
    again = load_plan(dump_plan(plan))
    assert again == plan
    assert plan_digest(again) == plan_digest(plan)


def test_digest_changes_with_the_plan() -> None:
    """A different plan has a different digest."""
    plan = load_plan(FIXTURES / "plans" / "guide_plan.yaml")
    other = msgspec.structs.replace(plan, warnings=[*plan.warnings, "x"])
    assert plan_digest(other) != plan_digest(plan)


def test_dump_plan_follows_guide_order() -> None:
    """The YAML reads in the guide's order: version, mode, source, requested_changes, …"""
    text = dump_plan(load_plan(FIXTURES / "plans" / "guide_plan.yaml")).decode()
    keys = [line.split(":")[0] for line in text.splitlines() if line and not line[0].isspace()]
    assert keys[:4] == ["version", "mode", "mode_reason", "source"]
    assert keys.index("requested_changes") < keys.index("merged_target_schema")
    assert keys.index("diff_classification") < keys.index("warnings")


def test_requires_data_loss_ack_for_lossy_vector_change() -> None:
    """A lossy vector change makes the plan require --accept-data-loss."""
    plan = load_plan(FIXTURES / "plans" / "guide_plan.yaml")
    lossy = msgspec.structs.replace(
        plan,
        vector_changes=[
            VectorChange(
                field="embedding",
                source_datatype="float32",
                target_datatype="float16",
                dims=384,
                lossy=True,
                reencode_documents=False,
            )
        ],
    )
    assert lossy.requires_data_loss_ack
    assert isinstance(load_plan(dump_plan(lossy)), MigrationPlan)


def test_guide_patch_loads_and_round_trips() -> None:
    """The guide's patch loads (upper-case HNSW normalized) and survives dump/load."""
    patch = load_patch(FIXTURES / "patches" / "guide_patch.yaml")
    changes = patch.changes
    assert [f.name for f in changes.add_fields] == ["category"]
    assert changes.remove_fields == ["legacy_field"]
    assert changes.update_fields[1].attrs["algorithm"] == "hnsw"
    assert load_patch(dump_patch(patch)) == patch


def test_patch_rename_fields() -> None:
    """rename_fields entries are {old_name, new_name}."""
    patch = load_patch(b"changes:\n  rename_fields:\n  - {old_name: a, new_name: b}\n")
    assert patch.changes.rename_fields == [FieldRename(old_name="a", new_name="b")]


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        (b"changes: [unclosed", "not valid YAML"),
        (b"changes:\n  add_field: []\n", "not a valid schema patch"),
        (b"changes:\n  add_fields:\n  - {name: x, type: nope}\n", "not a valid schema patch"),
    ],
)
def test_bad_patch_is_usage_error(data: bytes, needle: str) -> None:
    """A malformed or misspelled patch is one UsageError (exit 2), not a silent no-op."""
    with pytest.raises(UsageError) as info:
        load_patch(data)
    assert needle in info.value.message
    assert info.value.exit_code == 2


@pytest.mark.parametrize("version", [0, 2, 3])
def test_patch_of_another_version_is_refused(version: int) -> None:
    """Only version 1 (RedisVL's format) is read: another version is one UsageError naming
    the supported one, even when its changes would parse, rather than a guess at what the
    newer format meant."""
    data = f"version: {version}\nchanges:\n  add_fields: [{{name: c, type: tag}}]\n"
    with pytest.raises(UsageError) as info:
        load_patch(data.encode())
    assert info.value.message == (
        f"schema patch version {version} is not supported: ftctl reads version 1 only"
    )
    assert info.value.hint == "write 'version: 1' (RedisVL's patch format)"
    assert load_patch(b"changes: {}\n").version == 1


def test_bad_plan_is_usage_error(tmp_path: Path) -> None:
    """A plan missing its target schema, or an unreadable path, is a UsageError."""
    with pytest.raises(UsageError, match="not a valid migration plan"):
        load_plan(b"version: 1\nsource: {schema_snapshot: {index: {name: a}}}\n")
    with pytest.raises(UsageError, match="cannot read"):
        load_plan(tmp_path / "missing.yaml")


def test_digest_is_stable_for_a_plan_built_from_ft_info() -> None:
    """A plan built in memory (schema parsed from FT.INFO) and the same plan read back from
    its YAML file have one digest, so resuming with the file is never refused."""
    from ftctl.plan.models import (
        DiffClassification,
        MigrationPlan,
        SourceSnapshot,
        dump_plan,
        load_plan,
        plan_digest,
    )
    from ftctl.schema.model import IndexSchema, IndexSettings, TextField

    storage = "".join(["ha", "sh"])  # a str equal to the default but not the same object
    schema = IndexSchema(
        index=IndexSettings(name="docs", prefix="doc:", storage_type=storage),  # type: ignore[arg-type]
        fields=[TextField(name="title")],
    )
    plan = MigrationPlan(
        source=SourceSnapshot(index_name="docs", schema_snapshot=schema),
        merged_target_schema=schema,
        diff_classification=DiffClassification(supported=True),
    )
    assert plan_digest(plan) == plan_digest(load_plan(dump_plan(plan)))
