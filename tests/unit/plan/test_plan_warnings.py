"""The plan's warnings: each one appears when it matters and says what to do (pure)."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from planfixtures import FULL_CAPS

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
