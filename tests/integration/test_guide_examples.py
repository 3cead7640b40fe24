"""The guide's Python examples run as written against ftctl and print what the guide shows.

The examples live verbatim in ``tests/guide/`` (their import line rewritten from
``redisvl.migration`` to ``ftctl``); see its README. Each test sets up what the example
assumes (the guide's ``myindex``: a JSON index on ``doc:`` with ``title``, ``embedding`` and a
``legacy_field`` the guide's patch removes; ``*_idx`` indexes for the batch example; a
finished quantization in ``/tmp/backups`` for the backup reader), points the guide's
``redis://localhost:6379`` and ``/tmp/...`` directories at the test's server and directories,
runs the example in the test's working directory and compares what it prints.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis

from ftctl import MigrationExecutor, MigrationPlanner, index_info
from ftctl.plan.models import load_patch

GUIDE = Path(__file__).resolve().parents[1] / "guide"
DIMS = 8
DOCS = 12
VECTORS = np.random.default_rng(11).standard_normal((DOCS, DIMS)).astype(np.float32)


def _example(name: str) -> str:
    return (GUIDE / name).read_text()


def run_example(
    name: str,
    *,
    redis_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    namespace: dict[str, Any] | None = None,
) -> list[str]:
    """Run ``tests/guide/<name>`` with the guide's server and /tmp paths pointed at the
    test's; returns the lines it printed."""
    source = _example(name)
    for literal, replacement in (
        ("redis://localhost:6379", redis_url),
        ("/tmp/migration_backups", str(tmp_path / "migration_backups")),
        ("/tmp/backups", str(tmp_path / "backups")),
    ):
        source = source.replace(literal, replacement)
    capsys.readouterr()
    exec(compile(source, str(GUIDE / name), "exec"), namespace if namespace is not None else {})
    return capsys.readouterr().out.splitlines()


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The example's working directory, holding the guide's patch files (ftctl logs through
    stdlib ``logging``: an example that configures none prints nothing but its own lines)."""
    for patch in ("schema_patch.yaml", "quantize_patch.yaml"):
        shutil.copy(GUIDE / patch, tmp_path / patch)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FTCTL_BACKUP_DIR", str(tmp_path / "default-root"))
    yield tmp_path


def _wait(r: redis.Redis, name: str) -> None:
    deadline = time.monotonic() + 10
    while index_info(name, redis_client=r).stats.indexing and time.monotonic() < deadline:
        time.sleep(0.01)


def guide_json_index(r: redis.Redis) -> None:
    """The guide's ``myindex``: JSON on ``doc:``, title TEXT, legacy_field TAG, embedding
    HNSW FLOAT32 cosine; documents also hold the ``category`` the patch adds."""
    r.execute_command(
        "FT.CREATE", "myindex", "ON", "JSON", "PREFIX", "1", "doc:", "SCHEMA",
        "$.title", "AS", "title", "TEXT",
        "$.legacy_field", "AS", "legacy_field", "TAG",
        "$.embedding", "AS", "embedding", "VECTOR", "HNSW", "6",
        "TYPE", "FLOAT32", "DIM", str(DIMS), "DISTANCE_METRIC", "COSINE",
    )  # fmt: skip
    for i, vector in enumerate(VECTORS):
        doc = {
            "title": f"title {i}",
            "legacy_field": "old",
            "category": "news|sports" if i % 2 else "tech",
            "embedding": vector.tolist(),
        }
        r.execute_command("JSON.SET", f"doc:{i + 1}", "$", json.dumps(doc))
    _wait(r, "myindex")


def hash_index(r: redis.Redis, name: str, prefix: str, *, vector: bool = True) -> None:
    """A hash index ``name`` on ``prefix`` (title, and an FLOAT32 ``embedding``)."""
    schema = ["title", "TEXT"]
    if vector:
        schema += ["embedding", "VECTOR", "HNSW", "6", "TYPE", "FLOAT32", "DIM", str(DIMS)]
        schema += ["DISTANCE_METRIC", "COSINE"]
    r.execute_command("FT.CREATE", name, "ON", "HASH", "PREFIX", "1", prefix, "SCHEMA", *schema)
    for i, v in enumerate(VECTORS):
        fields: dict[str, Any] = {"title": f"title {i}"}
        if vector:
            fields["embedding"] = v.tobytes()
        r.hset(f"{prefix}{i + 1}", mapping=fields)
    _wait(r, name)


def test_sync_api_example(
    r: redis.Redis, redis_url: str, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The guide's "Sync API" example migrates myindex with the guide's schema patch and
    prints "Migration result: succeeded"; the index then has the patched schema."""
    guide_json_index(r)
    printed = run_example("sync_api.py.txt", redis_url=redis_url, tmp_path=workdir, capsys=capsys)
    assert printed == ["Migration result: succeeded"]
    live = index_info("myindex", redis_client=r).schema
    assert [f.name for f in live.fields] == ["title", "embedding", "category"]
    assert live.field("embedding").attrs.datatype == "float16"  # type: ignore[union-attr]
    assert live.field("title").attrs.sortable is True  # type: ignore[union-attr]
    assert (workdir / "migration_backups" / "myindex" / "journal.log").is_file()


