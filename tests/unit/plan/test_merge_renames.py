"""Target-schema mode: a removed and an added field with the same definition are a rename
only when the sampled documents say so, and never when the user states otherwise (pure)."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from planfixtures import FULL_CAPS, make_snapshot, source_schema

from ftctl.errors import UsageError
from ftctl.plan.build import build_plan, merge_request, snapshot_request
from ftctl.plan.models import FieldRename
from ftctl.schema.model import IndexSchema, TextField, from_builtins, schema_to_builtins


def _target(
    renames: dict[str, str], *, extra: list[dict[str, Any]] = (), **index: Any
) -> IndexSchema:  # type: ignore[assignment]
    """The source schema with fields renamed by hand (remove + add) and ``extra`` fields."""
    raw = schema_to_builtins(source_schema(**index))
    for f in raw["fields"]:
        f["name"] = renames.get(f["name"], f["name"])
    raw["fields"] += list(extra)
    return from_builtins(raw)


def _plan(target: IndexSchema, holding: dict[str, int], sampled: int = 10, **kwargs: Any) -> Any:
    snapshot = make_snapshot(field_presence=holding, presence_sample_size=sampled)
    return build_plan(snapshot, target, FULL_CAPS, **kwargs)


def test_documents_holding_the_old_field_only_make_it_a_rename() -> None:
    """title → name, where sampled documents hold title and none name: the plan renames the
    field in every document (a rewrite the downtime estimate counts) and says why, with the
    option to state otherwise."""
    plan = _plan(_target({"title": "name"}), {"title": 10, "name": 0})
    assert plan.diff_classification.supported, plan.diff_classification.blocked_reasons
    assert plan.rename_operations.rename_fields == [FieldRename(old_name="title", new_name="name")]
    assert isinstance(plan.merged_target_schema.field("name"), TextField)
    assert "1 document rewrite pass" in plan.warnings[0]
    assert (
        "Field 'title' is planned as a rename to 'name': the target schema removes 'title' and "
        "adds 'name' with the same definition, and 10 of 10 sampled documents hold 'title' "
        "while none holds 'name', so every document's 'title' value moves to 'name'; if they "
        "are different fields, plan again with --not-a-rename title:name"
    ) in plan.warnings


@pytest.mark.parametrize(
    ("holding", "note"),
    [
        ({"title": 10, "name": 4}, "4 of 10 sampled documents already hold 'name'"),
        ({"title": 0, "name": 0}, None),
        ({"title": 0, "name": 7}, None),
    ],
    ids=["new field already written", "old field empty", "only the new one held"],
)
def test_otherwise_it_is_a_removal_and_an_addition(
    holding: dict[str, int], note: str | None
) -> None:
    """When documents already hold the new field, or none holds the old one, there is
    nothing a rename would move: the plan removes and adds, as the target schema reads
    (it used to be blocked as "that is a rename")."""
    plan = _plan(_target({"title": "name"}), holding)
    assert plan.diff_classification.supported, plan.diff_classification.blocked_reasons
    assert plan.rename_operations.rename_fields == []
    assert plan.merged_target_schema.field("name") is not None
    assert plan.merged_target_schema.field("title") is None
    notes = [w for w in plan.warnings if "'name'" in w and "'title'" in w]
    assert notes == ([] if note is None else [
        f"Field 'title' is removed and 'name' added with the same definition, not as a "
        f"rename: {note}"
    ])  # fmt: skip


def test_stating_not_a_rename_wins_over_the_data() -> None:
    """not_renames=[(old, new)] plans a removal and an addition even where the data says
    rename, and the plan says it was stated."""
    plan = _plan(_target({"title": "name"}), {"title": 10}, not_renames=[("title", "name")])
    assert plan.diff_classification.supported
    assert plan.rename_operations.rename_fields == []
    assert (
        "Field 'title' is removed and 'name' added, as stated (not a rename): documents keep "
        "their 'title' values, no longer indexed"
    ) in plan.warnings


def test_stating_a_pair_that_is_not_suspected_is_a_usage_error() -> None:
    """A not-a-rename pair the target schema never made a suspect (a typo, or a patch) is
    bad input, with the suspects as hint."""
    with pytest.raises(UsageError) as info:
        _plan(_target({"title": "name"}), {"title": 10}, not_renames=[("title", "nme")])
    assert "not a rename 'title:nme'" in info.value.message
    assert info.value.hint == "suspected renames of this plan: title:name"
    with pytest.raises(UsageError) as none:
        _plan(_target({}), {}, not_renames=[("a", "b")])
    assert none.value.hint == "this plan suspects no rename; drop the option"


def test_two_candidates_the_data_cannot_tell_apart_block_until_one_is_stated() -> None:
    """title is removed and two text fields with its definition are added, and documents
    hold title and neither: the plan is blocked naming both pairs; stating one of them is
    not a rename makes the other the rename."""
    heading = {"name": "heading", "type": "text"}
    target = _target({"title": "name"}, extra=(heading,))
    holding = {"title": 10, "name": 0, "heading": 0}
    blocked = _plan(target, holding)
    assert not blocked.diff_classification.supported
    assert blocked.diff_classification.blocked_reasons[0].startswith(
        "fields title:heading, title:name: each pair has the same definition"
    )
    decided = _plan(target, holding, not_renames=[("title", "heading")])
    assert decided.diff_classification.supported, decided.diff_classification.blocked_reasons
    assert decided.rename_operations.rename_fields == [
        FieldRename(old_name="title", new_name="name")
    ]


def test_no_sample_of_a_non_empty_index_blocks_and_an_empty_index_does_not() -> None:
    """Without sampled documents the data says nothing: blocked (with both ways out) when the
    index has documents, a plain removal and addition when it has none."""
    target = _target({"title": "name"})
    unknown = build_plan(make_snapshot(), target, FULL_CAPS)
    (reason,) = unknown.diff_classification.blocked_reasons
    assert "no document could be sampled" in reason
    assert "rename_fields: [{old_name: title, new_name: name}]" in reason
    assert "--not-a-rename title:name" in reason
    full = make_snapshot()
    stats = msgspec.structs.replace(full.source.stats, num_docs=0)
    empty = msgspec.structs.replace(full, source=msgspec.structs.replace(full.source, stats=stats))
    assert build_plan(empty, target, FULL_CAPS).diff_classification.supported


@pytest.mark.parametrize(("storage", "old", "new"), [("hash", "title", "name"),
                                                     ("json", "$.title", "$.name")])  # fmt: skip
def test_the_second_round_samples_both_sides_of_each_suspect(
    storage: str, old: str, new: str
) -> None:
    """The planner's second round of reads asks, for each suspected rename, how many sampled
    documents hold the old field and the new one (hash fields or JSON paths)."""
    source = source_schema(storage_type=storage)
    target = _target({"title": "name"}, storage_type=storage)
    wanted = snapshot_request(source, merge_request(source, target))
    assert wanted.presence == {"title": old, "name": new}
    assert snapshot_request(source, merge_request(source, source)).presence == {}
