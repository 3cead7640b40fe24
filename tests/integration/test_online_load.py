"""Load test: an online migration of a 20k-doc HNSW index never fails a query by its name.

A reader queries ``docs`` (KNN and text) in a loop while a writer adds and updates documents;
the same load against drop_recreate shows the failures online mode avoids.
"""

from __future__ import annotations

import tempfile

import redis
from online_load import INDEX, Load, create, missing

from ftctl.executor import MigrationExecutor
from ftctl.plan import patch_from_builtins
from ftctl.planner import MigrationPlanner
from ftctl.schema.compare import reported_differences
from ftctl.schema.ftinfo import parse_ft_info

DOCS = 20_000
HNSW_CHANGE = {
    "changes": {"update_fields": [{"name": "emb", "attrs": {"algorithm": "hnsw", "m": 8}}]}
}
FLOAT16 = {"changes": {"update_fields": [{"name": "emb", "attrs": {"datatype": "float16"}}]}}


def _migrate_under_load(
    r: redis.Redis, url: str, storage: str, patch: dict[str, object], mode: str
) -> tuple[Load, object]:
    plan = MigrationPlanner().create_plan(
        INDEX,
        redis_client=r,
        schema_patch=patch_from_builtins(patch),
        mode=mode,  # type: ignore[arg-type]
        postpone_cutover=False,  # the reader switches its query encoding itself
    )
    assert plan.mode == mode and plan.supported, plan.diff_classification
    with tempfile.TemporaryDirectory() as backup, Load(url, storage, DOCS) as load:
        report = MigrationExecutor().apply(plan, client=r, backup_dir=backup, accept_data_loss=True)
    if mode == "online":
        assert report.result == "succeeded", report.error
        info = parse_ft_info(r.execute_command("FT.INFO", INDEX))
        assert reported_differences(plan.merged_target_schema, info.schema) == []
    return load, report


def test_online_hnsw_change_under_load_has_no_failed_query(r: redis.Redis, redis_url: str) -> None:
    """HNSW parameter change online: zero failed or incomplete queries by the original name,
    every document written meanwhile is findable in the final index, schema is the target."""
    create(r, "hash", DOCS, algorithm="FLAT")
    load, report = _migrate_under_load(
        r,
        redis_url,
        "hash",
        {"changes": {"update_fields": [{"name": "emb", "attrs": {"algorithm": "hnsw", "m": 8}}]}},
        "online",
    )
    assert load.queries > 50
    assert load.failures == []
    assert len(load.written) > 50
    assert missing(r, load.written) == []
    assert report.cutover_at and report.shadow_build_seconds > 0  # type: ignore[attr-defined]


def test_online_json_float16_under_load_has_no_failed_query(r: redis.Redis, redis_url: str) -> None:
    """JSON float32→float16 online (no document rewrite): zero failed queries, every written
    document findable, the final index reports FLOAT16."""
    create(r, "json", DOCS)
    load, _ = _migrate_under_load(r, redis_url, "json", FLOAT16, "online")
    assert load.failures == []
    assert missing(r, load.written) == []
    info = parse_ft_info(r.execute_command("FT.INFO", INDEX))
    assert info.schema.vector_fields()[0].attrs.datatype == "float16"


def test_drop_recreate_under_the_same_load_fails_queries(r: redis.Redis, redis_url: str) -> None:
    """The same load against drop_recreate sees failed or incomplete queries (the downtime
    online mode removes), so the online tests above prove a difference."""
    create(r, "hash", DOCS, algorithm="FLAT")
    load, report = _migrate_under_load(r, redis_url, "hash", HNSW_CHANGE, "drop_recreate")
    assert load.failures, "drop_recreate had no failed query: the load test proves nothing"
    assert any(
        "Unknown index" in what or "no such index" in what.lower() for *_, what in load.failures
    )
    # and its validation notices the writes it was told to pause for
    assert report.result == "failed" and "doc_count" in report.error  # type: ignore[attr-defined]
