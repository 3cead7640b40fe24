"""Public names in planning (pure): which names a plan keeps, what its warnings say, how
listings order an index's names (``ftctl/plan/names.py`` and the names part of
``ftctl/plan/build.py``; not ``test_names.py``: ``tests/unit/plan`` is not a package, and
``tests/unit/steps/test_names.py`` has that module name)."""

from __future__ import annotations

from typing import Any

import msgspec
from planfixtures import FULL_CAPS, make_snapshot, source_schema

from ftctl.plan import MigrationPlan, dump_plan, load_plan, patch_from_builtins, plan_digest
from ftctl.plan.build import build_plan
from ftctl.plan.names import is_generated, public_name, public_names
from ftctl.plan.online import OnlineOptions

REAL = "products__ftctl_1a2b"
FLOAT16 = {"update_fields": [{"name": "embedding", "attrs": {"datatype": "float16"}}]}
FLAT = {"update_fields": [{"name": "embedding", "attrs": {"algorithm": "flat"}}]}


def _plan(
    changes: dict[str, Any] = FLOAT16,
    *,
    requested: str = "products",
    real: str = "products",
    history: list[str] | None = None,
    targets: dict[str, str] | None = None,
    aliases: list[str] | None = None,
    keep_old_name: bool = True,
    mode: str = "drop_recreate",
) -> MigrationPlan:
    """The plan of ``changes`` for index ``real`` planned as ``requested``; ``history``: the
    aliases its schema history records; ``targets``: where named aliases resolve."""
    snapshot = make_snapshot(
        source_schema(name=real),
        requested_name=requested,
        history_aliases=history or [],
        alias_targets=targets or {},
    )
    options = OnlineOptions(aliases=aliases or [], keep_old_name=keep_old_name, token="t")
    return build_plan(
        snapshot,
        patch_from_builtins({"version": 1, "changes": changes}),
        FULL_CAPS,
        mode=mode,  # type: ignore[arg-type]
        online_options=options,
    )


def _warning(plan: MigrationPlan) -> str:
    (found,) = [w for w in plan.warnings if w.startswith("Aliases:")]
    return found


def test_a_plan_made_through_an_alias_keeps_it_and_the_history_aliases() -> None:
    """Planned through 'products' (an alias of a generated name): it and the recorded alias
    'mine' are kept, in that order, and the warning names both with where they came from."""
    plan = _plan(
        requested="products",
        real=REAL,
        history=["products", "mine"],
        targets={"products": REAL, "mine": REAL},
    )
    assert plan.supported and plan.source.index_name == REAL
    assert plan.source.aliases == ["products", "mine"]
    warning = _warning(plan)
    assert "'products' (the name planned with), 'mine' (schema history)" in warning
    assert f"any other alias of '{REAL}' is dropped with it" in warning
    assert "--alias NAME" in warning


def test_an_alias_nobody_named_is_warned_about() -> None:
    """With no known alias the warning says so and how to keep one (--alias NAME)."""
    plan = _plan()
    assert plan.source.aliases == []
    assert "ftctl knows no alias of this index" in _warning(plan)


def test_a_named_alias_is_kept_when_it_resolves_to_the_source() -> None:
    """--alias works for drop_recreate too: an alias of the source is kept."""
    plan = _plan(aliases=["mine"], targets={"mine": "products"})
    assert plan.supported and plan.source.aliases == ["mine"]
    assert "'mine' (--alias)" in _warning(plan)


def test_a_named_alias_that_does_not_resolve_to_the_source_blocks_the_plan() -> None:
    """An --alias that is missing or names another index blocks the plan with the reason."""
    plan = _plan(aliases=["gone", "theirs"], targets={"gone": "", "theirs": "other"})
    assert not plan.supported
    reasons = plan.diff_classification.blocked_reasons
    assert any("alias 'gone' does not exist, not to 'products'" in r for r in reasons)
    assert any("alias 'theirs' resolves to 'other', not to 'products'" in r for r in reasons)


def test_a_recorded_alias_that_moved_away_is_not_kept_and_is_reported() -> None:
    """A history alias someone moved or deleted is no longer ftctl's: not kept, warned."""
    plan = _plan(history=["moved", "gone"], targets={"moved": "other", "gone": ""})
    assert plan.supported and plan.source.aliases == []
    assert any("'moved' recorded in ftctl's schema history" in w and "resolves to 'other'"
               in w for w in plan.warnings)  # fmt: skip
    assert any("'gone' recorded" in w and "no longer exists" in w for w in plan.warnings)


def test_an_index_rename_keeps_the_old_name_unless_told_not_to() -> None:
    """drop_recreate rename: the old name is kept (as an alias of the new index) by default,
    dropped with keep_old_name=False (--drop-old-name)."""
    rename = {"index": {"name": "catalog"}}
    assert _plan(rename).source.aliases == ["products"]
    assert _plan(rename, keep_old_name=False).source.aliases == []


def test_online_plans_move_the_kept_names_at_cut_over() -> None:
    """Online: the history aliases join the named ones in the online section (moved at
    cut-over); the serving name is not repeated there."""
    plan = _plan(
        FLAT,
        mode="online",
        real=REAL,
        history=["products", "mine"],
        targets={"products": REAL, "mine": REAL, "extra": REAL},
        aliases=["extra"],
    )
    assert plan.online is not None and plan.online.serving_name == "products"
    assert plan.online.aliases == ["mine", "extra"]
    assert plan.source.aliases == ["products", "mine", "extra"]


def test_plans_without_aliases_keep_their_digest() -> None:
    """source.aliases is written only when it holds names, so plans that keep none (and
    every plan of an earlier release) keep their YAML and digest."""
    plan = _plan()
    assert b"\n  aliases:" not in dump_plan(plan)
    older = load_plan(dump_plan(plan))
    assert plan_digest(older) == plan_digest(plan)
    kept = msgspec.structs.replace(
        plan, source=msgspec.structs.replace(plan.source, aliases=["mine"])
    )
    assert load_plan(dump_plan(kept)).source.aliases == ["mine"]
    assert plan_digest(kept) != plan_digest(plan)


def test_public_names_put_the_names_users_know_first() -> None:
    """A user-chosen index name comes first; a generated one (shadow, cut-back) comes after
    its aliases; an index without aliases is known by its own name."""
    assert public_names("docs", ["mine"]) == ["docs", "mine"]
    assert public_names("docs__ftctl_1a2b", ["docs", "mine"]) == [
        "docs",
        "mine",
        "docs__ftctl_1a2b",
    ]
    assert public_name("docs__ftctl_rb12345678", []) == "docs__ftctl_rb12345678"
    assert is_generated("docs__ftctl_1a2b") and not is_generated("docs")
