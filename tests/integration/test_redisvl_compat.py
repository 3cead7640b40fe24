"""ftctl driven through RedisVL 0.28's migration API, as a RedisVL user's code drives it.

Every test here is written the way code written against ``redisvl.migration`` is: the only
change is the import line (``from ftctl import ...`` instead of ``from redisvl.migration
import ...`` / ``redisvl.migration.utils``, ``ftctl.backup`` for ``redisvl.migration.backup``).
It plans with a schema patch file, writes the plan with ``planner.write_plan``, loads it
back with ``load_migration_plan``, applies it with and without a backup directory and with a
``query_check_file``, validates with the validator's tuple, and reads the report's
attributes by RedisVL's names, for every change of the guide's support table, on hash and
JSON indexes. Batch planning, applying and resuming (also from a RedisVL checkpoint), the
backup reader, and RedisVL's errors (``ValueError``) are covered the same way.

Indexes are created with a plain ``FT.CREATE`` (as RedisVL's ``SearchIndex.create`` does):
no ftctl schema history.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest
import redis
import yaml

from ftctl import (
    AsyncMigrationExecutor,
    AsyncMigrationPlanner,
    AsyncMigrationValidator,
    BatchMigrationExecutor,
    BatchMigrationPlanner,
    MigrationExecutor,
    MigrationPlanner,
    MigrationValidator,
    index_info,
    load_migration_plan,
    schemas_equal,
    write_migration_report,
)
from ftctl.backup import VectorBackup
from ftctl.schema.model import from_builtins
from ftctl.schema.render import create_argv

DIMS = 4
DOCS = 6
VECTORS = np.random.default_rng(7).standard_normal((DOCS, DIMS)).astype(np.float32)


@pytest.fixture(autouse=True)
def default_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Runs given no backup_dir journal under the test's own default root, never ``~``."""
    root = tmp_path / "default-root"
    monkeypatch.setenv("FTCTL_BACKUP_DIR", str(root))
    return root


def _path(storage: str, name: str) -> dict[str, str]:
    return {"path": f"$.{name}"} if storage == "json" else {}


def schema(name: str, prefix: str, storage: str = "hash") -> dict[str, Any]:
    """A RedisVL schema dict: tag, text, tag, numeric and an HNSW FLOAT32 vector."""
    return {
        "index": {"name": name, "prefix": prefix, "storage_type": storage},
        "fields": [
            {"name": "doc_id", "type": "tag", **_path(storage, "doc_id")},
            {"name": "title", "type": "text", **_path(storage, "title")},
            {"name": "category", "type": "tag", **_path(storage, "category")},
            {"name": "price", "type": "numeric", **_path(storage, "price")},
            {
                "name": "embedding",
                "type": "vector",
                **_path(storage, "embedding"),
                "attrs": {
                    "algorithm": "hnsw",
                    "dims": DIMS,
                    "distance_metric": "cosine",
                    "datatype": "float32",
                },
            },
        ],
    }


def create(r: redis.Redis, raw: dict[str, Any]) -> None:
    """FT.CREATE the RedisVL schema dict ``raw`` (no ftctl schema history)."""
    r.execute_command(*create_argv(from_builtins(raw)))


def load(r: redis.Redis, prefix: str, storage: str = "hash", count: int = DOCS) -> None:
    """``count`` documents ``<prefix>:1 …``, with unindexed fields the "add" cases index."""
    pipe = r.pipeline(transaction=False)
    for i in range(count):
        doc: dict[str, Any] = {
            "doc_id": str(i + 1),
            "title": f"running title {i}",
            "category": "a,b" if i % 2 else "c",
            "price": i,
            "body": f"body text {i}",
            "color": "red" if i % 3 else "blue",
            "rating": i % 5,
            "spot": "13.4,52.5",
        }
        key = f"{prefix}:{i + 1}"
        if storage == "json":
            pipe.execute_command(
                "JSON.SET", key, "$", json.dumps({**doc, "embedding": VECTORS[i].tolist()})
            )
        else:
            pipe.hset(key, mapping={**doc, "embedding": VECTORS[i].tobytes()})
    pipe.execute()


def wait_indexed(r: redis.Redis, name: str) -> None:
    """Until the server has finished indexing ``name`` (failures included)."""
    deadline = time.monotonic() + 10
    while index_info(name, redis_client=r).stats.indexing and time.monotonic() < deadline:
        time.sleep(0.01)


def names() -> tuple[str, str]:
    uid = uuid.uuid4().hex[:8]
    return f"compat_{uid}", f"compat:{uid}"


def write_patch(tmp_path: Path, changes: dict[str, Any], file: str = "patch.yaml") -> str:
    path = tmp_path / file
    path.write_text(yaml.safe_dump({"version": 1, "changes": changes}, sort_keys=False))
    return str(path)


def write_checks(tmp_path: Path, fetch_ids: list[str], keys: list[str]) -> str:
    path = tmp_path / "query_checks.yaml"
    path.write_text(yaml.safe_dump({"fetch_ids": fetch_ids, "keys_exist": keys}))
    return str(path)