def test_sync_workers_example(
    r: redis.Redis, redis_url: str, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The guide's "With backup and multi-worker quantization" example (it continues the
    sync one: ``executor`` and a quantization ``plan``) prints the quantize duration in
    seconds, a number."""
    hash_index(r, "myindex", "doc:")
    plan = MigrationPlanner().create_plan(
        "myindex", redis_url=redis_url, schema_patch=load_patch(workdir / "quantize_patch.yaml")
    )
    namespace: dict[str, Any] = {"executor": MigrationExecutor(), "plan": plan}
    printed = run_example(
        "sync_workers.py.txt",
        redis_url=redis_url,
        tmp_path=workdir,
        capsys=capsys,
        namespace=namespace,
    )
    assert len(printed) == 1 and re.fullmatch(r"Quantized in \d+\.\d+(e-\d+)?s", printed[0])
    assert namespace["report"].result == "succeeded"
    stored = r.hget("doc:1", "embedding")
    assert stored == VECTORS[0].astype(np.float16).tobytes()


def test_async_api_example(
    r: redis.Redis, redis_url: str, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The guide's "Async API" example prints "Migration result: succeeded"."""
    guide_json_index(r)
    printed = run_example("async_api.py.txt", redis_url=redis_url, tmp_path=workdir, capsys=capsys)
    assert printed == ["Migration result: succeeded"]
    live = index_info("myindex", redis_client=r).schema
    assert live.field("embedding").attrs.datatype == "float16"  # type: ignore[union-attr]


def test_batch_api_example(
    r: redis.Redis, redis_url: str, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The guide's "Python API for Batch Migration" example over products_idx, users_idx
    and legacy_idx (no embedding): it lists what it will migrate and skip, reports each
    index's progress, and prints "Batch status: completed" and the success count — a
    float16 batch, run by the Python API without accept_data_loss as in the guide."""
    hash_index(r, "products_idx", "product:")
    hash_index(r, "users_idx", "user:")
    hash_index(r, "legacy_idx", "legacy:", vector=False)
    printed = run_example("batch_api.py.txt", redis_url=redis_url, tmp_path=workdir, capsys=capsys)
    assert printed[0].startswith("Skipping legacy_idx: ") and "embedding" in printed[0]
    assert printed[1:3] == ["Will migrate: products_idx", "Will migrate: users_idx"]
    assert printed[3:] == [
        "[1/2] products_idx: starting",
        "[1/2] products_idx: success",
        "[2/2] users_idx: starting",
        "[2/2] users_idx: success",
        "Batch status: completed",
        "Successful: 2/3",
    ]
    assert (workdir / "batch_state.yaml").is_file()
    assert (workdir / "reports" / "products_idx_report.yaml").is_file()


def test_backup_reader_example(
    r: redis.Redis, redis_url: str, workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The guide's "Python API for Rollback" example reads the backup of a float16
    quantization of myindex (kept in /tmp/backups) and writes every original float32
    vector back, printing "Rollback complete"."""
    hash_index(r, "myindex", "doc:")
    plan = MigrationPlanner().create_plan(
        "myindex", redis_url=redis_url, schema_patch=load_patch(workdir / "quantize_patch.yaml")
    )
    report = MigrationExecutor().apply(plan, redis_url=redis_url, backup_dir=workdir / "backups")
    assert report.result == "succeeded"
    assert r.hget("doc:1", "embedding") != VECTORS[0].tobytes()
    printed = run_example(
        "backup_reader.py.txt", redis_url=redis_url, tmp_path=workdir, capsys=capsys
    )
    assert printed == ["Rollback complete"]
    for i, vector in enumerate(VECTORS):
        assert r.hget(f"doc:{i + 1}", "embedding") == vector.tobytes()
