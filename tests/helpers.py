"""Shared test data and plan builders for tests that run migrations on the real server.

One small data set serves every migration test: index ``docs`` on prefix ``doc:`` over
:data:`DOCS` documents (hash or JSON) with an indexed ``title`` TEXT, ``category`` TAG,
``price`` NUMERIC and ``emb`` FLOAT32 HNSW vector of :data:`DIMS` dims, plus unindexed
``body``, ``color``, ``rating`` and ``loc`` fields that "add a field" changes pick up.

:func:`snapshot` captures what "nothing changed" / "restored exactly" compares: every key with
its type, content and TTL. :func:`expected_after` computes, from a snapshot taken before a
migration, what Redis must hold after it (renamed keys and fields, re-encoded vectors).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import redis

from ftctl.executor import AsyncMigrationExecutor, MigrationExecutor
from ftctl.journal.report import MigrationReport
from ftctl.plan import MigrationPlan, SchemaPatch, patch_from_builtins
from ftctl.plan.codecs import convert_many
from ftctl.planner import MigrationPlanner
from ftctl.schema.ftinfo import IndexInfo, parse_ft_info

DIMS = 8
DOCS = 60
INDEX = "docs"
PREFIX = "doc:"

Snapshot = dict[bytes, tuple[bytes, Any, int]]
"""key → (type, content, PEXPIRETIME); content is the HGETALL dict, the parsed JSON or DUMP."""


def create_index(
    r: redis.Redis,
    storage: str = "hash",
    *,
    name: str = INDEX,
    prefix: str = PREFIX,
    datatype: str = "FLOAT32",
) -> None:
    """FT.CREATE the test index (see the module docstring) on ``prefix``."""
    fields = [("title", "TEXT"), ("category", "TAG"), ("price", "NUMERIC")]
    vector = [
        "VECTOR",
        "HNSW",
        "6",
        "TYPE",
        datatype,
        "DIM",
        str(DIMS),
        "DISTANCE_METRIC",
        "COSINE",
    ]
    schema: list[str] = []
    for field, kind in fields:
        schema += [f"$.{field}", "AS", field, kind] if storage == "json" else [field, kind]
    schema += (["$.emb", "AS", "emb"] if storage == "json" else ["emb"]) + vector
    on = "JSON" if storage == "json" else "HASH"
    r.execute_command("FT.CREATE", name, "ON", on, "PREFIX", "1", prefix, "SCHEMA", *schema)


def vectors(count: int = DOCS, seed: int = 0) -> np.ndarray:
    """``count`` seeded float32 vectors of :data:`DIMS` dims."""
    return np.random.default_rng(seed).standard_normal((count, DIMS)).astype(np.float32)


def load_docs(
    r: redis.Redis, storage: str = "hash", *, prefix: str = PREFIX, count: int = DOCS
) -> None:
    """Write ``count`` documents ``<prefix>0 …`` (hash bytes or JSON float lists)."""
    pipe = r.pipeline(transaction=False)
    for i, vector in enumerate(vectors(count)):
        doc: dict[str, Any] = {
            "title": f"running item {i}",
            "category": "a,b" if i % 2 else "c",
            "price": i,
            "body": f"body text {i}",
            "color": "red" if i % 3 else "blue",
            "rating": i % 5,
            "loc": "13.4,52.5",
        }
        if storage == "json":
            pipe.execute_command(
                "JSON.SET", f"{prefix}{i}", "$", json.dumps({**doc, "emb": vector.tolist()})
            )
        else:
            pipe.hset(f"{prefix}{i}", mapping={**doc, "emb": vector.tobytes()})
    pipe.execute()


def info(r: redis.Redis, name: str = INDEX) -> IndexInfo:
    return parse_ft_info(r.execute_command("FT.INFO", name))


def wait_indexed(r: redis.Redis, name: str = INDEX, timeout: float = 10.0) -> IndexInfo:
    """FT.INFO of ``name`` once it has finished indexing."""
    deadline = time.monotonic() + timeout
    while True:
        current = info(r, name)
        if not current.stats.indexing or time.monotonic() > deadline:
            return current
        time.sleep(0.005)


def source(r: redis.Redis, storage: str = "hash", count: int = DOCS) -> None:
    """The test index with ``count`` documents, fully indexed."""
    create_index(r, storage)
    load_docs(r, storage, count=count)
    wait_indexed(r)


def patch(**changes: Any) -> SchemaPatch:
    """A SchemaPatch from the ``changes:`` sections as plain data."""
    return patch_from_builtins({"version": 1, "changes": changes})


def plan(redis_url: str, changes: SchemaPatch, index: str = INDEX) -> MigrationPlan:
    """The planner's plan for ``changes``; fails the test when it is blocked."""
    made = MigrationPlanner().create_plan(index, redis_url=redis_url, schema_patch=changes)
    assert made.supported, made.diff_classification.blocked_reasons
    return made


