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


UNREPORTED = "FT.INFO does not report"


def test_history_restores_unreported_options(products: redis.Redis, redis_url: str) -> None:
    """Options FT.INFO does not report warn only when they differ from the default: an index
    at the defaults plans without that warning; one with EF_RUNTIME 42 names it, its value
    and the fix, until a matching schema history restores it into the plan."""
    plan = MigrationPlanner().create_plan("products", redis_url=redis_url, schema_patch=_patch())
    assert not any(UNREPORTED in w for w in plan.warnings), plan.warnings
    products.execute_command(
        "FT.CREATE", "tuned", "ON", "HASH", "PREFIX", "1", "tuned:", "SCHEMA",
        "title", "TEXT", "category", "TAG", "embedding", "VECTOR", "HNSW", "8", "TYPE", "FLOAT32",
        "DIM", str(DIMS), "DISTANCE_METRIC", "COSINE", "EF_RUNTIME", "42",
    )  # fmt: skip
    plan = MigrationPlanner().create_plan("tuned", redis_url=redis_url, schema_patch=_patch())
    assert [w for w in plan.warnings if UNREPORTED in w] == [
        "Field 'embedding' has EF_RUNTIME 42 on the live index, which FT.INFO does not report: "
        "the new index would get the default 10; set it in the patch: update_fields: "
        "[{name: embedding, attrs: {ef_runtime: 42}}]"
    ]
    raw = {
        "index": {"name": "tuned", "prefix": "tuned:"},
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
    products.set(history_key("tuned"), encode_history(from_builtins(raw)))
    plan = MigrationPlanner().create_plan("tuned", redis_url=redis_url, schema_patch=_patch())
    assert plan.schema_history_used
    assert not any(UNREPORTED in w for w in plan.warnings)
    target = plan.merged_target_schema.field("embedding")
    assert target is not None and getattr(target.attrs, "ef_runtime", None) == 42


def test_unreported_options_read_another_way_or_listed_when_refused(
    r: redis.Redis, redis_url: str
) -> None:
    """PHONETIC and EPSILON are read with FT.EXPLAIN and FT.DEBUG VECSIM_INFO and named when
    set; a user the server refuses both commands gets the options that could change query
    results listed instead (never the harmless ones: SKIPINITIALSCAN, INITIAL_CAP); a plan
    that only adds fields (FT.ALTER keeps the index) warns about none of them."""
    r.execute_command(
        "FT.CREATE", "notes", "ON", "HASH", "PREFIX", "1", "note:", "SCHEMA",
        "body", "TEXT", "PHONETIC", "dm:fr",
        "emb", "VECTOR", "HNSW", "8", "TYPE", "FLOAT32", "DIM", str(DIMS),
        "DISTANCE_METRIC", "L2", "EPSILON", "0.5",
    )  # fmt: skip
    sortable = _patch(update_fields=[{"name": "body", "attrs": {"sortable": True}}])
    plan = MigrationPlanner().create_plan("notes", redis_client=r, schema_patch=sortable)
    found = [w for w in plan.warnings if UNREPORTED in w]
    assert len(found) == 2
    assert found[0].startswith("Field 'body' matches phonetically on the live index")
    assert found[1].startswith("Field 'emb' has EPSILON 0.5 on the live index")
    r.execute_command("ACL", "SETUSER", "limited", "on", ">pw", "~*", "&*", "+@all",
                      "-ft.debug", "-ft.explain")  # fmt: skip
    limited = redis_url.replace("redis://", "redis://limited:pw@", 1)
    try:
        refused = MigrationPlanner().create_plan("notes", redis_url=limited, schema_patch=sortable)
        added = MigrationPlanner().create_plan(
            "notes",
            redis_url=limited,
            schema_patch=_patch(add_fields=[{"name": "c", "type": "tag"}]),
            mode="auto",
        )
    finally:
        r.execute_command("ACL", "DELUSER", "limited")
    assert [w for w in refused.warnings if UNREPORTED in w] == [
        "Options FT.INFO does not report, which this server did not let ftctl read either, get "
        "their defaults unless the patch sets them: fields.body.attrs.phonetic_matcher, "
        "fields.emb.attrs.ef_runtime, fields.emb.attrs.epsilon (no ftctl schema history "
        "matches this index)"
    ]
    assert added.online is not None and added.online.strategy == "alter"
    assert not any(UNREPORTED in w for w in added.warnings)


async def test_async_planner_same_plan(products: redis.Redis, redis_url: str) -> None:
    """AsyncMigrationPlanner gives the same classification and target as the sync one."""
    patch = _patch(add_fields=[{"name": "brand", "type": "tag"}])
    sync_plan = MigrationPlanner().create_plan("products", redis_url=redis_url, schema_patch=patch)
    async_plan = await AsyncMigrationPlanner().create_plan(
        "products", redis_url=redis_url, schema_patch=patch
    )
    assert async_plan.diff_classification == sync_plan.diff_classification
    assert async_plan.merged_target_schema == sync_plan.merged_target_schema
