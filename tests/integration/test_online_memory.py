"""The online memory preflight on the real server: a shadow that would not fit is refused."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from online_load import INDEX, create

from ftctl.plan import patch_from_builtins
from ftctl.planner import MigrationPlanner

HNSW = {"changes": {"update_fields": [{"name": "emb", "attrs": {"algorithm": "hnsw", "m": 8}}]}}


@pytest.fixture
def tight_maxmemory(r: redis.Redis) -> Iterator[None]:
    """maxmemory set between used_memory and used_memory + the shadow's estimate."""
    create(r, "hash", 20_000, algorithm="FLAT")
    roomy = MigrationPlanner().create_plan(
        INDEX, redis_client=r, schema_patch=patch_from_builtins(HNSW), mode="online"
    )
    assert roomy.online is not None
    shadow = int(roomy.online.memory.shadow_mb * 1024 * 1024)
    used = int(r.info("memory")["used_memory"])
    previous = r.config_get("maxmemory")["maxmemory"]
    r.config_set("maxmemory", used + shadow * 3 // 5)
    try:
        yield
    finally:
        r.config_set("maxmemory", previous)


def test_auto_falls_back_and_online_is_blocked_when_the_shadow_would_not_fit(
    r: redis.Redis, tight_maxmemory: None
) -> None:
    """With maxmemory barely above used_memory, auto plans drop_recreate and says why in
    warnings; an explicit --mode online is blocked with the estimate in the reason."""
    patch = patch_from_builtins(HNSW)
    auto = MigrationPlanner().create_plan(INDEX, redis_client=r, schema_patch=patch, mode="auto")
    assert auto.mode == "drop_recreate"
    assert "memory" in auto.mode_reason.lower()
    assert any("memory" in w.lower() for w in auto.warnings)

    online = MigrationPlanner().create_plan(
        INDEX, redis_client=r, schema_patch=patch, mode="online"
    )
    assert not online.supported
    assert any("maxmemory" in reason for reason in online.diff_classification.blocked_reasons)


def test_online_is_chosen_when_memory_is_ample(r: redis.Redis) -> None:
    """Without a memory limit, auto picks online (shadow) for an algorithm change."""
    create(r, "hash", 500, algorithm="FLAT")
    plan = MigrationPlanner().create_plan(
        INDEX, redis_client=r, schema_patch=patch_from_builtins(HNSW), mode="auto"
    )
    assert plan.mode == "online"
    assert plan.online is not None and plan.online.strategy == "shadow"
    assert plan.online.memory.shadow_mb > 0 and plan.online.memory.fits