# --- the guide's support table ------------------------------------------------------------


class Case:
    def __init__(
        self,
        changes: Any,
        *,
        storages: tuple[str, ...] = ("hash", "json"),
        renamed: str | None = None,
        new_prefix: bool = False,
        field_rename: bool = False,
        quantize: str | None = None,
        capability: str | None = None,
    ) -> None:
        self.capability = capability
        self.changes = changes
        self.storages = storages
        self.renamed = renamed
        self.new_prefix = new_prefix
        self.field_rename = field_rename
        self.quantize = quantize


def _add(name: str, kind: str) -> Any:
    return lambda storage: {"add_fields": [{"name": name, "type": kind, **_path(storage, name)}]}


def _update(name: str, **attrs: Any) -> Any:
    return lambda storage: {"update_fields": [{"name": name, "attrs": attrs}]}


CASES: dict[str, Case] = {
    "add_text_field": Case(_add("body", "text")),
    "add_tag_field": Case(_add("color", "tag")),
    "add_numeric_field": Case(_add("rating", "numeric")),
    "add_geo_field": Case(_add("spot", "geo")),
    "remove_field": Case(lambda storage: {"remove_fields": ["category"]}),
    "rename_field": Case(
        lambda storage: {"rename_fields": [{"old_name": "title", "new_name": "headline"}]},
        field_rename=True,
    ),
    "change_prefix": Case(lambda storage: {"index": {"prefix": "@new"}}, new_prefix=True),
    "rename_index": Case(lambda storage: {"index": {"name": "@renamed"}}, renamed="@renamed"),
    "make_sortable": Case(_update("title", sortable=True)),
    "tag_separator": Case(_update("category", separator="|")),
    "text_no_stem": Case(_update("title", no_stem=True)),
    "algorithm_flat": Case(_update("embedding", algorithm="flat")),
    "algorithm_svs": Case(_update("embedding", algorithm="svs-vamana"), capability="svs-vamana"),
    "distance_metric": Case(_update("embedding", distance_metric="l2")),
    "hnsw_params": Case(_update("embedding", m=32, ef_construction=400)),
    "float16": Case(_update("embedding", datatype="float16"), quantize="float16"),
    "bfloat16": Case(_update("embedding", datatype="bfloat16"), quantize="bfloat16"),
    "int8": Case(
        _update("embedding", datatype="int8"),
        storages=("hash",),
        quantize="int8",
        capability="int8",
    ),
    "uint8": Case(
        _update("embedding", datatype="uint8"),
        storages=("hash",),
        quantize="uint8",
        capability="uint8",
    ),
}
PARAMS = [
    pytest.param(case, storage, id=f"{name}-{storage}")
    for name, case in CASES.items()
    for storage in case.storages
]


def _resolve(changes: Any, storage: str, name: str, prefix: str) -> dict[str, Any]:
    """The case's patch with ``@new`` / ``@renamed`` made unique to this test."""
    raw = json.dumps(changes(storage))
    raw = raw.replace("@renamed", f"{name}_renamed").replace("@new", f"{prefix}_moved")
    loaded: dict[str, Any] = json.loads(raw)
    return loaded


