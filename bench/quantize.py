"""Quantization throughput against the speed of the wire, on the embedded server.

    python bench/quantize.py [--docs 100000] [--dims 384] [--batch 500] [--workers 1]
                             [--async] [--change quantize|rename_field|prefix] [--url URL]
                             [--repeat N]

Loads N documents (text, tag, float32 vector, HNSW), then in one run measures

(a) the speed of light with redis-py: with the index dropped, one pass of pipelined
    ``HGET key vector`` and one of ``HSET key vector <same-size bytes>`` per batch (no
    conversion, no backup, no index);
(b) ``ftctl migrate apply`` of the change, with journal, zstd backup and fsync on;

and prints docs/s of the rewrite phase, the backup phase, the whole apply, the downtime
window (drop → target ready), the fixed overhead, and the ratios (b)/(a). Add
``--rss N2`` to also print the peak RSS of an apply at N and at N2 documents (small dims keep
it quick), and ``--repeat N`` to measure N times on freshly loaded data and print the medians
(the machine's noise is larger than some of the differences). Numbers go to stdout; this is
a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import redis

from ftctl.journal import Journal
from ftctl.journal.report import project_benchmark
from ftctl.plan.models import (
    FieldRename,
    FieldUpdate,
    IndexChange,
    PatchChanges,
    SchemaPatch,
    dump_plan,
)
from ftctl.server import EmbeddedServer

INDEX = "bench_idx"
PREFIX = "bench:"


ALGORITHM = ["HNSW"]


def create_index(client: redis.Redis, dims: int) -> None:
    client.execute_command(
        "FT.CREATE", INDEX, "ON", "HASH", "PREFIX", "1", PREFIX, "SCHEMA",
        "title", "TEXT", "tag", "TAG", "vec", "VECTOR", ALGORITHM[0], "6",
        "TYPE", "FLOAT32", "DIM", str(dims), "DISTANCE_METRIC", "COSINE",
    )  # fmt: skip


def load(client: redis.Redis, docs: int, dims: int) -> None:
    client.flushall()
    create_index(client, dims)
    rng = np.random.default_rng(7)
    chunk = 2000
    for start in range(0, docs, chunk):
        count = min(chunk, docs - start)
        vectors = rng.standard_normal((count, dims)).astype(np.float32)
        pipe = client.pipeline(transaction=False)
        for i in range(count):
            n = start + i
            pipe.hset(
                f"{PREFIX}{n}",
                mapping={"title": f"doc {n}", "tag": "t", "vec": vectors[i].tobytes()},
            )
        pipe.execute()
    wait_ready(client)


def wait_ready(client: redis.Redis) -> None:
    while True:
        info = client.execute_command("FT.INFO", INDEX)
        if int(info[b"indexing"]) == 0:
            return
        time.sleep(0.05)


def speed_of_light(client: redis.Redis, docs: int, batch: int) -> dict[str, float]:
    """HGET pass + HSET pass with the index dropped (documents kept), then re-create."""
    info = client.execute_command("FT.INFO", INDEX)
    client.execute_command("FT.DROPINDEX", INDEX)
    keys = [f"{PREFIX}{n}".encode() for n in range(docs)]
    values: list[bytes] = []
    started = time.perf_counter()
    for start in range(0, docs, batch):
        pipe = client.pipeline(transaction=False)
        for key in keys[start : start + batch]:
            pipe.hget(key, "vec")
        values.extend(pipe.execute())
    read = time.perf_counter() - started
    started = time.perf_counter()
    for start in range(0, docs, batch):
        pipe = client.pipeline(transaction=False)
        for key, value in zip(
            keys[start : start + batch], values[start : start + batch], strict=True
        ):
            pipe.hset(key, "vec", value)
        pipe.execute()
    write = time.perf_counter() - started
    dims = int(info[b"attributes"][2][b"dim"])
    create_index(client, dims)
    wait_ready(client)
    return {
        "read_docs_per_s": docs / read,
        "write_docs_per_s": docs / write,
        "rw_docs_per_s": docs / (read + write),
    }


def patch_for(change: str) -> SchemaPatch:
    if change == "quantize":
        return SchemaPatch(
            changes=PatchChanges(
                update_fields=[FieldUpdate(name="vec", attrs={"datatype": "float16"})]
            )
        )
    if change == "rename_field":
        return SchemaPatch(
            changes=PatchChanges(rename_fields=[FieldRename(old_name="title", new_name="headline")])
        )
    return SchemaPatch(changes=PatchChanges(index=IndexChange(prefix="moved:")))


def apply_once(
    url: str, args: argparse.Namespace, backup_dir: Path
) -> tuple[float, dict[str, object]]:
    from ftctl import AsyncMigrationExecutor, MigrationExecutor, MigrationPlanner

    plan = MigrationPlanner().create_plan(INDEX, redis_url=url, schema_patch=patch_for(args.change))
    if not plan.supported:
        raise SystemExit(f"plan blocked: {plan.diff_classification.blocked_reasons}")
    # As with the CLI: the reviewed plan is a YAML file, and apply reads it (inside the timing).
    plan_file = backup_dir / "plan.yaml"
    plan_file.write_bytes(dump_plan(plan))
    started = time.perf_counter()
    if args.use_async:
        report = asyncio.run(
            AsyncMigrationExecutor().apply(
                plan_file, redis_url=url, backup_dir=backup_dir, batch_size=args.batch,
                num_workers=args.workers, accept_data_loss=True,
            )
        )  # fmt: skip
    else:
        report = MigrationExecutor().apply(
            plan_file, redis_url=url, backup_dir=backup_dir, batch_size=args.batch,
            num_workers=args.workers, accept_data_loss=True,
        )  # fmt: skip
    total = time.perf_counter() - started
    if report.result != "succeeded":
        raise SystemExit(f"apply failed: {report.error} {report.validation}")
    bench = project_benchmark(Journal.read(backup_dir / INDEX))
    steps = {
        name: {"seconds": s.seconds, "docs_per_s": s.docs_per_second}
        for name, s in bench.steps.items()
    }
    return total, {"downtime": bench.downtime_seconds, "steps": steps}


RVL_SCRIPT = """
import json, sys, tempfile, time
from redisvl.migration import MigrationExecutor, MigrationPlanner
url, index, patch = sys.argv[1:4]
plan = MigrationPlanner().create_plan(index, redis_url=url, schema_patch_path=patch)
started = time.perf_counter()
report = MigrationExecutor().apply(plan, redis_url=url, backup_dir=tempfile.mkdtemp())
total = time.perf_counter() - started
t = report.timings
print(json.dumps({"result": str(report.result), "apply_total_seconds": total,
                  "downtime_seconds": t.downtime_duration_seconds,
                  "quantize_seconds": t.quantize_duration_seconds,
                  "index_build_seconds": t.initial_indexing_duration_seconds}))
