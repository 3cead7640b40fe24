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
    wait_indexed,
)

from ftctl.errors import RefusedError
from ftctl.executor import rollback
from ftctl.journal import Journal
from ftctl.journal.events import Note
from ftctl.planner import MigrationPlanner
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
    progress reaches every document of each batched step and of the index build (polled);
    rollback restores exactly."""
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
    counted = ["enumerate", "rename_fields", "rename_keys", "wait"]
    counted += ["backup", "quantize"] if storage == "hash" else []
    assert progress == dict.fromkeys(counted, DOCS)
    assert report.benchmark_summary.documents == DOCS

    undone = rollback(tmp_path, redis_url=redis_url, num_workers=2, batch_size=7)
    assert undone.result == "rolled_back", (undone.error, undone.validation.checks)
    assert state(r) == before
    assert reported_differences(made.source.schema_snapshot, info(r).schema) == []


# --- refusals: nothing in Redis changes ---------------------------------------------------


def _refused(
    r: redis.Redis, redis_url: str, backup_dir: Path, made: Any, match: str, **options: Any
) -> None:
    before = state(r)
    with pytest.raises(RefusedError, match=match):
        run_apply(RUNNERS[0], made, redis_url=redis_url, backup_dir=backup_dir, **options)
    assert state(r) == before


def test_blocked_plan_is_refused(r: redis.Redis, redis_url: str, tmp_path: Path) -> None:
    """A blocked plan (vector dimensions change) is refused before anything runs."""
    source(r, "hash")
    made = MigrationPlanner().create_plan(
        INDEX,
        redis_url=redis_url,
        schema_patch=patch(update_fields=[{"name": "emb", "attrs": {"dims": 16}}]),
    )
    assert not made.supported
    _refused(r, redis_url, tmp_path, made, "blocked")
    assert not list(tmp_path.iterdir())


def test_reviewed_lossy_plan_applies_without_accept_data_loss(
    r: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    """A reviewed lossy quantization applies without accept_data_loss, as the guide's apply
    does: the plan's warning shows the measured recall and says apply runs it."""
    source(r, "hash")
    made = plan(redis_url, patch(update_fields=[{"name": "emb", "attrs": {"datatype": "float16"}}]))
    lossy = [w for w in made.warnings if w.startswith("Lossy quantization of 'emb'")]
    assert len(lossy) == 1 and "recall@10" in lossy[0], made.warnings
    assert "apply runs it (batch-apply asks for --accept-data-loss)" in lossy[0]
    report = run_apply(
        RUNNERS[0], made, redis_url=redis_url, backup_dir=tmp_path, accept_data_loss=False
    )
    assert report.result == "succeeded", (report.error, report.validation.checks)
    assert info(r).schema.field("emb").attrs.datatype == "float16"  # type: ignore[union-attr]


def test_backup_dir_of_another_plan_is_refused(
    r: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    """A backup dir holding the journal of another plan for the same index is refused."""
    source(r, "hash")
    first = plan(redis_url, patch(add_fields=[{"name": "color", "type": "tag"}]))
    assert run_apply(RUNNERS[0], first, redis_url=redis_url, backup_dir=tmp_path).result == (
        "succeeded"
    )
    second = plan(redis_url, patch(add_fields=[{"name": "rating", "type": "numeric"}]))
    _refused(r, redis_url, tmp_path, second, "backup does not match plan")


@pytest.mark.parametrize("storage", ["hash", "json"])
@pytest.mark.parametrize("obstacle", ["prefix_taken", "name_taken", "source_changed"])
def test_preflight_refusals_change_nothing(
    r: redis.Redis, redis_url: str, tmp_path: Path, obstacle: str, storage: str
) -> None:
    """What changed between planning and apply (keys under the new prefix, an index with the
    new name, a different live source) is refused at preflight, before the drop."""
    source(r, storage)
    made = plan(
        redis_url,
        patch(
            index={"name": "catalog", "prefix": "item:"},
            update_fields=[{"name": "emb", "attrs": {"datatype": "float16"}}],
        ),
    )
    match obstacle:
        case "prefix_taken":
            r.set("item:x", "someone else's")
            words = "keys already exist under the new prefix 'item:'"
        case "name_taken":
            r.execute_command("FT.CREATE", "catalog", "PREFIX", "1", "zzz:", "SCHEMA", "t", "TEXT")
            words = "named 'catalog' already exists"
        case _:
            extra = ["$.extra", "AS", "extra"] if storage == "json" else ["extra"]
            r.execute_command("FT.ALTER", INDEX, "SCHEMA", "ADD", *extra, "TEXT")
            words = "source schema mismatch"
    _refused(r, redis_url, tmp_path, made, f"preflight refused: .*{words}")


# --- indexes with indexing failures -------------------------------------------------------


def test_indexing_failures_enumerate_by_scan_and_validate(
    r: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    """A document the source could not index (wrong-size vector) is found by the prefix-scoped
    SCAN fallback, moved with the others and left byte-identical; the run validates with
    doc_count = num_docs + failures, and rollback restores everything."""
    source(r, "hash")
    r.hset("doc:bad", mapping={"title": "broken", "emb": b"\x01\x02\x03"})
    r.hset("other:1", mapping={"title": "not under the prefix", "emb": b"\x00" * 32})
    assert wait_indexed(r).stats.hash_indexing_failures == 1
    made = plan(
        redis_url,
        patch(
            index={"prefix": "item:"},
            update_fields=[{"name": "emb", "attrs": {"datatype": "float16"}}],
        ),
    )
    before = state(r)

    report = run_apply(RUNNERS[1], made, redis_url=redis_url, backup_dir=tmp_path)

    assert report.result == "succeeded", (report.error, report.validation.checks)
    assert report.benchmark_summary.documents == DOCS + 1
    checks = {c.check: c for c in report.validation.checks}
    assert checks["doc_count"].passed and f"expected {DOCS + 1}" in checks["doc_count"].detail
    notes = [e for e in Journal.read(tmp_path / INDEX) if isinstance(e, Note)]
    assert any("SCAN" in n.message for n in notes)
    assert r.hgetall("item:bad") == {b"title": b"broken", b"emb": b"\x01\x02\x03"}
    assert r.hget("other:1", "title") == b"not under the prefix"
    live = info(r)
    assert (live.stats.num_docs, live.stats.hash_indexing_failures) == (DOCS, 1)

    assert rollback(tmp_path, redis_url=redis_url).result == "rolled_back"
    assert state(r) == before
