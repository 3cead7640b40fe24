"""The planner against the real server: blocked-before-anything cases change nothing."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import numpy as np
import pytest
import redis

from ftctl.errors import UsageError
from ftctl.plan import SchemaPatch, patch_from_builtins
from ftctl.planner import AsyncMigrationPlanner, MigrationPlanner
from ftctl.schema.model import from_builtins
from ftctl.steps.history import encode_history, history_key

DIMS = 8


def _patch(**changes: object) -> SchemaPatch:
    return patch_from_builtins({"version": 1, "changes": changes})


def _create(r: redis.Redis, name: str, prefix: str, *extra: str, dtype: str = "FLOAT32") -> None:
    r.execute_command(
        "FT.CREATE", name, "ON", "HASH", "PREFIX", "1", prefix, "SCHEMA",
        "title", "TEXT", "category", "TAG",
        "embedding", "VECTOR", "HNSW", "6", "TYPE", dtype, "DIM", str(DIMS),
        "DISTANCE_METRIC", "COSINE", *extra,
    )  # fmt: skip


def _load(r: redis.Redis, prefix: str, count: int = 40, scale: float = 1.0) -> None:
    rng = np.random.default_rng(1)
    pipe = r.pipeline(transaction=False)
    for i in range(count):
        vec = (rng.normal(size=DIMS) * scale).astype(np.float32)
        pipe.hset(
            f"{prefix}{i}",
            mapping={"title": f"item {i}", "category": "a", "embedding": vec.tobytes()},
        )
    pipe.execute()


def _state(r: redis.Redis) -> tuple[int, list[bytes], str]:
    """DBSIZE, FT._LIST and a digest of every key's DUMP: what 'nothing changed' compares."""
    digest = hashlib.sha256()
    for key in sorted(r.scan_iter(count=1000)):
        digest.update(key)
        digest.update(r.dump(key) or b"")
    return r.dbsize(), sorted(r.execute_command("FT._LIST")), digest.hexdigest()


@pytest.fixture
def products(r: redis.Redis) -> Iterator[redis.Redis]:
    """Index 'products' on 'doc:' with 40 hash documents holding float32 vectors."""
    _create(r, "products", "doc:")
    _load(r, "doc:")
    yield r


def _plan(redis_url: str, patch: SchemaPatch, index: str = "products") -> list[str]:
    plan = MigrationPlanner().create_plan(index, redis_url=redis_url, schema_patch=patch)
    assert not plan.diff_classification.supported
    return plan.diff_classification.blocked_reasons


def test_supported_quantization_plan(products: redis.Redis, redis_url: str) -> None:
    """float32 → float16 is supported, records a measured recall and a masked URL."""
    before = _state(products)
    plan = MigrationPlanner().create_plan(
        "products",
        redis_url=redis_url,
        schema_patch=_patch(
            update_fields=[{"name": "embedding", "attrs": {"datatype": "float16"}}]
        ),
    )
    assert plan.diff_classification.supported, plan.diff_classification.blocked_reasons
    (change,) = plan.vector_changes
    assert change.lossy and change.reencode_documents
    assert change.quality and change.quality[0].sample_size == 40
    assert plan.source.stats_snapshot.num_docs == 40
    assert len(plan.source.keyspace.key_sample) == 5
    assert plan.capabilities is not None and plan.capabilities.search_version
    assert _state(products) == before