def snapshot(r: redis.Redis) -> Snapshot:
    """Every key but ftctl's schema history, with its type, content and PEXPIRETIME (hash
    field order does not count)."""
    out: Snapshot = {}
    for key in r.scan_iter(count=1000):
        if key.startswith(b"ftctl:schema:"):
            continue  # schema history is ftctl's metadata, checked by its own tests
        kind = r.type(key)
        content: Any
        if kind == b"hash":
            content = r.hgetall(key)
        elif kind == b"ReJSON-RL":
            content = json.loads(r.execute_command("JSON.GET", key, "$"))[0]
        else:
            content = r.dump(key)
        out[key] = (kind, content, r.execute_command("PEXPIRETIME", key))
    return out


def state(r: redis.Redis) -> tuple[Snapshot, list[bytes]]:
    """:func:`snapshot` plus the sorted index list: what "nothing changed" compares."""
    return snapshot(r), sorted(r.execute_command("FT._LIST"))


def expected_after(
    before: Snapshot,
    *,
    prefix: tuple[str, str] | None = None,
    renames: Sequence[tuple[str, str]] = (),
    datatype: str | None = None,
    field: str = "emb",
) -> Snapshot:
    """What a migration must leave of ``before``: keys moved from ``prefix[0]`` to
    ``prefix[1]``, top-level fields renamed, hash vectors in ``field`` converted from float32
    to ``datatype`` (exactly as :func:`convert_many` does). JSON vectors never change."""
    out: Snapshot = {}
    for key, (kind, content, ttl) in before.items():
        if prefix is not None and key.startswith(prefix[0].encode()):
            key = prefix[1].encode() + key[len(prefix[0]) :]
        if kind in (b"hash", b"ReJSON-RL"):
            encode = (lambda s: s.encode()) if kind == b"hash" else (lambda s: s)
            content = dict(content)
            for old, new in renames:
                if encode(old) in content:
                    content[encode(new)] = content.pop(encode(old))
            name = encode(field)
            if kind == b"hash" and datatype is not None and name in content:
                (content[name],) = convert_many([content[name]], "float32", datatype, DIMS)
        out[key] = (kind, content, ttl)
    return out


RUNNERS = ("sync-w1", "sync-w2", "async-w1", "async-w2")
"""The four ways to run apply: sync or asyncio executor, with 1 or 2 workers."""


def run_apply(
    runner: str,
    plan: MigrationPlan,
    *,
    redis_url: str,
    backup_dir: str | os.PathLike[str],
    batch_size: int = 25,
    **options: Any,
) -> MigrationReport:
    """Apply ``plan`` with one of :data:`RUNNERS` (lossy changes accepted unless overridden)."""
    kind, workers = runner.split("-w")
    options.setdefault("accept_data_loss", True)
    kwargs = dict(
        redis_url=redis_url,
        backup_dir=backup_dir,
        batch_size=batch_size,
        num_workers=int(workers),
        **options,
    )
    if kind == "sync":
        return MigrationExecutor().apply(plan, **kwargs)
    return asyncio.run(AsyncMigrationExecutor().apply(plan, **kwargs))


def ft_info_reply(
    name: str = INDEX,
    *,
    prefixes: Sequence[str] = (PREFIX,),
    key_type: str = "HASH",
    num_docs: int = 5,
    failures: int = 0,
    indexing: bool = False,
    percent: float = 1.0,
) -> dict[bytes, Any]:
    """A minimal RESP3 FT.INFO reply (``title`` TEXT, ``tag`` TAG) for scripted unit tests."""
    return {
        b"index_name": name.encode(),
        b"index_definition": [
            b"key_type",
            key_type.encode(),
            b"prefixes",
            [p.encode() for p in prefixes],
        ],
        b"attributes": [
            [b"identifier", b"title", b"attribute", b"title", b"type", b"TEXT"],
            [b"identifier", b"tag", b"attribute", b"tag", b"type", b"TAG", b"SEPARATOR", b","],
        ],
        b"num_docs": num_docs,
        b"hash_indexing_failures": failures,
        b"indexing": int(indexing),
        b"percent_indexed": str(percent).encode(),
    }


ROOT = Path(__file__).resolve().parents[1]


def run_with_closed_stdout(*args: str) -> subprocess.CompletedProcess[bytes]:
    """Run ``ftctl *args`` in a subprocess whose stdout is a pipe nobody reads any more (as
    after ``| head -1`` has exited): the reader is gone before the first byte is written."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    paths = [str(ROOT), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}
    try:
        return subprocess.run(
            [sys.executable, "-c", "from ftctl.cli import main; main()", *args],
            stdout=write_end,
            stderr=subprocess.PIPE,
            env=env,
            timeout=120,
            check=False,
        )
    finally:
        os.close(write_end)
