"""The pure batch plan: selection, overlaps, classification, the YAML (no server).

Named ``test_batch_plan.py`` rather than ``test_batch.py``: ``tests/unit/plan`` is not a
package (its tests import ``planfixtures`` from their own directory), so a second
top-level ``test_batch`` module would collide with ``tests/integration/test_batch.py``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest
from planfixtures import FULL_CAPS, SOURCE, make_snapshot

from ftctl.errors import EXIT_REFUSED, UsageError
from ftctl.plan import MigrationPlan, SchemaPatch, patch_from_builtins, plan_digest
from ftctl.plan.batch import (
    BatchPlan,
    BatchPlanIndex,
    OverlapError,
    SnappedIndex,
    batch_plan_digest,
    classify,
    dump_batch_plan,
    find_overlaps,
    load_batch_plan,
    new_batch_id,
    normalized,
    select_indexes,
)
from ftctl.plan.build import build_plan, merge_request, resolve_source
from ftctl.schema.capabilities import Capabilities
from ftctl.schema.model import IndexSchema, from_builtins

A_VIEW_CONFLICT = (
    "a_idx <-> a_view (not in the batch): 'a:' <-> 'a:sub'; both index vector field 'embedding'"
)
LIVE = ["a_idx", "b_idx", "c_idx", "__ftctl_validate_1", "__ftctl_probe", "other"]


def to_float16() -> SchemaPatch:
    return patch_from_builtins(
        {
            "version": 1,
            "changes": {"update_fields": [{"name": "embedding", "attrs": {"datatype": "float16"}}]},
        }
    )


def schema(name: str, *prefixes: str, datatype: str = "float32", **index: Any) -> IndexSchema:
    """SOURCE (text, tag, numeric, HNSW 'embedding') named ``name`` on ``prefixes``."""
    fields = [
        {**f, "attrs": {**f["attrs"], "datatype": datatype}} if f["name"] == "embedding" else f
        for f in SOURCE["fields"]
    ]
    raw = {
        "index": {**SOURCE["index"], "name": name, "prefix": list(prefixes), **index},
        "fields": fields,
    }
    return from_builtins(raw)


def text_only(name: str, *prefixes: str) -> IndexSchema:
    return from_builtins(
        {
            "index": {"name": name, "prefix": list(prefixes), "storage_type": "hash"},
            "fields": [{"name": "title", "type": "text"}],
        }
    )


def snapped(
    index: IndexSchema, patch: SchemaPatch | None = None, *, others: tuple[IndexSchema, ...] = ()
) -> SnappedIndex:
    """What the batch snapshot step returns for ``index`` (snapshot, merged with the patch)."""
    snapshot = make_snapshot(index, other_indexes=list(others))
    source, _ = resolve_source(snapshot)
    merged = merge_request(source, patch or to_float16())
    return SnappedIndex(name=index.name, snapshot=snapshot, merged=merged)


def plan_of(index: IndexSchema, patch: SchemaPatch | None = None) -> MigrationPlan:
    return build_plan(make_snapshot(index), patch or to_float16(), FULL_CAPS)


def run_classify(
    items: list[SnappedIndex],
    *,
    capabilities: Capabilities = FULL_CAPS,
    redis_url: str = "",
) -> BatchPlan:
    return classify(
        items,
        to_float16(),
        capabilities,
        batch_id="batch_20250101_000000_abcd",
        failure_policy="continue_on_error",
        created_at="2025-01-01T00:00:00Z",
        ftctl_version="1.2.3",
        redis_url=redis_url,
    )


# --- selection ------------------------------------------------------------------------------


def test_pattern_selects_matching_indexes_sorted() -> None:
    """A glob selects every live index it matches, sorted by name."""
    assert select_indexes(["c_idx", "a_idx", "other", "b_idx"], pattern="*_idx") == [
        "a_idx",
        "b_idx",
        "c_idx",
    ]


def test_pattern_never_selects_ftctl_internal_indexes() -> None:
    """ftctl's own ``__ftctl_`` indexes are left out even by a pattern that matches them."""
    assert select_indexes(LIVE, pattern="*") == ["a_idx", "b_idx", "c_idx", "other"]