@pytest.mark.parametrize(
    ("label", "setup", "patch", "words"),
    [
        (
            "capability INT8",
            None,
            _patch(update_fields=[{"name": "embedding", "attrs": {"datatype": "int8"}}]),
            ["'embedding'", "INT8"],
        ),
        (
            "server rejects target",
            None,
            _patch(
                add_fields=[
                    {"name": "alias_of", "type": "text", "attrs": {"phonetic_matcher": "zz:zz"}}
                ]
            ),
            ["rejects"],
        ),
        (
            "index name taken",
            lambda r: _create(r, "taken", "other:"),
            _patch(index={"name": "taken"}),
            ["'taken'", "already exists"],
        ),
        (
            "alias name taken",
            lambda r: (
                _create(r, "aliased", "zzz:"),
                r.execute_command("FT.ALIASADD", "nick", "aliased"),
            ),
            _patch(index={"name": "nick"}),
            ["'nick'", "already exists"],
        ),
        (
            "prefix has keys",
            lambda r: r.set("item:7", "x"),
            _patch(index={"prefix": "item:"}),
            ["'item:'", "1 keys"],
        ),
        (
            "field rename collision",
            lambda r: r.hset("doc:3", "name", "already"),
            _patch(rename_fields=[{"old_name": "title", "new_name": "name"}]),
            ["'title'", "'name'", "doc:3"],
        ),
        (
            "shared keys",
            lambda r: _create(r, "premium", "doc:"),
            _patch(update_fields=[{"name": "embedding", "attrs": {"datatype": "float16"}}]),
            ["'premium'", "'embedding'"],
        ),
        (
            "float16 overflow",
            lambda r: _load(r, "doc:", scale=1e6),
            _patch(update_fields=[{"name": "embedding", "attrs": {"datatype": "float16"}}]),
            ["'embedding'", "float16", "inf"],
        ),
    ],
)
def test_blocked_before_anything(
    products: redis.Redis,
    redis_url: str,
    label: str,
    setup: object,
    patch: SchemaPatch,
    words: list[str],
) -> None:
    """Each pre-flight block gives a blocked plan naming the culprit, and Redis is unchanged."""
    if callable(setup):
        setup(products)
    before = _state(products)
    reasons = _plan(redis_url, patch)
    assert any(all(w in r for w in words) for r in reasons), (label, reasons)
    assert _state(products) == before


def test_unknown_index_is_usage_error(r: redis.Redis, redis_url: str) -> None:
    """Planning an index that does not exist is a UsageError and creates nothing."""
    with pytest.raises(UsageError, match="does not exist"):
        MigrationPlanner().create_plan("ghost", redis_url=redis_url, schema_patch=_patch())
    assert r.dbsize() == 0 and r.execute_command("FT._LIST") == []


def test_history_restores_unreported_options(products: redis.Redis, redis_url: str) -> None:
    """A matching schema history restores EF_RUNTIME (unreported) and drops the reset warning."""
    plan = MigrationPlanner().create_plan("products", redis_url=redis_url, schema_patch=_patch())
    assert any("reset to their defaults" in w for w in plan.warnings)
    schema = plan.source.schema_snapshot
    emb = schema.field("embedding")
    assert emb is not None
    raw = {
        "index": {"name": "products", "prefix": "doc:"},
        "fields": [
            {"name": "title", "type": "text"},
            {"name": "category", "type": "tag"},
            {
                "name": "embedding",
                "type": "vector",
                "attrs": {"dims": DIMS, "algorithm": "hnsw", "m": 16, "ef_construction": 200,
                          "ef_runtime": 42, "distance_metric": "cosine"},
            },
        ],
    }  # fmt: skip
    products.set(history_key("products"), encode_history(from_builtins(raw)))
    plan = MigrationPlanner().create_plan("products", redis_url=redis_url, schema_patch=_patch())
    assert plan.schema_history_used
    assert not any("reset to their defaults" in w for w in plan.warnings)
    target = plan.merged_target_schema.field("embedding")
    assert target is not None and getattr(target.attrs, "ef_runtime", None) == 42


async def test_async_planner_same_plan(products: redis.Redis, redis_url: str) -> None:
    """AsyncMigrationPlanner gives the same classification and target as the sync one."""
    patch = _patch(add_fields=[{"name": "brand", "type": "tag"}])
    sync_plan = MigrationPlanner().create_plan("products", redis_url=redis_url, schema_patch=patch)
    async_plan = await AsyncMigrationPlanner().create_plan(
        "products", redis_url=redis_url, schema_patch=patch
    )
    assert async_plan.diff_classification == sync_plan.diff_classification
    assert async_plan.merged_target_schema == sync_plan.merged_target_schema
