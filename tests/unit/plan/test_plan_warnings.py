"""The plan's warnings: each one appears when it matters and says what to do (pure)."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from planfixtures import FULL_CAPS, make_snapshot, source_schema

from ftctl.plan import SchemaPatch, patch_from_builtins
from ftctl.plan.build import build_plan
from ftctl.plan.live import LiveSnapshot


def patch(**changes: Any) -> SchemaPatch:
    return patch_from_builtins({"version": 1, "changes": changes})


ADD_TAG = patch(add_fields=[{"name": "brand", "type": "tag"}])


def _building(snapshot: LiveSnapshot, percent: float) -> LiveSnapshot:
    stats = msgspec.structs.replace(snapshot.source.stats, indexing=True, percent_indexed=percent)
    return msgspec.structs.replace(
        snapshot, source=msgspec.structs.replace(snapshot.source, stats=stats)
    )


@pytest.mark.parametrize(("percent", "shown"), [(0.42, "42%"), (1.54, "99%")])
def test_a_source_still_indexing_shows_a_clamped_share(
    snapshot: LiveSnapshot, percent: float, shown: str
) -> None:
    """A source still building is named with the share `index info` shows: keys written
    during the scan push the server's ratio past 1, and the plan said "154% done"."""
    plan = build_plan(_building(snapshot, percent), ADD_TAG, FULL_CAPS)
    (warning,) = [w for w in plan.warnings if "still indexing" in w]
    assert warning == (
        f"Source index 'products' is still indexing ({shown}): its document count may still change"
    )


GUIDE_ADD = {"name": "category", "type": "tag", "path": "$.category", "attrs": {"separator": "|"}}


def test_the_guides_json_path_on_a_hash_index_warns_with_the_fix(snapshot: LiveSnapshot) -> None:
    """The guide's patch adds `path: $.category`; on a hash index that is a hash field named
    '$.category' and the documents' 'category' is never indexed: the plan says so and how
    to fix it (the plan is still made: someone may mean that field)."""
    plan = build_plan(snapshot, patch(add_fields=[{**GUIDE_ADD, "name": "kind"}]), FULL_CAPS)
    assert plan.diff_classification.supported
    (warning,) = [w for w in plan.warnings if "'$.category'" in w]
    assert warning == (
        "Field 'kind': on a hash index, path '$.category' is the name of a hash field, "
        "literally '$.category' (JSON paths apply to JSON indexes only), so documents' "
        "'category' values will not be indexed; fix: write 'path: category' in the patch "
        "and plan again"
    )
    renamed = build_plan(
        snapshot, patch(add_fields=[{**GUIDE_ADD, "name": "cat"}, {"name": "x", "type": "tag",
                                                                    "path": "$.x"}]), FULL_CAPS
    )  # fmt: skip
    assert any("fix: remove 'path: $.x' (a hash index reads field 'x' by its name)" in w
               for w in renamed.warnings)  # fmt: skip


def test_no_json_path_warning_on_json_or_for_plain_hash_fields() -> None:
    """The same patch on a JSON index, or a hash field without a JSONPath, warns nothing."""
    json_plan = build_plan(
        make_snapshot(source_schema(storage_type="json")),
        patch(add_fields=[{**GUIDE_ADD, "name": "kind"}]),
        FULL_CAPS,
    )
    hash_plan = build_plan(
        make_snapshot(), patch(add_fields=[{"name": "kind", "type": "tag"}]), FULL_CAPS
    )
    for plan in (json_plan, hash_plan):
        assert not [w for w in plan.warnings if "JSON paths apply" in w]


def _unreported(**values: float | bool) -> LiveSnapshot:
    """The planfixtures index as FT.INFO reports it (title's phonetic matcher, the vector's
    ef_runtime, epsilon and initial_cap, skip_initial_scan unknown), with ``values`` read."""
    base = make_snapshot()
    schema = msgspec.structs.replace(
        base.source.schema,
        unreported=[
            "index.key_separator",
            "index.skip_initial_scan",
            "fields.title.attrs.phonetic_matcher",
            "fields.embedding.attrs.initial_cap",
            "fields.embedding.attrs.ef_runtime",
            "fields.embedding.attrs.epsilon",
        ],
    )
    paths = {"phonetic": "fields.title.attrs.phonetic_matcher",
             "ef_runtime": "fields.embedding.attrs.ef_runtime",
             "epsilon": "fields.embedding.attrs.epsilon"}  # fmt: skip
    return msgspec.structs.replace(
        base,
        source=msgspec.structs.replace(base.source, schema=schema),
        unreported_values={paths[k]: v for k, v in values.items()},
    )


SORTABLE = patch(update_fields=[{"name": "title", "attrs": {"sortable": True}}])


def _about_unreported(plan: Any) -> list[str]:
    return [w for w in plan.warnings if "FT.INFO does not report" in w]


def test_unreported_options_at_their_defaults_warn_nothing() -> None:
    """Read back at their defaults (no phonetic, EF_RUNTIME 10, EPSILON 0.01), the options
    FT.INFO cannot show lose nothing on a recreated index: no warning. (It was on nearly
    every plan of an index ftctl had not created.)"""
    plan = build_plan(_unreported(phonetic=False, ef_runtime=10, epsilon=0.01), SORTABLE, FULL_CAPS)
    assert _about_unreported(plan) == []


def test_unreported_options_set_otherwise_are_named_with_their_value_and_fix() -> None:
    """A value read that is not the default is named with the patch line that keeps it; a
    patch that sets the option silences its warning."""
    snapshot = _unreported(phonetic=True, ef_runtime=33, epsilon=0.01)
    assert _about_unreported(build_plan(snapshot, SORTABLE, FULL_CAPS)) == [
        "Field 'title' matches phonetically on the live index, which FT.INFO does not report "
        "(nor the matcher): the new index would not; set it in the patch: update_fields: "
        "[{name: title, attrs: {phonetic_matcher: 'dm:en'}}] (or dm:fr, dm:pt, dm:es)",
        "Field 'embedding' has EF_RUNTIME 33 on the live index, which FT.INFO does not report: "
        "the new index would get the default 10; set it in the patch: update_fields: "
        "[{name: embedding, attrs: {ef_runtime: 33}}]",
    ]
    kept = patch(
        update_fields=[
            {"name": "title", "attrs": {"sortable": True, "phonetic_matcher": "dm:en"}},
            {"name": "embedding", "attrs": {"ef_runtime": 33}},
        ]
    )
    assert _about_unreported(build_plan(snapshot, kept, FULL_CAPS)) == []


def test_unreadable_unreported_options_are_listed_except_the_harmless_ones() -> None:
    """Options nobody could read are listed when they can change query results; the key
    separator, SKIPINITIALSCAN and INITIAL_CAP never are (a recreated index scans every
    document, and the capacity is an allocation hint)."""
    (warning,) = _about_unreported(build_plan(_unreported(ef_runtime=10), SORTABLE, FULL_CAPS))
    assert "fields.title.attrs.phonetic_matcher, fields.embedding.attrs.epsilon (" in warning
    for harmless in ("skip_initial_scan", "initial_cap", "key_separator", "ef_runtime"):
        assert harmless not in warning