def test_pattern_matches_public_names_and_selects_each_index_once() -> None:
    """A pattern matches the aliases ftctl records (an online migration leaves the real name
    generated) as well as real names; an index is selected once, by the first of its public
    names that matches, and the selection is sorted by those names."""
    live = ["docs__ftctl_1a2b", "zeta"]
    aliases = {"docs__ftctl_1a2b": ["docs", "mine"], "zeta": ["alpha"]}
    assert select_indexes(live, pattern="docs", aliases=aliases) == ["docs"]
    assert select_indexes(live, pattern="mi*", aliases=aliases) == ["mine"]
    assert select_indexes(live, pattern="*", aliases=aliases) == ["docs", "zeta"]
    assert select_indexes(live, pattern="a*", aliases=aliases) == ["alpha"]
    assert select_indexes(live, pattern="*__ftctl_*", aliases=aliases) == ["docs__ftctl_1a2b"]


def test_pattern_matching_nothing_is_a_usage_error() -> None:
    """A pattern that selects no index is refused with a hint, not an empty batch."""
    with pytest.raises(UsageError, match="no index matches 'x_\\*'"):
        select_indexes(LIVE, pattern="x_*")


def test_pattern_is_case_sensitive() -> None:
    """Index names are case-sensitive in Redis, so the glob is too."""
    with pytest.raises(UsageError):
        select_indexes(["A_idx"], pattern="a_*")


def test_comma_list_is_stripped_and_deduplicated_in_order() -> None:
    """``--indexes`` is split on commas; blanks dropped, duplicates kept once, order kept."""
    assert select_indexes(LIVE, indexes=" b_idx, a_idx,,b_idx ,") == ["b_idx", "a_idx"]


def test_sequence_of_names_is_taken_as_given() -> None:
    """A list of names (the Python API) is used as given, even names not on the server:
    the snapshot step reports those as skipped rather than dropping them silently."""
    assert select_indexes(LIVE, indexes=["zeta", "a_idx", "zeta"]) == ["zeta", "a_idx"]


def test_an_explicit_list_may_name_an_internal_index() -> None:
    """Only a pattern excludes ``__ftctl_`` indexes; naming one is the user's explicit choice."""
    assert select_indexes(LIVE, indexes="__ftctl_probe") == ["__ftctl_probe"]


def test_indexes_file_one_name_a_line_with_comments(tmp_path: Path) -> None:
    """An indexes file holds one name a line; ``#`` starts a comment; blanks and repeats go."""
    path = tmp_path / "indexes.txt"
    path.write_text("# the batch\na_idx\n\n  c_idx  # second\na_idx\n   \n")
    assert select_indexes(LIVE, indexes_file=path) == ["a_idx", "c_idx"]


def test_unreadable_indexes_file_is_a_usage_error(tmp_path: Path) -> None:
    """A missing indexes file is a UsageError naming the file, not an OSError."""
    missing = tmp_path / "nope.txt"
    with pytest.raises(UsageError, match="cannot read indexes file"):
        select_indexes(LIVE, indexes_file=missing)


@pytest.mark.parametrize("given", ["", " , ,", []], ids=["empty", "blanks", "empty-list"])
def test_a_list_without_names_is_a_usage_error(given: str | list[str]) -> None:
    """A list (or file) that names no index is refused rather than planning an empty batch."""
    with pytest.raises(UsageError, match="no index names given"):
        select_indexes(LIVE, indexes=given)


@pytest.mark.parametrize(
    "selector",
    [
        {},
        {"pattern": "*", "indexes": "a_idx"},
        {"pattern": "*", "indexes_file": "f.txt"},
        {"indexes": "a_idx", "indexes_file": "f.txt"},
        {"pattern": "*", "indexes": "a_idx", "indexes_file": "f.txt"},
    ],
    ids=["none", "pattern+list", "pattern+file", "list+file", "all three"],
)
def test_exactly_one_selector_is_required(selector: dict[str, Any]) -> None:
    """No selector, or more than one, is a UsageError that names the three options."""
    with pytest.raises(UsageError, match="exactly one of") as raised:
        select_indexes(LIVE, **selector)
    assert "--pattern" in raised.value.hint


