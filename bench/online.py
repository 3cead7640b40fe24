"""Downtime of online vs drop_recreate on the same data, printed as a ratio.

Downtime = the longest interval in which a query by the original name (KNN or text) failed
or returned an incomplete result, while a writer adds and updates documents. Runs on the
embedded server: ``.venv/bin/python bench/online.py [--docs 20000]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))

from online_load import INDEX, Load, create

from ftctl.executor import MigrationExecutor
from ftctl.plan import patch_from_builtins
from ftctl.planner import MigrationPlanner
from ftctl.server import EmbeddedServer

PATCH = {"changes": {"update_fields": [{"name": "emb", "attrs": {"algorithm": "hnsw", "m": 8}}]}}


def measure(url: str, docs: int, mode: str) -> tuple[float, int, int]:
    """(downtime seconds, failed queries, queries) of one migration under load."""
    r = redis.Redis.from_url(url, protocol=3)
    r.flushall()
    create(r, "hash", docs, algorithm="FLAT")
    plan = MigrationPlanner().create_plan(
        INDEX,
        redis_client=r,
        schema_patch=patch_from_builtins(PATCH),
        mode=mode,  # type: ignore[arg-type]
    )
    with tempfile.TemporaryDirectory() as backup, Load(url, "hash", docs) as load:
        MigrationExecutor().apply(plan, client=r, backup_dir=backup)
    r.close()
    return load.downtime(), len(load.failures), load.queries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--docs", type=int, default=20_000)
    args = parser.parse_args()
    with EmbeddedServer() as server:
        results = {
            mode: measure(server.url, args.docs, mode) for mode in ("drop_recreate", "online")
        }
    for mode, (downtime, failed, queries) in results.items():
        print(f"{mode:>13}: downtime {downtime:.3f}s, {failed} of {queries} queries failed")
    online, drop = results["online"][0], results["drop_recreate"][0]
    ratio = f"{online / drop:.4f}" if drop else "n/a (drop_recreate had no downtime)"
    print(f"downtime ratio online/drop_recreate: {ratio}")


if __name__ == "__main__":
    main()