@pytest.mark.parametrize(("case", "storage"), PARAMS)
def test_supported_change_through_redisvl_api(
    r: redis.Redis, redis_url: str, tmp_path: Path, case: Case, storage: str
) -> None:
    """Each supported change of the guide's table runs through RedisVL's calls and names:
    create_plan(schema_patch_path=) → write_plan → load_migration_plan → apply(backup_dir=,
    query_check_file=) → the report's RedisVL attributes → the validator's tuple. (INT8,
    UINT8 and SVS-VAMANA need a server that has them, as the guide says: without, the plan
    is blocked.)"""
    name, prefix = names()
    create(r, schema(name, prefix, storage))
    load(r, prefix, storage)
    wait_indexed(r, name)
    changes = _resolve(case.changes, storage, name, prefix)
    target_name = f"{name}_renamed" if case.renamed else name
    final_prefix = f"{prefix}_moved" if case.new_prefix else prefix

    planner = MigrationPlanner()
    plan = planner.create_plan(
        name, redis_url=redis_url, schema_patch_path=write_patch(tmp_path, changes)
    )
    if case.capability is not None:
        caps = plan.capabilities
        assert caps is not None
        if not (caps.has_vector_type(case.capability) or caps.has_algorithm(case.capability)):
            # The guide: INT8/UINT8 need Redis 8.0+, SVS-VAMANA Redis 8.2+ and AVX-512. On a
            # server without them the plan is blocked (nothing runs), naming the field and
            # what the server lacks.
            assert plan.diff_classification.supported is False
            (reason, *_) = plan.diff_classification.blocked_reasons
            assert "'embedding'" in reason and case.capability.upper() in reason
            with pytest.raises(ValueError, match="blocked"):
                MigrationExecutor().apply(plan, redis_url=redis_url, backup_dir=str(tmp_path))
            return
    assert plan.diff_classification.supported is True, plan.diff_classification.blocked_reasons
    assert plan.diff_classification.blocked_reasons == []
    plan_path = tmp_path / "migration_plan.yaml"
    planner.write_plan(plan, str(plan_path))
    checks = write_checks(tmp_path, ["1", "2"], [f"{final_prefix}:3"])

    backup_dir = tmp_path / "backups"
    report = MigrationExecutor().apply(
        load_migration_plan(str(plan_path)),
        redis_url=redis_url,
        backup_dir=str(backup_dir),
        query_check_file=checks,
    )

    assert report.result == "succeeded", report.validation.errors
    assert report.source_index == name and report.target_index == target_name
    v = report.validation
    assert v.schema_match is True and v.doc_count_match is True
    assert v.key_sample_exists is True and v.indexing_failures_delta == 0
    assert not v.errors
    assert {c.name: c.passed for c in v.query_checks} == {
        "functional:wildcard_search": True,
        "fetch:1": True,
        "fetch:2": True,
        f"key:{final_prefix}:3": True,
    }
    assert report.backup is not None
    assert report.backup.backup_dir == str(backup_dir.resolve())
    rewrites = case.quantize is not None and storage == "hash"
    assert report.backup.backup_paths == ([str(backup_dir.resolve() / name)] if rewrites else [])
    t = report.timings
    assert t.total_migration_duration_seconds > 0 and t.downtime_duration_seconds > 0
    assert t.drop_duration_seconds is not None and t.recreate_duration_seconds is not None
    assert t.initial_indexing_duration_seconds is not None
    assert t.validation_duration_seconds is not None
    assert (t.quantize_duration_seconds is not None) == rewrites
    assert (t.field_rename_duration_seconds is not None) == case.field_rename
    assert (t.key_rename_duration_seconds is not None) == case.new_prefix
    assert report.benchmark_summary.documents_indexed_per_second is not None

    live = index_info(target_name, redis_url=redis_url)
    assert schemas_equal(live.schema, plan.merged_target_schema)
    assert live.stats.num_docs == DOCS

    validation, target_info, duration = MigrationValidator().validate(
        load_migration_plan(str(plan_path)), redis_url=redis_url, query_check_file=checks
    )
    assert validation.schema_match is True and validation.doc_count_match is True
    assert validation.key_sample_exists is True and not validation.errors
    assert target_info["num_docs"] == DOCS and duration >= 0


def test_apply_without_backup_dir_journals_in_the_default_location(
    r: redis.Redis, redis_url: str, tmp_path: Path, default_root: Path
) -> None:
    """apply(plan, redis_url=) with no backup_dir runs (as RedisVL code written for releases
    that did not require one does): the journal goes under $FTCTL_BACKUP_DIR in a
    directory named after the index and the plan, the report says where, and re-running
    the same call finds the finished journal instead of migrating again."""
    name, prefix = names()
    create(r, schema(name, prefix))
    load(r, prefix)
    planner = MigrationPlanner()
    plan = planner.create_plan(
        name,
        redis_url=redis_url,
        schema_patch_path=write_patch(
            tmp_path, {"update_fields": [{"name": "embedding", "attrs": {"datatype": "float16"}}]}
        ),
    )
    planner.write_plan(plan, str(tmp_path / "plan.yaml"))

    report = MigrationExecutor().apply(
        load_migration_plan(str(tmp_path / "plan.yaml")), redis_url=redis_url
    )

    assert report.result == "succeeded", report.validation.errors
    backup_dir = Path(report.backup.backup_dir)
    assert backup_dir.parent == default_root.resolve()
    assert backup_dir.name.startswith(f"{name}-") and len(backup_dir.name) == len(name) + 13
    assert (backup_dir / name / "journal.log").is_file()
    assert report.backup.backup_paths == [str(backup_dir / name)]
    again = MigrationExecutor().apply(
        load_migration_plan(str(tmp_path / "plan.yaml")), redis_url=redis_url
    )
    assert again.result == "succeeded" and again.backup.backup_dir == str(backup_dir)
    assert not list(tmp_path.glob("migration_backups*"))


@pytest.mark.parametrize("change", ["add_field", "quantize"])
def test_unwritable_backup_dir_is_a_value_error_before_anything_runs(
    r: redis.Redis, redis_url: str, tmp_path: Path, change: str
) -> None:
    """A backup_dir that cannot be created (a file is in the way) raises a ValueError
    naming the backup directory, and the index is left as it was."""
    name, prefix = names()
    create(r, schema(name, prefix))
    load(r, prefix)
    changes = (
        {"add_fields": [{"name": "color", "type": "tag"}]}
        if change == "add_field"
        else {"update_fields": [{"name": "embedding", "attrs": {"datatype": "float16"}}]}
    )
    plan = MigrationPlanner().create_plan(
        name, redis_url=redis_url, schema_patch_path=write_patch(tmp_path, changes)
    )
    blocker = tmp_path / "blocker"
    blocker.write_text("not a directory")

    with pytest.raises(ValueError, match="backup directory"):
        MigrationExecutor().apply(plan, redis_url=redis_url, backup_dir=str(blocker / "sub"))

    live = index_info(name, redis_url=redis_url)
    assert schemas_equal(live.schema, plan.source.schema_snapshot)
    assert live.stats.num_docs == DOCS
    assert r.hget(f"{prefix}:1", "embedding") == VECTORS[0].tobytes()