# --- overlaps -------------------------------------------------------------------------------


def test_disjoint_prefixes_do_not_overlap() -> None:
    """Indexes on prefixes neither of which starts the other share no keys: no conflict."""
    plans = [plan_of(schema("a_idx", "a:")), plan_of(schema("b_idx", "b:"))]
    assert find_overlaps(plans, []) == ([], [])


def test_nested_prefixes_inside_the_batch_conflict_with_both_named() -> None:
    """Two batch members whose prefixes nest (FT.CREATE PREFIX semantics) are a conflict that
    names both indexes and the overlapping prefix pair."""
    plans = [
        plan_of(schema("products_main", "product:")),
        plan_of(schema("products_premium", "product:premium:")),
    ]
    inside, outside = find_overlaps(plans, [])
    assert inside == ["products_main <-> products_premium: 'product:' <-> 'product:premium:'"]
    assert outside == []


def test_an_index_without_prefix_overlaps_everything() -> None:
    """No prefix means every key, so it overlaps any other batch member."""
    plans = [plan_of(schema("all_idx")), plan_of(schema("b_idx", "b:"))]
    inside, _ = find_overlaps(plans, [])
    assert inside == ["all_idx <-> b_idx: '' <-> 'b:'"]


def test_only_overlapping_pairs_are_named() -> None:
    """With several prefixes, the conflict lists just the pairs that overlap."""
    plans = [plan_of(schema("a_idx", "a:", "x:1")), plan_of(schema("b_idx", "b:", "x:"))]
    inside, _ = find_overlaps(plans, [])
    assert inside == ["a_idx <-> b_idx: 'x:1' <-> 'x:'"]


def test_outside_index_sharing_a_reencoded_vector_conflicts() -> None:
    """A live index outside the batch, on an overlapping prefix, that indexes the vector field
    the batch re-encodes is a conflict naming it as not in the batch."""
    plan = plan_of(schema("a_idx", "a:"))
    view = schema("a_view", "a:sub")
    inside, outside = find_overlaps([plan], [plan.source.schema_snapshot, view])
    assert inside == []
    assert outside == [A_VIEW_CONFLICT]


def test_outside_index_without_the_vector_field_is_no_conflict() -> None:
    """An outside index on the same keys that does not index the re-encoded vector is not
    affected by the new bytes, so the batch may go ahead."""
    plan = plan_of(schema("a_idx", "a:"))
    assert find_overlaps([plan], [text_only("a_titles", "a:")]) == ([], [])


def test_outside_index_on_another_storage_type_is_no_conflict() -> None:
    """A JSON index never reads a hash document's fields, whatever its prefix."""
    plan = plan_of(schema("a_idx", "a:"))
    json_view = schema("a_json", "a:", storage_type="json")
    assert find_overlaps([plan], [json_view]) == ([], [])


def test_outside_check_ignores_plans_that_reencode_nothing() -> None:
    """A plan that rewrites no vector bytes cannot break an outside index's vectors."""
    metric = patch_from_builtins(
        {
            "version": 1,
            "changes": {
                "update_fields": [{"name": "embedding", "attrs": {"distance_metric": "L2"}}]
            },
        }
    )
    plan = plan_of(schema("a_idx", "a:"), metric)
    assert not any(c.reencode_documents for c in plan.vector_changes)
    assert find_overlaps([plan], [schema("a_view", "a:")]) == ([], [])


def test_batch_members_are_not_outside_indexes() -> None:
    """A batch member is checked as a member (prefix overlap), never again as an outsider."""
    plans = [plan_of(schema("a_idx", "a:")), plan_of(schema("b_idx", "b:"))]
    live = [p.source.schema_snapshot for p in plans]
    assert find_overlaps(plans, live) == ([], [])


