"""Every supported change of the guide's table, end to end on the real server, then rolled back.

One data set (:mod:`helpers`), one table of changes, hash and JSON. After ``apply`` the target
state is read straight from Redis: the FT.INFO schema equals the plan's target, every
document is indexed, every key holds exactly the expected content under its final name
(renamed fields, vectors re-encoded as :func:`convert_many` does). After ``rollback`` every
key, field, byte and TTL and the source index are back exactly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import redis
from helpers import (
    DOCS,
    INDEX,
    RUNNERS,
    expected_after,
    info,
    patch,
    plan,
    run_apply,
    source,
    state,
)

from ftctl.executor import rollback
from ftctl.schema.compare import reported_differences


class Case:
    """One row of the table: the patch, and what Redis must hold afterwards."""

    def __init__(
        self,
        changes: dict[str, Any],
        *,
        index: str = INDEX,
        prefix: tuple[str, str] | None = None,
        renames: tuple[tuple[str, str], ...] = (),
        datatype: str | None = None,
        query: tuple[str, int] | None = None,
    ) -> None:
        self.changes = changes
        self.index = index
        self.prefix = prefix
        self.renames = renames
        self.datatype = datatype
        self.query = query


def _update(name: str, **attrs: object) -> dict[str, Any]:
    return {"update_fields": [{"name": name, "attrs": attrs}]}


CASES: dict[str, Case] = {
    "add_text": Case(
        {"add_fields": [{"name": "body", "type": "text"}]}, query=("@body:text", DOCS)
    ),
    "add_tag": Case(
        {"add_fields": [{"name": "color", "type": "tag"}]}, query=("@color:{blue}", 20)
    ),
    "add_numeric": Case(
        {"add_fields": [{"name": "rating", "type": "numeric"}]}, query=("@rating:[4 4]", 12)
    ),
    "add_geo": Case(
        {"add_fields": [{"name": "loc", "type": "geo"}]}, query=("@loc:[13.4 52.5 1 km]", DOCS)
    ),
    "remove_field": Case({"remove_fields": ["category"]}),
    "rename_field": Case(
        {"rename_fields": [{"old_name": "title", "new_name": "headline"}]},
        renames=(("title", "headline"),),
        query=("@headline:running", DOCS),
    ),
    "change_prefix": Case({"index": {"prefix": "item:"}}, prefix=("doc:", "item:")),
    "rename_index": Case({"index": {"name": "catalog"}}, index="catalog"),
    "sortable": Case(_update("price", sortable=True)),
    "tag_separator": Case(_update("category", separator="|")),
    "no_stem": Case(_update("title", no_stem=True), query=("@title:run", 0)),
    "hnsw_to_flat": Case(_update("emb", algorithm="flat")),
    "distance_metric": Case(_update("emb", distance_metric="l2")),
    "hnsw_params": Case(_update("emb", m=8, ef_construction=100)),
    "float16": Case(_update("emb", datatype="float16"), datatype="float16"),
    "bfloat16": Case(_update("emb", datatype="bfloat16"), datatype="bfloat16"),
    "float64": Case(_update("emb", datatype="float64"), datatype="float64"),
}


def _check_target(r: redis.Redis, made: Any, case: Case, storage: str, before: Any) -> None:
    live = info(r, case.index)
    assert live.index_name == case.index
    assert reported_differences(made.merged_target_schema, live.schema) == []
    if case.index == INDEX:
        # The change really happened (names are not compared: a renamed index counts apart).
        assert reported_differences(made.source.schema_snapshot, live.schema) != []
    assert live.stats.num_docs == DOCS and live.stats.hash_indexing_failures == 0
    datatype = case.datatype if storage == "hash" else None
    wanted = expected_after(before, prefix=case.prefix, renames=case.renames, datatype=datatype)
    assert state(r) == (wanted, [case.index.encode()])
    if case.query is not None:
        query, hits = case.query
        found = r.execute_command("FT.SEARCH", case.index, query, "LIMIT", "0", "0")
        assert found[b"total_results"] == hits


@pytest.mark.parametrize("storage", ["hash", "json"])
@pytest.mark.parametrize("name", list(CASES))
def test_supported_change_then_rollback(
    r: redis.Redis, redis_url: str, tmp_path: Path, name: str, storage: str
) -> None:
    """Each supported change reaches exactly the target state, and rollback restores the source.

    The runner (sync/async, 1/2 workers) rotates over the table so every runner runs on both
    storage types; the combined test below runs every runner on one change.
    """
    case = CASES[name]
    runner = RUNNERS[(list(CASES).index(name) + (storage == "json")) % len(RUNNERS)]
    source(r, storage)
    made = plan(redis_url, patch(**case.changes))
    before = state(r)

    report = run_apply(runner, made, redis_url=redis_url, backup_dir=tmp_path)

    assert report.result == "succeeded", (report.error, report.validation.checks)
    assert all(c.passed for c in report.validation.checks)
    _check_target(r, made, case, storage, before[0])

    undone = rollback(tmp_path, redis_url=redis_url)
    assert undone.result == "rolled_back", (undone.error, undone.validation.checks)
    assert state(r) == before
    restored = info(r)
    assert reported_differences(made.source.schema_snapshot, restored.schema) == []
    assert restored.stats.num_docs == DOCS


COMBINED = Case(
    {
        "rename_fields": [{"old_name": "title", "new_name": "headline"}],
        "index": {"name": "catalog", "prefix": "item:"},
        "update_fields": [{"name": "emb", "attrs": {"datatype": "float16", "algorithm": "flat"}}],
        "add_fields": [{"name": "color", "type": "tag"}],
    },
    index="catalog",
    prefix=("doc:", "item:"),
    renames=(("title", "headline"),),
    datatype="float16",
    query=("@headline:running @color:{blue}", 20),
)


@pytest.mark.parametrize("storage", ["hash", "json"])
@pytest.mark.parametrize("runner", RUNNERS)
def test_combined_change_every_runner(
    r: redis.Redis, redis_url: str, tmp_path: Path, runner: str, storage: str
) -> None:
    """Rename field + prefix + index, quantize, add a field, in one plan, by every runner;
    progress reaches every document of each batched step; rollback restores exactly."""
    source(r, storage)
    made = plan(redis_url, patch(**COMBINED.changes))
    before = state(r)
    progress: dict[str, int] = {}

    def on_progress(step: str, done: int, total: int) -> None:
        assert total == DOCS
        progress[step] = max(progress.get(step, 0), done)

    report = run_apply(
        runner, made, redis_url=redis_url, backup_dir=tmp_path, progress_callback=on_progress
    )

    assert report.result == "succeeded", (report.error, report.validation.checks)
    _check_target(r, made, COMBINED, storage, before[0])
    batched = ["enumerate", "rename_fields", "rename_keys"]
    batched += ["backup", "quantize"] if storage == "hash" else []
    assert progress == dict.fromkeys(batched, DOCS)
    assert report.benchmark_summary.documents == DOCS

    undone = rollback(tmp_path, redis_url=redis_url, num_workers=2, batch_size=7)
    assert undone.result == "rolled_back", (undone.error, undone.validation.checks)
    assert state(r) == before
    assert reported_differences(made.source.schema_snapshot, info(r).schema) == []