def test_apply_creates_a_missing_nested_backup_dir(
    r: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    """A backup_dir that does not exist yet (nested) is created; an index-only change
    records it in the report with no backup paths."""
    name, prefix = names()
    create(r, schema(name, prefix))
    load(r, prefix)
    plan = MigrationPlanner().create_plan(
        name,
        redis_url=redis_url,
        schema_patch_path=write_patch(tmp_path, {"add_fields": [{"name": "color", "type": "tag"}]}),
    )
    backup_dir = tmp_path / "nested" / "no_quant"
    report = MigrationExecutor().apply(plan, redis_url=redis_url, backup_dir=str(backup_dir))
    assert report.result == "succeeded", report.validation.errors
    assert report.backup.backup_dir == str(backup_dir.resolve()) and backup_dir.is_dir()
    assert report.backup.backup_paths == []


def test_a_failed_query_check_fails_the_migration(
    r: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    """A query_check_file naming a document that does not exist fails the run (result
    ``failed``) with the check in query_checks and a line in errors; the others pass."""
    name, prefix = names()
    create(r, schema(name, prefix))
    load(r, prefix)
    plan = MigrationPlanner().create_plan(
        name,
        redis_url=redis_url,
        schema_patch_path=write_patch(
            tmp_path, {"update_fields": [{"name": "title", "attrs": {"sortable": True}}]}
        ),
    )
    checks = write_checks(tmp_path, ["1", "404"], [f"{prefix}:nope"])
    report = MigrationExecutor().apply(
        plan, redis_url=redis_url, backup_dir=str(tmp_path / "b"), query_check_file=checks
    )
    assert report.result == "failed"
    passed = {c.name: c.passed for c in report.validation.query_checks}
    assert passed == {
        "functional:wildcard_search": True,
        "fetch:1": True,
        "fetch:404": False,
        f"key:{prefix}:nope": False,
    }
    assert any(e.startswith("fetch:404: Document not found") for e in report.validation.errors)
    assert report.validation.schema_match is True and report.validation.doc_count_match is True


def test_indexing_failures_warning_and_validation(
    r: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    """A source with hash indexing failures (wrong-size vectors) gets exactly one warning
    with the words "hash indexing failure", and an added field still validates: total
    keys are conserved."""
    name, prefix = names()
    create(r, schema(name, prefix))
    load(r, prefix)
    bad = np.ones(2 * DIMS, dtype=np.float32).tobytes()
    r.hset(f"{prefix}:bad1", mapping={"title": "bad", "embedding": bad})
    r.hset(f"{prefix}:bad2", mapping={"title": "bad", "embedding": bad})
    wait_indexed(r, name)
    plan = MigrationPlanner().create_plan(
        name,
        redis_url=redis_url,
        schema_patch_path=write_patch(tmp_path, {"add_fields": [{"name": "color", "type": "tag"}]}),
    )
    failure_warnings = [w for w in plan.warnings if "hash indexing failure" in w]
    assert len(failure_warnings) == 1, plan.warnings
    report = MigrationExecutor().apply(plan, redis_url=redis_url, backup_dir=str(tmp_path / "b"))
    assert report.result == "succeeded", report.validation.errors
    assert report.validation.doc_count_match is True
    assert report.validation.indexing_failures_delta == 0


def test_quantization_that_resolves_indexing_failures_validates(
    r: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    """float32 → float16 where two documents already hold float16 bytes (failures of the
    float32 index): they are left as they are, become indexable, and the migration
    validates with the total key count conserved and fewer failures than before."""
    name, prefix = names()
    create(r, schema(name, prefix))
    load(r, prefix)
    f16 = np.ones(DIMS, dtype=np.float16).tobytes()
    r.hset(f"{prefix}:f16_1", mapping={"title": "half", "embedding": f16})
    r.hset(f"{prefix}:f16_2", mapping={"title": "half", "embedding": f16})
    wait_indexed(r, name)
    plan = MigrationPlanner().create_plan(
        name,
        redis_url=redis_url,
        schema_patch_path=write_patch(
            tmp_path, {"update_fields": [{"name": "embedding", "attrs": {"datatype": "float16"}}]}
        ),
    )
    report = MigrationExecutor().apply(plan, redis_url=redis_url, backup_dir=str(tmp_path / "b"))
    assert report.result == "succeeded", report.validation.errors
    assert report.validation.doc_count_match is True
    assert report.validation.indexing_failures_delta < 0
    assert r.hget(f"{prefix}:f16_1", "embedding") == f16
    assert index_info(name, redis_url=redis_url).stats.num_docs == DOCS + 2


def test_same_plan_after_the_index_was_recreated_by_hand(
    r: redis.Redis, redis_url: str, tmp_path: Path, default_root: Path
) -> None:
    """After a finished migration whose index was dropped and recreated from the source
    schema by hand, applying the same plan again does not report the old success: with that
    backup_dir it is a ValueError (RedisVL would delete that backup; ftctl never deletes a
    journal), without one it migrates again into the next default directory (``-2``), which
    later runs of the plan then find."""
    name, prefix = names()
    raw = schema(name, prefix)
    create(r, raw)
    load(r, prefix)
    plan = MigrationPlanner().create_plan(
        name,
        redis_url=redis_url,
        schema_patch_path=write_patch(
            tmp_path, {"update_fields": [{"name": "embedding", "attrs": {"datatype": "float16"}}]}
        ),
    )
    first = MigrationExecutor().apply(plan, redis_url=redis_url)
    first_dir = Path(first.backup.backup_dir)
    assert first.result == "succeeded" and first_dir.parent == default_root.resolve()
    converted = VECTORS[0].astype(np.float16).tobytes()
    assert r.hget(f"{prefix}:1", "embedding") == converted
    r.execute_command("FT.DROPINDEX", name)
    create(r, raw)
    load(r, prefix)  # float32 bytes again
    wait_indexed(r, name)

    with pytest.raises(ValueError, match="matches the plan's source again"):
        MigrationExecutor().apply(plan, redis_url=redis_url, backup_dir=str(first_dir))
    assert r.hget(f"{prefix}:1", "embedding") == VECTORS[0].tobytes()

    again = MigrationExecutor().apply(plan, redis_url=redis_url)
    assert again.result == "succeeded", again.validation.errors
    assert again.backup.backup_dir == f"{first_dir}-2"
    assert r.hget(f"{prefix}:1", "embedding") == converted
    assert (first_dir / name / "journal.log").is_file()
    twice = MigrationExecutor().apply(plan, redis_url=redis_url)
    assert twice.backup.backup_dir == again.backup.backup_dir
    assert twice.started_at == again.started_at


def test_redisvl_progress_callback_gets_step_and_detail(
    r: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    """A RedisVL progress_callback(step, detail) is called with RedisVL's phase names
    (enumerate, dump, quantize) and "done/total docs" details."""
    name, prefix = names()
    create(r, schema(name, prefix))
    load(r, prefix)
    plan = MigrationPlanner().create_plan(
        name,
        redis_url=redis_url,
        schema_patch_path=write_patch(
            tmp_path, {"update_fields": [{"name": "embedding", "attrs": {"datatype": "float16"}}]}
        ),
    )
    calls: list[tuple[str, str | None]] = []
    report = MigrationExecutor().apply(
        plan,
        redis_url=redis_url,
        backup_dir=str(tmp_path / "b"),
        progress_callback=lambda step, detail: calls.append((step, detail)),
    )
    assert report.result == "succeeded"
    steps = {step for step, _ in calls}
    assert {"enumerate", "dump", "quantize"} <= steps, calls
    assert (("quantize", f"{DOCS}/{DOCS} docs")) in calls


def test_report_files_carry_the_guide_timing_keys(
    r: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    """write_migration_report writes the guide's timing keys beside ftctl's per-step
    timings, and RedisVL's validation and backup fields."""
    name, prefix = names()
    create(r, schema(name, prefix))
    load(r, prefix)
    plan = MigrationPlanner().create_plan(
        name,
        redis_url=redis_url,
        schema_patch_path=write_patch(
            tmp_path, {"update_fields": [{"name": "embedding", "attrs": {"datatype": "float16"}}]}
        ),
    )
    report = MigrationExecutor().apply(plan, redis_url=redis_url, backup_dir=str(tmp_path / "b"))
    written = yaml.safe_load(write_migration_report(report, tmp_path / "report.yaml").read_text())
    timings = written["timings"]
    for key in (
        "total_migration_duration_seconds",
        "drop_duration_seconds",
        "quantize_duration_seconds",
        "recreate_duration_seconds",
        "initial_indexing_duration_seconds",
        "validation_duration_seconds",
        "downtime_duration_seconds",
    ):
        assert isinstance(timings[key], float), key
    assert {"enumerate", "backup", "quantize", "create", "wait", "validate"} <= set(
        timings["steps"]
    )
    assert written["validation"]["key_sample_exists"] is True
    assert written["validation"]["errors"] == []
    assert written["backup"]["backup_paths"] == [str((tmp_path / "b").resolve() / name)]
    assert written["source_index"] == name and written["target_index"] == name


def test_async_flow_through_redisvl_api(r: redis.Redis, redis_url: str, tmp_path: Path) -> None:
    """AsyncMigrationPlanner.create_plan + write_plan (not awaited, as in RedisVL),
    AsyncMigrationExecutor.apply with query_check_file and AsyncMigrationValidator's tuple;
    applying the same plan into the same backup dir again finds it finished."""
    name, prefix = names()
    create(r, schema(name, prefix))
    load(r, prefix)
    checks = write_checks(tmp_path, ["1", "2"], [])

    async def flow() -> None:
        planner = AsyncMigrationPlanner()
        plan = await planner.create_plan(
            name,
            redis_url=redis_url,
            schema_patch_path=write_patch(
                tmp_path,
                {
                    "add_fields": [{"name": "color", "type": "tag", "attrs": {"separator": ","}}],
                    "remove_fields": ["price"],
                    "update_fields": [{"name": "title", "attrs": {"sortable": True}}],
                },
            ),
        )
        assert plan.diff_classification.supported is True
        planner.write_plan(plan, str(tmp_path / "plan.yaml"))
        report = await AsyncMigrationExecutor().apply(
            load_migration_plan(str(tmp_path / "plan.yaml")),
            redis_url=redis_url,
            query_check_file=checks,
            backup_dir=str(tmp_path / "backups"),
        )
        assert report.result == "succeeded", report.validation.errors
        assert report.backup.backup_dir == str((tmp_path / "backups").resolve())
        assert report.backup.backup_paths == []
        assert report.validation.key_sample_exists is True and not report.validation.errors
        assert report.benchmark_summary.documents_indexed_per_second is not None
        validation, info, _ = await AsyncMigrationValidator().validate(
            load_migration_plan(str(tmp_path / "plan.yaml")),
            redis_url=redis_url,
            query_check_file=checks,
        )
        assert validation.schema_match is True and validation.key_sample_exists is True
        assert not validation.errors and info["num_docs"] == DOCS
        again = await AsyncMigrationExecutor().apply(
            load_migration_plan(str(tmp_path / "plan.yaml")),
            redis_url=redis_url,
            backup_dir=str(tmp_path / "backups"),
        )
        assert again.result == "succeeded" and again.started_at == report.started_at

    asyncio.run(flow())


# --- the backup reader -------------------------------------------------------------------


def test_vector_backup_reads_the_original_vectors_without_redis(
    r: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    """VectorBackup.load(report.backup.backup_paths[0]) (or the backup dir, or RedisVL's
    migration_backup_<index> path) yields every key's original float32 bytes in RedisVL's
    (keys, {key: {field: bytes}}) shape, and says what it holds; a path without a journal
    loads as None, as RedisVL's does."""
    name, prefix = names()
    create(r, schema(name, prefix))
    load(r, prefix)
    plan = MigrationPlanner().create_plan(
        name,
        redis_url=redis_url,
        schema_patch_path=write_patch(
            tmp_path, {"update_fields": [{"name": "embedding", "attrs": {"datatype": "float16"}}]}
        ),
    )
    backup_dir = tmp_path / "backups"
    report = MigrationExecutor().apply(plan, redis_url=redis_url, backup_dir=str(backup_dir))
    r.flushall()  # the reader needs no server

    for path in (
        report.backup.backup_paths[0],
        backup_dir,
        backup_dir / f"migration_backup_{name}",
    ):
        backup = VectorBackup.load(str(path))
        assert backup is not None and backup.index_name == name
        seen: dict[str, bytes] = {}
        for keys, originals in backup.iter_batches():
            for key in keys:
                assert isinstance(key, str)
                seen[key] = originals[key]["embedding"]
        assert seen == {f"{prefix}:{i + 1}": VECTORS[i].tobytes() for i in range(DOCS)}
    summary = backup.describe()
    assert summary.keys == DOCS and summary.result == "succeeded" and not summary.rolled_back
    assert [(f.name, f.datatype, f.dims) for f in summary.fields] == [
        ("embedding", "float32", DIMS)
    ]
    values = [v for _, batch in backup.iter_field("embedding") for v in batch]
    assert sorted(values) == sorted(v.tobytes() for v in VECTORS)
    assert VectorBackup.load(str(tmp_path / "nothing-here")) is None


# --- batch ---------------------------------------------------------------------------------


def _batch_indexes(r: redis.Redis, count: int, storage: str = "hash") -> list[str]:
    uid = uuid.uuid4().hex[:6]
    made = []
    for i in range(count):
        name, prefix = f"batch_{uid}_idx_{i}", f"batch:{uid}:{i}"
        create(r, schema(name, prefix, storage))
        load(r, prefix, storage, count=3)
        made.append(name)
    return made


def test_batch_plan_write_apply_through_redisvl_api(
    r: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    """create_batch_plan(pattern=) → write_batch_plan → apply(state_path=, report_dir=,
    backup_dir=, progress_callback=): every index migrated, RedisVL's report fields and
    the progress callback's (name, position, total, status) calls."""
    made = _batch_indexes(r, 3)
    pattern = made[0].rsplit("_", 1)[0] + "_*"
    planner = BatchMigrationPlanner()
    batch_plan = planner.create_batch_plan(
        pattern=pattern,
        schema_patch_path=write_patch(
            tmp_path, {"update_fields": [{"name": "title", "attrs": {"sortable": True}}]}
        ),
        redis_url=redis_url,
    )
    assert batch_plan.batch_id and len(batch_plan.indexes) == 3
    assert all(e.applicable and e.skip_reason is None for e in batch_plan.indexes)
    assert batch_plan.applicable_count == 3 and batch_plan.skipped_count == 0
    planner.write_batch_plan(batch_plan, str(tmp_path / "batch_plan.yaml"))
    calls: list[tuple[str, int, int, str]] = []

    report = BatchMigrationExecutor().apply(
        batch_plan,
        state_path=str(tmp_path / "batch_state.yaml"),
        report_dir=str(tmp_path / "reports"),
        redis_url=redis_url,
        backup_dir=str(tmp_path / "backups"),
        progress_callback=lambda *call: calls.append(call),
    )

    assert report.status == "completed"
    assert report.backup_dir == str((tmp_path / "backups").resolve())
    s = report.summary
    assert (s.total_indexes, s.successful, s.failed, s.skipped) == (3, 3, 0, 0)
    assert [c for c in calls if c[3] == "starting"] == [
        (n, i, 3, "starting") for i, n in enumerate(made, 1)
    ]
    assert [c for c in calls if c[3] == "success"] == [
        (n, i, 3, "success") for i, n in enumerate(made, 1)
    ]
    for name in made:
        title = index_info(name, redis_url=redis_url).schema.field("title")
        assert title is not None and title.attrs.sortable is True  # type: ignore[union-attr]
        assert (tmp_path / "reports" / f"{name}_report.yaml").is_file()


def test_batch_skips_inapplicable_and_quantizes_without_accept_data_loss(
    r: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    """A float16 batch patch over an index without the field: that index is skipped with
    the field named in skip_reason; the other is quantized by the Python API without
    accept_data_loss (RedisVL's batch executor has no such flag)."""
    (with_vector,) = _batch_indexes(r, 1)
    uid = uuid.uuid4().hex[:6]
    without = f"no_emb_{uid}"
    r.execute_command(
        "FT.CREATE",
        without,
        "ON",
        "HASH",
        "PREFIX",
        "1",
        f"noemb:{uid}",
        "SCHEMA",
        "doc_id",
        "TAG",
        "content",
        "TEXT",
    )
    r.hset(f"noemb:{uid}:1", mapping={"doc_id": "1", "content": "x"})
    batch_plan = BatchMigrationPlanner().create_batch_plan(
        indexes=[with_vector, without],
        schema_patch_path=write_patch(
            tmp_path, {"update_fields": [{"name": "embedding", "attrs": {"datatype": "float16"}}]}
        ),
        redis_url=redis_url,
    )
    skipped = [i for i in batch_plan.indexes if not i.applicable]
    assert [i.name for i in skipped] == [without]
    assert "embedding" in (skipped[0].skip_reason or "").lower()
    report = BatchMigrationExecutor().apply(
        batch_plan,
        state_path=str(tmp_path / "state.yaml"),
        report_dir=str(tmp_path / "reports"),
        redis_url=redis_url,
        backup_dir=str(tmp_path / "backups"),
    )
    assert report.summary.successful == 1 and report.summary.skipped == 1
    emb = index_info(with_vector, redis_url=redis_url).schema.field("embedding")
    assert emb is not None and emb.attrs.datatype == "float16"  # type: ignore[union-attr]


def test_batch_resume_takes_over_a_redisvl_checkpoint(
    r: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    """resume(state_path=, batch_plan_path=) on a batch_state.yaml written by RedisVL
    (completed / remaining, no journal) keeps the completed index as it is, migrates the
    remaining ones, and from then on the state file is ftctl's."""
    made = _batch_indexes(r, 3)
    planner = BatchMigrationPlanner()
    batch_plan = planner.create_batch_plan(
        indexes=made,
        schema_patch_path=write_patch(
            tmp_path, {"update_fields": [{"name": "title", "attrs": {"sortable": True}}]}
        ),
        redis_url=redis_url,
    )
    plan_path = tmp_path / "batch_plan.yaml"
    planner.write_batch_plan(batch_plan, str(plan_path))
    state_path = tmp_path / "batch_state.yaml"
    state_path.write_text(
        yaml.safe_dump(
            {
                "batch_id": batch_plan.batch_id,
                "plan_path": str(plan_path),
                "started_at": "2026-03-20T10:00:00Z",
                "updated_at": "2026-03-20T10:01:00Z",
                "completed": [
                    {"name": made[0], "status": "success", "completed_at": "2026-03-20T10:00:30Z"}
                ],
                "remaining": made[1:],
                "current_index": None,
            }
        )
    )
    report = BatchMigrationExecutor().resume(
        state_path=str(state_path),
        batch_plan_path=str(plan_path),
        report_dir=str(tmp_path / "reports"),
        redis_url=redis_url,
        backup_dir=str(tmp_path / "backups"),
    )
    assert report.status == "completed" and report.summary.successful == 3
    for name in made[1:]:
        title = index_info(name, redis_url=redis_url).schema.field("title")
        assert title is not None and title.attrs.sortable is True  # type: ignore[union-attr]
    untouched = index_info(made[0], redis_url=redis_url).schema.field("title")
    assert untouched is not None and not untouched.attrs.sortable  # type: ignore[union-attr]
    state = yaml.safe_load(state_path.read_text())
    assert state["journal"] and state["remaining"] == []
    again = BatchMigrationExecutor().resume(state_path=str(state_path), redis_url=redis_url)
    assert again.status == "completed"


def test_batch_overlap_refusals_are_value_errors(
    r: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    """Indexes with identical or nested prefixes are refused at batch-plan time with a
    ValueError that says "overlapping indexes detected" and names each pair; disjoint
    prefixes plan, with requires_quantization for a datatype patch."""
    uid = uuid.uuid4().hex[:6]
    broad, narrow, same = f"broad_{uid}", f"narrow_{uid}", f"same_{uid}"
    create(r, schema(broad, f"nest_{uid}"))
    create(r, schema(narrow, f"nest_{uid}:premium"))
    create(r, schema(same, f"nest_{uid}"))
    patch = write_patch(
        tmp_path, {"update_fields": [{"name": "embedding", "attrs": {"datatype": "float16"}}]}
    )
    planner = BatchMigrationPlanner()
    with pytest.raises(ValueError, match="overlapping indexes detected"):
        planner.create_batch_plan(
            indexes=[broad, same], schema_patch_path=patch, redis_url=redis_url
        )
    with pytest.raises(ValueError, match=f"{broad} <-> {narrow}"):
        planner.create_batch_plan(
            indexes=[broad, narrow], schema_patch_path=patch, redis_url=redis_url
        )
    disjoint = _batch_indexes(r, 3)
    batch_plan = planner.create_batch_plan(
        indexes=disjoint, schema_patch_path=patch, redis_url=redis_url
    )
    assert batch_plan.applicable_count == 3 and batch_plan.requires_quantization is True
    with pytest.raises(ValueError, match="failure policy"):
        planner.create_batch_plan(
            indexes=disjoint,
            schema_patch_path=patch,
            redis_url=redis_url,
            failure_policy="nope",  # type: ignore[arg-type]
        )


def test_report_is_a_plain_struct_with_redisvl_and_ftctl_fields(
    r: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    """The report encodes to plain data holding RedisVL's field names and ftctl's
    (per-step timings, every check, the journal)."""
    name, prefix = names()
    create(r, schema(name, prefix))
    load(r, prefix)
    plan = MigrationPlanner().create_plan(
        name,
        redis_url=redis_url,
        schema_patch_path=write_patch(tmp_path, {"add_fields": [{"name": "color", "type": "tag"}]}),
    )
    report = MigrationExecutor().apply(plan, redis_url=redis_url, backup_dir=str(tmp_path / "b"))
    raw = msgspec.to_builtins(report)
    for key in (
        "version",
        "mode",
        "source_index",
        "target_index",
        "result",
        "started_at",
        "finished_at",
        "timings",
        "validation",
        "benchmark_summary",
        "backup",
        "warnings",
        "manual_actions",
    ):
        assert key in raw, key
    assert {
        "schema_match",
        "doc_count_match",
        "key_sample_exists",
        "indexing_failures_delta",
        "query_checks",
        "errors",
        "checks",
    } <= set(raw["validation"])
    assert {
        "documents_indexed_per_second",
        "source_index_size_mb",
        "target_index_size_mb",
        "index_size_delta_mb",
    } <= set(raw["benchmark_summary"])
    assert {"backup_dir", "backup_paths", "journal"} <= set(raw["backup"])


def test_batch_plan_written_by_redisvl_is_refused_with_the_reason(
    r: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    """A batch_plan.yaml as RedisVL writes it (no per-index plans: RedisVL plans each index
    while it applies) loads, and apply refuses it with a ValueError that says why and how
    to plan it with ftctl, before changing anything."""
    (name,) = _batch_indexes(r, 1)
    path = tmp_path / "batch_plan.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "batch_id": "batch_0123456789ab",
                "mode": "drop_recreate",
                "failure_policy": "fail_fast",
                "requires_quantization": False,
                "shared_patch": {
                    "version": 1,
                    "changes": {"update_fields": [{"name": "title", "attrs": {"sortable": True}}]},
                },
                "indexes": [{"name": name, "applicable": True}],
                "created_at": "2026-03-20T10:00:00Z",
            }
        )
    )
    with pytest.raises(ValueError, match=f"no reviewed plan for index '{name}'"):
        BatchMigrationExecutor().apply(
            str(path), redis_url=redis_url, backup_dir=str(tmp_path / "b")
        )
    title = index_info(name, redis_url=redis_url).schema.field("title")
    assert title is not None and not title.attrs.sortable  # type: ignore[union-attr]