# --- classification -------------------------------------------------------------------------


def test_an_index_the_patch_changes_is_applicable_with_its_reviewed_plan() -> None:
    """An index the patch changes is applicable: its plan is kept as it reads back from YAML
    and the entry carries that plan's digest and the index's prefixes."""
    batch = run_classify([snapped(schema("a_idx", "a:"))])
    (entry,) = batch.indexes
    plan = batch.plans["a_idx"]
    assert entry == BatchPlanIndex(
        name="a_idx", applicable=True, plan_sha256=plan_digest(plan), prefixes=["a:"]
    )
    assert plan == normalized(plan)
    assert plan.created_at == "2025-01-01T00:00:00Z" and plan.ftctl_version == "1.2.3"
    assert batch.requires_quantization and batch.mode == "drop_recreate"


def test_an_index_selected_by_its_alias_shows_it_beside_the_real_name() -> None:
    """An index snapshotted through an alias is listed by that public name, its real name
    kept (journals and plan files use it), and its plan keeps the alias; the YAML shows the
    public name first and leaves it out when it is the real name."""
    snapshot = make_snapshot(schema("docs__ftctl_1a2b", "a:"), requested_name="docs")
    source, _ = resolve_source(snapshot)
    item = SnappedIndex(
        name="docs__ftctl_1a2b", snapshot=snapshot, merged=merge_request(source, to_float16())
    )
    batch = run_classify([item, snapped(schema("b_idx", "b:"))])
    first, second = batch.indexes
    assert (first.public_name, first.name, second.public_name) == ("docs", "docs__ftctl_1a2b", None)
    assert batch.plans["docs__ftctl_1a2b"].source.aliases == ["docs"]
    raw = msgspec.yaml.decode(dump_batch_plan(batch))["indexes"]
    assert list(raw[0])[:2] == ["public_name", "name"] and "public_name" not in raw[1]
    assert load_batch_plan(dump_batch_plan(batch)).indexes == batch.indexes


def test_batch_plan_records_its_inputs() -> None:
    """The batch plan records the id, policy, patch, time, version and URL it was given."""
    batch = run_classify([snapped(schema("a_idx", "a:"))], redis_url="redis://***@h:1")
    assert batch.batch_id == "batch_20250101_000000_abcd"
    assert batch.failure_policy == "continue_on_error"
    assert batch.shared_patch == to_float16()
    assert batch.created_at == "2025-01-01T00:00:00Z"
    assert batch.ftctl_version == "1.2.3"
    assert batch.redis_url == "redis://***@h:1"


def test_an_index_already_matching_the_patch_is_skipped_as_unchanged() -> None:
    """An index the patch would not change is skipped with that reason, not migrated."""
    batch = run_classify([snapped(schema("b_idx", "b:", datatype="float16"))])
    (entry,) = batch.indexes
    assert not entry.applicable
    assert entry.skip_reason == "the index already matches the patch (nothing to change)"
    assert batch.plans == {} and not batch.requires_quantization


def test_an_index_the_planner_blocks_is_skipped_with_the_blocked_reason() -> None:
    """When the single-index planner blocks an index (here: no FLOAT16 on the server), the
    batch skips it with the planner's reason instead of failing the whole batch."""
    no_float16 = msgspec.structs.replace(FULL_CAPS, vector_types=("FLOAT32", "FLOAT64"))
    batch = run_classify([snapped(schema("a_idx", "a:"))], capabilities=no_float16)
    (entry,) = batch.indexes
    assert not entry.applicable
    assert entry.skip_reason is not None and "FLOAT16" in entry.skip_reason
    assert entry.prefixes == ["a:"]