"""


def redisvl_run(url: str, args: argparse.Namespace) -> dict[str, object]:
    """RedisVL's migrator on freshly loaded identical data, prepared like ftctl's, in its own
    interpreter (redisvl is never a dependency of ftctl: pass a Python that has it)."""
    client = redis.Redis.from_url(url)
    load(client, args.docs, args.dims)
    # The same history as ftctl's run (speed-of-light passes, then a full re-index), so the
    # server starts both migrations from the same state.
    speed_of_light(client, args.docs, args.batch)
    client.close()
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as patch:
        patch.write(
            "version: 1\nchanges:\n  update_fields:\n    - name: vec\n      attrs:\n"
            "        datatype: float16\n"
        )
    done = subprocess.run(
        [args.redisvl_python, "-c", RVL_SCRIPT, url, INDEX, patch.name],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    measured: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return measured


def rss_run(url: str, docs: int, dims: int, batch: int) -> float:
    """Peak RSS (MiB) of a separate process that applies float32→float16 to ``docs`` docs."""
    client = redis.Redis.from_url(url)
    load(client, docs, dims)
    client.close()
    code = (
        "import resource,sys,tempfile;from pathlib import Path;from ftctl import *;"
        "from ftctl.plan.models import *;"
        f"p=MigrationPlanner().create_plan({INDEX!r},redis_url={url!r},schema_patch=SchemaPatch(changes=PatchChanges(update_fields=[FieldUpdate(name='vec',attrs={{'datatype':'float16'}})])));"
        f"r=MigrationExecutor().apply(p,redis_url={url!r},backup_dir=Path(tempfile.mkdtemp()),batch_size={batch},accept_data_loss=True);"
        "assert r.result=='succeeded',r;print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return int(out.stdout.strip().splitlines()[-1]) / 1024


MEDIAN_KEYS = (
    "ratio_rewrite_vs_sol_rw",
    "ratio_backup_vs_sol_read",
    "fixed_overhead_per_100k_docs",
    "apply_total_seconds",
    "downtime_seconds",
)


def measure_once(client: redis.Redis, url: str, args: argparse.Namespace) -> dict[str, object]:
    """Load fresh data, measure the speed of light, apply once; the run's figures."""
    started = time.perf_counter()
    load(client, args.docs, args.dims)
    load_s = time.perf_counter() - started
    sol = speed_of_light(client, args.docs, args.batch)
    with tempfile.TemporaryDirectory(prefix="ftctl-bench-") as work:
        total, measured = apply_once(url, args, Path(work))
    steps: dict[str, dict[str, float]] = measured["steps"]  # type: ignore[assignment]
    rewrite_step = {
        "quantize": "quantize",
        "rename_field": "rename_fields",
        "prefix": "rename_keys",
    }[args.change]
    rewrite = steps.get(rewrite_step, {}).get("docs_per_s", 0.0)
    backup = steps.get("backup", {}).get("docs_per_s", 0.0)
    index_build = steps.get("wait", {}).get("seconds", 0.0)
    counted = sum(steps.get(s, {}).get("seconds", 0.0) for s in (rewrite_step, "backup", "wait"))
    result = {
        "machine": {
            "cpus": len(__import__("os").sched_getaffinity(0)),
            "python": sys.version.split()[0],
        },
        "docs": args.docs,
        "dims": args.dims,
        "batch": args.batch,
        "workers": args.workers,
        "async": args.use_async,
        "change": args.change,
        "load_seconds": round(load_s, 2),
        "speed_of_light": {k: round(v) for k, v in sol.items()},
        "apply_total_seconds": round(total, 3),
        "downtime_seconds": round(float(measured["downtime"]), 3),  # type: ignore[arg-type]
        "index_build_seconds": round(index_build, 3),
        "fixed_overhead_seconds": round(total - counted, 3),
        "fixed_overhead_per_100k_docs": round((total - counted) * 100_000 / args.docs, 3),
        "rewrite_docs_per_s": round(rewrite),
        "backup_docs_per_s": round(backup),
        "ratio_rewrite_vs_sol_rw": round(rewrite / sol["rw_docs_per_s"], 2),
        "ratio_backup_vs_sol_read": round(backup / sol["read_docs_per_s"], 2),
        "steps": steps,
    }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--dims", type=int, default=384)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--async", dest="use_async", action="store_true")
    parser.add_argument(
        "--change", choices=["quantize", "rename_field", "prefix"], default="quantize"
    )
    parser.add_argument(
        "--rss",
        type=int,
        default=0,
        help="also measure peak RSS at --docs and at this many docs (dims 32)",
    )
    parser.add_argument(
        "--algorithm", choices=["HNSW", "FLAT"], default="HNSW", help="of the source index"
    )
    parser.add_argument("--url", help="use this server instead of an embedded one")
    parser.add_argument(
        "--redisvl-python",
        help="a Python with redisvl installed: also run RedisVL's migrator on the same data",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--repeat", type=int, default=1, help="measure N times on fresh data; print medians"
    )
    args = parser.parse_args()
    ALGORITHM[0] = args.algorithm

    server = None if args.url else EmbeddedServer().start()
    url = args.url or (server.url if server else "")
    try:
        client = redis.Redis.from_url(url)
        runs = [measure_once(client, url, args) for _ in range(args.repeat)]
        result = runs[0]
        if args.repeat > 1:
            result = {
                **{k: v for k, v in runs[0].items() if k in ("machine", "docs", "dims", "batch")},
                "runs": runs,
                "median": {
                    key: statistics.median(float(run[key]) for run in runs)  # type: ignore[arg-type]
                    for key in MEDIAN_KEYS
                },
            }
        measured_total = float(runs[-1]["apply_total_seconds"])  # type: ignore[arg-type]
        measured_downtime = float(runs[-1]["downtime_seconds"])  # type: ignore[arg-type]
        if args.redisvl_python and args.change == "quantize":
            rvl = redisvl_run(url, args)
            result["redisvl"] = rvl
            result["ratio_total_vs_redisvl"] = round(
                measured_total / float(rvl["apply_total_seconds"]),  # type: ignore[arg-type]
                2,
            )
            result["ratio_downtime_vs_redisvl"] = round(
                measured_downtime / float(rvl["downtime_seconds"]),  # type: ignore[arg-type]
                2,
            )
        if args.rss:
            result["peak_rss_mib"] = {
                str(args.docs): round(rss_run(url, args.docs, 32, args.batch), 1),
                str(args.rss): round(rss_run(url, args.rss, 32, args.batch), 1),
            }
        if args.json:
            print(json.dumps(result))
        else:
            for key, value in result.items():
                print(f"{key:>32}: {value}")
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
