"""The executors close every connection they open, whatever the driver and worker count."""

from __future__ import annotations

import gc
import time
from pathlib import Path

import pytest
import redis
import redis.asyncio
from helpers import INDEX, patch, plan, source

from ftctl.executor import AsyncMigrationExecutor, MigrationExecutor


def _clients(r: redis.Redis) -> int:
    gc.collect()  # connections an earlier test dropped without closing go first
    time.sleep(0.05)  # and the server notices they are gone
    return len(r.client_list())


@pytest.mark.parametrize("workers", [1, 3])
def test_sync_apply_closes_worker_connections(
    r: redis.Redis, redis_url: str, tmp_path: Path, workers: int
) -> None:
    """After a sync apply with worker threads, the server has exactly the connections it had
    before (the workers' own connections are closed, not left for the garbage collector)."""
    source(r, "hash")
    made = plan(redis_url, patch(index={"prefix": "item:"}))
    caller = redis.Redis.from_url(redis_url, protocol=3)
    caller.ping()
    before = _clients(r)
    report = MigrationExecutor().apply(
        made, client=caller, backup_dir=tmp_path, batch_size=10, num_workers=workers
    )
    assert report.result == "succeeded"
    assert _clients(r) == before
    caller.close()


@pytest.mark.parametrize("workers", [1, 3])
async def test_async_apply_closes_worker_connections(
    r: redis.Redis, redis_url: str, tmp_path: Path, workers: int
) -> None:
    """After an asyncio apply with worker tasks, the server has exactly the connections it had
    before: each worker's ``redis.asyncio`` pool is disconnected, so no "unclosed Connection"
    ResourceWarning fires later in some unrelated test."""
    source(r, "hash")
    made = plan(redis_url, patch(index={"prefix": "item:"}))
    caller = redis.asyncio.Redis.from_url(redis_url, protocol=3)
    await caller.ping()
    before = _clients(r)
    report = await AsyncMigrationExecutor().apply(
        made, client=caller, backup_dir=tmp_path, batch_size=10, num_workers=workers
    )
    assert report.result == "succeeded"
    assert r.execute_command("FT._LIST") == [INDEX.encode()]
    assert _clients(r) == before
    await caller.aclose()