def test_indexes_the_snapshot_step_could_not_plan_keep_their_reason() -> None:
    """An index that could not be read, or whose merge failed, is skipped with the reason the
    snapshot step gave (prefixes recorded when the index was read)."""
    read = make_snapshot(schema("d_idx", "d:"))
    items = [
        SnappedIndex(name="gone", skip_reason="index 'gone' does not exist"),
        SnappedIndex(name="d_idx", snapshot=read, skip_reason="field 'embedding' not found"),
        SnappedIndex(name="odd"),
    ]
    batch = run_classify(items)
    assert [(e.name, e.applicable, e.skip_reason, e.prefixes) for e in batch.indexes] == [
        ("gone", False, "index 'gone' does not exist", []),
        ("d_idx", False, "field 'embedding' not found", ["d:"]),
        ("odd", False, "not planned", []),
    ]


def test_verdicts_keep_selection_order() -> None:
    """Entries follow the selection order, applicable and skipped mixed as selected."""
    batch = run_classify(
        [
            snapped(schema("c_idx", "c:")),
            SnappedIndex(name="gone", skip_reason="missing"),
            snapped(schema("a_idx", "a:")),
        ]
    )
    assert [(e.name, e.applicable) for e in batch.indexes] == [
        ("c_idx", True),
        ("gone", False),
        ("a_idx", True),
    ]
    assert [e.name for e in batch.applicable] == ["c_idx", "a_idx"]


def test_overlapping_applicable_indexes_refuse_the_batch() -> None:
    """Two applicable members on nested prefixes raise OverlapError (exit 2) naming both,
    rather than each being skipped for the other's sake."""
    main = schema("products_main", "product:")
    premium = schema("products_premium", "product:premium:")
    with pytest.raises(OverlapError) as raised:
        run_classify(
            [snapped(main, others=(premium,)), snapped(premium, others=(main,))],
        )
    error = raised.value
    assert error.exit_code == EXIT_REFUSED
    assert error.conflicts == [
        "products_main <-> products_premium: 'product:' <-> 'product:premium:'"
    ]
    assert error.outside == []
    assert "Refusing to create batch plan: overlapping indexes detected." in error.message


def test_a_skipped_member_is_checked_like_an_outside_index() -> None:
    """A skipped member sharing keys with an applicable one is judged as an outside index:
    no conflict when it indexes no re-encoded vector, a conflict when it does (it would see
    the new bytes although it is not migrated)."""
    main = schema("products_main", "product:")
    titles = text_only("products_titles", "product:premium:")
    batch = run_classify(
        [
            snapped(main, others=(titles,)),
            SnappedIndex(
                name="products_titles",
                snapshot=make_snapshot(titles, other_indexes=[main]),
                skip_reason="field 'embedding' not found",
            ),
        ]
    )
    assert [(e.name, e.applicable) for e in batch.indexes] == [
        ("products_main", True),
        ("products_titles", False),
    ]

    done = schema("products_premium", "product:premium:", datatype="float16")
    with pytest.raises(OverlapError) as raised:
        run_classify([snapped(main, others=(done,)), snapped(done, others=(main,))])
    assert raised.value.conflicts == []
    assert raised.value.outside == [
        "products_main <-> products_premium (not in the batch): 'product:' <-> "
        "'product:premium:'; both index vector field 'embedding'"
    ]


def test_an_outside_index_sharing_the_vector_refuses_the_batch() -> None:
    """A live index seen in a member's snapshot, outside the batch, that shares keys and the
    re-encoded vector refuses the batch with the outside conflict."""
    view = schema("a_view", "a:sub")
    with pytest.raises(OverlapError) as raised:
        run_classify([snapped(schema("a_idx", "a:"), others=(view,))])
    assert raised.value.conflicts == []
    assert raised.value.outside == [A_VIEW_CONFLICT]


# --- the file -------------------------------------------------------------------------------


def test_yaml_round_trip_keeps_every_written_field() -> None:
    """Dumping then loading gives back the same batch plan, except what is never written:
    the in-memory per-index plans and where the file was read from."""
    batch = run_classify(
        [snapped(schema("a_idx", "a:")), SnappedIndex(name="gone", skip_reason="missing")],
        redis_url="redis://h:6379",
    )
    loaded = load_batch_plan(dump_batch_plan(batch))
    assert loaded == msgspec.structs.replace(batch, plans={}, source_path="")
    assert b"plans:" not in dump_batch_plan(batch)


