"""Shared by the online load test and bench/online.py: a 20k-doc HNSW index under load.

:class:`Load` runs one reader (KNN + text query by the index's original name, in a loop) and
one writer (new and updated documents) while a migration runs, and records every failed or
incomplete query with its time, so downtime is the longest such interval.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import redis

DIMS = 16
INDEX = "docs"
PREFIX = "doc:"


def create(r: redis.Redis, storage: str, count: int, *, algorithm: str = "HNSW") -> None:
    """``count`` documents ``doc:<i>`` (title "doc <i>", a DIMS-dim vector) and the index."""
    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((count, DIMS)).astype(np.float32)
    pipe = r.pipeline(transaction=False)
    for i, v in enumerate(vectors):
        if storage == "json":
            pipe.execute_command("JSON.SET", f"{PREFIX}{i}", "$", json.dumps(_doc(i, v)))
        else:
            pipe.hset(f"{PREFIX}{i}", mapping={"title": f"doc {i}", "emb": v.tobytes()})
        if i % 2000 == 1999:
            pipe.execute()
    pipe.execute()
    params = ["TYPE", "FLOAT32", "DIM", str(DIMS), "DISTANCE_METRIC", "COSINE"]
    if storage == "json":
        schema = ["$.title", "AS", "title", "TEXT", "$.emb", "AS", "emb"]
        on = "JSON"
    else:
        schema, on = ["title", "TEXT", "emb"], "HASH"
    r.execute_command(
        "FT.CREATE", INDEX, "ON", on, "PREFIX", "1", PREFIX, "SCHEMA", *schema,
        "VECTOR", algorithm, str(len(params)), *params,
    )  # fmt: skip
    wait_indexed(r, INDEX)


def _doc(i: int, v: np.ndarray, title: str | None = None) -> dict[str, object]:
    return {"title": title or f"doc {i}", "emb": [round(float(x), 4) for x in v]}


def wait_indexed(r: redis.Redis, name: str) -> None:
    while True:
        info = r.execute_command("FT.INFO", name)
        if int(info[b"indexing"]) == 0 and float(info[b"percent_indexed"]) >= 1.0:
            return
        time.sleep(0.05)


@dataclass
class Load:
    """A reader and a writer thread against ``url`` while a migration runs."""

    url: str
    storage: str
    base: int
    stop: threading.Event = field(default_factory=threading.Event)
    queries: int = 0
    failures: list[tuple[float, float, str]] = field(default_factory=list)
    """(start, end, what) of each failed or incomplete query."""
    written: list[str] = field(default_factory=list)
    _threads: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> Load:
        self._threads = [
            threading.Thread(target=self._read, daemon=True),
            threading.Thread(target=self._write, daemon=True),
        ]
        for t in self._threads:
            t.start()
        time.sleep(0.2)
        return self

    def __exit__(self, *exc: object) -> None:
        time.sleep(0.2)
        self.stop.set()
        for t in self._threads:
            t.join(10)

    def _read(self) -> None:
        """Queries by the original name. After a float32→float16 cut-over the index wants
        float16 query blobs: like an application switching its encoding at the cut-over, the
        reader retries once in the other width when the server says the blob size is wrong."""
        client = redis.Redis.from_url(self.url, protocol=3)
        blobs = [np.ones(DIMS, dtype=dtype).tobytes() for dtype in (np.float32, np.float16)]
        text = ("FT.SEARCH", INDEX, "@title:doc", "LIMIT", "0", "0")
        while not self.stop.is_set():
            for kind, expected in (("knn", 5), ("text", self.base)):
                start = time.monotonic()
                ok, what = False, ""
                for blob in blobs if kind == "knn" else [b""]:
                    command = text
                    if kind == "knn":
                        command = ("FT.SEARCH", INDEX, "*=>[KNN 5 @emb $v]", "PARAMS", "2")
                        command += ("v", blob, "NOCONTENT", "DIALECT", "2")
                    try:
                        reply = client.execute_command(*command)
                    except redis.ResponseError as exc:
                        what = f"{kind}: {exc}"
                        if "blob size" in str(exc):
                            continue
                        break
                    total = int(reply[b"total_results"])
                    ok, what = total >= expected, f"{kind}: {total} results"
                    break
                self.queries += 1
                if not ok:
                    self.failures.append((start, time.monotonic(), what))
        client.close()

    def _write(self) -> None:
        client = redis.Redis.from_url(self.url, protocol=3)
        rng = np.random.default_rng(11)
        i = 0
        while not self.stop.is_set():
            new_key = f"{PREFIX}{self.base + i}"
            old_key = f"{PREFIX}{(i * 7919) % self.base}"
            for key, n in ((new_key, self.base + i), (old_key, (i * 7919) % self.base)):
                v = rng.standard_normal(DIMS).astype(np.float32)
                title = f"doc {n} updated"
                if self.storage == "json":
                    client.execute_command("JSON.SET", key, "$", json.dumps(_doc(n, v, title)))
                else:
                    client.hset(key, mapping={"title": title, "emb": v.tobytes()})
                self.written.append(key)
            i += 1
            time.sleep(0.002)
        client.close()

    def downtime(self) -> float:
        """The longest interval covered by consecutive failed queries (seconds)."""
        longest, run_start, last_end = 0.0, None, None
        for start, end, _ in sorted(self.failures):
            if run_start is None or last_end is None or start - last_end > 0.05:
                run_start = start
            last_end = end
            longest = max(longest, end - run_start)
        return longest


def missing(r: redis.Redis, keys: list[str]) -> list[str]:
    """Keys not found by a query on the original name (FT.SEARCH * INKEYS)."""
    out: list[str] = []
    unique = sorted(set(keys))
    for i in range(0, len(unique), 500):
        chunk = unique[i : i + 500]
        reply = r.execute_command(
            "FT.SEARCH", INDEX, "*", "INKEYS", str(len(chunk)), *chunk,
            "NOCONTENT", "LIMIT", "0", str(len(chunk)),
        )  # fmt: skip
        found = {x[b"id"].decode() for x in reply[b"results"]}
        out += [k for k in chunk if k not in found]
    return out
