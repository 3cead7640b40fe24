"""bench/online.py keeps working: its smoke run (tiny sizes) on the session's server."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import redis

BENCH = Path(__file__).resolve().parents[2] / "bench" / "online.py"


def test_the_online_bench_smoke_run_prints_both_modes_side_by_side(
    r: redis.Redis, redis_url: str
) -> None:
    """``bench/online.py --smoke`` runs both cases in both modes and prints one table per
    case: the online run succeeded with no failed query, the row of each measure is there
    (the numbers are the bench's to print, not this test's to judge)."""
    done = subprocess.run(
        [sys.executable, str(BENCH), "--smoke", "--url", redis_url],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert done.returncode == 0, done.stderr[-2000:]
    tables = done.stdout.strip().split("\n\n")
    assert [t.splitlines()[0] for t in tables] == [
        "HNSW 300 x 8, float16, reader + writer (drop_recreate: reader alone)",
        "FLAT 500 x 8, float16, reader + writer (drop_recreate: reader alone)",
    ]
    for text in tables:
        _, header, *lines = text.splitlines()
        rows = {cells[0]: cells[1:] for cells in (re.split(r" {2,}", x.strip()) for x in lines)}
        assert header.split() == ["drop_recreate", "online"]
        assert rows["result"][1] == "succeeded"
        assert rows["failed queries"][1].startswith("0 of ")
        assert rows["index builds"] == ["1", "2"]
        assert rows["result"][0] == "succeeded" and rows["writes during the run"][0] == "0"