def test_yaml_follows_the_guide_order() -> None:
    """``batch_plan.yaml`` lists its top-level fields in the guide's order."""
    raw = msgspec.yaml.decode(dump_batch_plan(run_classify([snapped(schema("a_idx", "a:"))])))
    assert list(raw) == [
        "version",
        "batch_id",
        "mode",
        "failure_policy",
        "requires_quantization",
        "shared_patch",
        "indexes",
        "created_at",
        "redis_url",
        "ftctl_version",
    ]


def test_digest_is_stable_across_a_yaml_round_trip() -> None:
    """The digest of a batch plan equals that of its reloaded YAML: a re-applied batch plan
    file is recognised as the same batch."""
    batch = run_classify([snapped(schema("a_idx", "a:")), snapped(schema("b_idx", "b:"))])
    again = load_batch_plan(dump_batch_plan(batch))
    assert batch_plan_digest(again) == batch_plan_digest(batch)
    assert re.fullmatch(r"[0-9a-f]{64}", batch_plan_digest(batch))


def test_digest_ignores_unwritten_fields() -> None:
    """Where the file was read from and the in-memory plans do not change the digest."""
    batch = run_classify([snapped(schema("a_idx", "a:"))])
    moved = msgspec.structs.replace(batch, plans={}, source_path="/elsewhere/batch_plan.yaml")
    assert batch_plan_digest(moved) == batch_plan_digest(batch)


def test_digest_covers_each_index_plan_digest() -> None:
    """A changed per-index plan digest changes the batch digest (it covers the plans)."""
    batch = run_classify([snapped(schema("a_idx", "a:"))])
    (entry,) = batch.indexes
    tampered = msgspec.structs.replace(
        batch, indexes=[msgspec.structs.replace(entry, plan_sha256="0" * 64)]
    )
    assert batch_plan_digest(tampered) != batch_plan_digest(batch)


def test_loading_a_file_records_where_it_was_read_from(tmp_path: Path) -> None:
    """A batch plan loaded from a path knows its absolute location (plan paths are relative
    to its directory)."""
    path = tmp_path / "batch_plan.yaml"
    path.write_bytes(dump_batch_plan(run_classify([snapped(schema("a_idx", "a:"))])))
    assert load_batch_plan(path).source_path == str(path.resolve())


@pytest.mark.parametrize(
    "data",
    [b"- a list\n", b"batch_id: x\n", b"batch_id: x\nshared_patch: 3\n", b"{: not yaml"],
    ids=["not a mapping", "no patch", "bad patch", "bad yaml"],
)
def test_a_bad_batch_plan_is_a_usage_error(data: bytes) -> None:
    """A file that is not a batch plan is a one-line UsageError, never a traceback."""
    with pytest.raises(UsageError, match="not a valid") as raised:
        load_batch_plan(data)
    assert "\n" not in raised.value.message


def test_a_missing_batch_plan_file_is_a_usage_error(tmp_path: Path) -> None:
    """A batch plan path that cannot be read is a UsageError pointing at --plan."""
    with pytest.raises(UsageError, match="cannot read batch plan") as raised:
        load_batch_plan(tmp_path / "missing.yaml")
    assert raised.value.hint == "check --plan"


def test_batch_id_has_the_guide_form_plus_random_suffix() -> None:
    """Batch ids read ``batch_YYYYMMDD_HHMMSS_xxxx``; two made in the same second differ
    (with overwhelming likelihood)."""
    now = datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)
    ids = {new_batch_id(now) for _ in range(20)}
    assert all(re.fullmatch(r"batch_20250304_050607_[0-9a-f]{4}", i) for i in ids)
    assert len(ids) > 1


def test_normalized_plan_is_a_fixed_point() -> None:
    """``normalized`` is what a reviewed plan file holds: normalizing again changes nothing,
    and its digest equals the built plan's."""
    plan = plan_of(schema("a_idx", "a:"))
    once = normalized(plan)
    assert normalized(once) == once
    assert plan_digest(once) == plan_digest(plan)
