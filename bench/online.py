"""Online vs drop_recreate under load: failed queries, query latency, time and server work.

For each case (``--cases``, default ``hnsw:20000x128,flat:100000x384``) and each mode, on
freshly loaded data (tests/integration/expand_load.py: ``doc:<i>`` with a title and a
float32 vector, the index ``docs``):

1. *idle*: the reader alone (KNN through ``ftctl.QueryEncoder``, a text query of known
   count, ``*``) for ``--idle`` seconds: the latency baseline;
2. *run*: the migration (``--change``, default float32 → float16, cut over at once) while
   the reader and a writer (creates, updates, deletes) run. drop_recreate runs with the
   reader alone: the guide pauses writers for it, and ftctl refuses to enumerate a
   keyspace writers keep changing ("writes during the run" is 0 there).

Printed side by side per case: the run's result, failed or incomplete queries, the time
from the first to the last of them and the longest run of them with no good answer between
(during an index build some KNN answers come out right), KNN and text p50/p99 latency idle and during the run, the
total time, the server's CPU seconds during the run (``INFO cpu``: used_cpu_sys +
used_cpu_user, reader and writer included; "net" subtracts the reader-alone rate) and the
indexes the server builds (the plan's ``online.index_builds``; drop_recreate builds one).
Online runs are paced by ``expand_load.PACING``: the latency target on, the CPU ceiling
off (the reader alone keeps the server over it). Benchmarks print numbers, they assert
nothing; a run that fails or is refused shows its result, not hidden.

    .venv/bin/python bench/online.py [--cases hnsw:20000x128] [--change float16] [--url URL]
    .venv/bin/python bench/online.py --smoke     # tiny sizes, seconds (kept working by a test)
"""

from __future__ import annotations

import argparse
import math
import re
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))

from expand_load import (
    INDEX,
    PACING,
    SCENARIOS,
    Reader,
    Scenario,
    Size,
    load,
    percentile,
    under_load,
)

from ftctl.errors import FtctlError
from ftctl.executor import MigrationExecutor
from ftctl.plan import patch_from_builtins
from ftctl.planner import MigrationPlanner
from ftctl.server import EmbeddedServer

MODES = ("drop_recreate", "online")
SMOKE_CASES = "hnsw:300x8,flat:500x8"


@dataclass(frozen=True)
class Outcome:
    """One mode of one case."""

    result: str
    failed: int
    queries: int
    downtime: float
    span: float
    knn_idle: tuple[float, float]
    knn_run: tuple[float, float]
    text_idle: tuple[float, float]
    text_run: tuple[float, float]
    seconds: float
    cpu: float
    cpu_net: float
    builds: int
    writes: int


def _cpu(r: redis.Redis) -> float:
    info = r.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


def _p50_p99(values: list[float]) -> tuple[float, float]:
    return percentile(values, 50) * 1000, percentile(values, 99) * 1000


@contextmanager
def _reader_alone(url: str, size: Size) -> Iterator[Reader]:
    with under_load(url, SCENARIOS["float16"], size, write=False) as running:
        yield running.reader


def measure(url: str, scenario: Scenario, size: Size, mode: str, idle: float) -> Outcome:
    r = redis.Redis.from_url(url, protocol=3)
    r.flushall()
    load(r, scenario, size)
    cpu_start, started = _cpu(r), time.monotonic()
    with _reader_alone(url, size) as baseline:
        time.sleep(idle)
    idle_rate = (_cpu(r) - cpu_start) / (time.monotonic() - started)
    plan = MigrationPlanner().create_plan(
        INDEX,
        redis_client=r,
        schema_patch=patch_from_builtins(scenario.patch),
        mode=mode,  # type: ignore[arg-type]
        postpone_cutover=False if mode == "online" else None,
    )
    loaded = under_load(url, scenario, size, write=mode == "online")
    with tempfile.TemporaryDirectory() as backup, loaded as running:
        cpu_before, start = _cpu(r), time.monotonic()
        try:
            report = MigrationExecutor().apply(
                plan, redis_client=r, backup_dir=backup, pacing=PACING
            )
            check = re.search(r"validation failed: (\w+)", report.error)
            result = report.result
            if report.result != "succeeded":
                result += f" ({check.group(1) if check else report.error})"
        except FtctlError as exc:
            result = f"refused ({exc.message})"
        seconds = time.monotonic() - start
        cpu = _cpu(r) - cpu_before
    r.close()
    reader, writer = running.reader, running.writer
    return Outcome(
        result=result,
        failed=len(reader.failures),
        queries=reader.queries,
        downtime=reader.downtime(),
        span=reader.failing_span(),
        knn_idle=_p50_p99(baseline.latencies["knn"]),
        knn_run=_p50_p99(reader.latencies["knn"]),
        text_idle=_p50_p99(baseline.latencies["text"]),
        text_run=_p50_p99(reader.latencies["text"]),
        seconds=seconds,
        cpu=cpu,
        cpu_net=cpu - idle_rate * seconds,
        builds=plan.online.index_builds if plan.online else 1,
        writes=len(writer.written_at) if writer is not None else 0,
    )


def _ms(pair: tuple[float, float]) -> str:
    return "n/a" if any(math.isnan(x) for x in pair) else f"{pair[0]:.2f} / {pair[1]:.2f} ms"


def table(title: str, outcomes: dict[str, Outcome]) -> str:
    rows: list[tuple[str, ...]] = [("", *outcomes)]
    rows += [
        ("result", *(o.result for o in outcomes.values())),
        ("failed queries", *(f"{o.failed} of {o.queries}" for o in outcomes.values())),
        ("first to last failed query", *(f"{o.span:.3f} s" for o in outcomes.values())),
        ("longest run of failed queries", *(f"{o.downtime:.3f} s" for o in outcomes.values())),
        ("KNN p50 / p99, idle", *(_ms(o.knn_idle) for o in outcomes.values())),
        ("KNN p50 / p99, during the run", *(_ms(o.knn_run) for o in outcomes.values())),
        ("text p50 / p99, idle", *(_ms(o.text_idle) for o in outcomes.values())),
        ("text p50 / p99, during the run", *(_ms(o.text_run) for o in outcomes.values())),
        ("total time", *(f"{o.seconds:.1f} s" for o in outcomes.values())),
        ("server CPU during the run", *(f"{o.cpu:.2f} s" for o in outcomes.values())),
        ("  net of the reader-alone rate", *(f"{o.cpu_net:.2f} s" for o in outcomes.values())),
        ("index builds", *(str(o.builds) for o in outcomes.values())),
        ("writes during the run", *(str(o.writes) for o in outcomes.values())),
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [title]
    for row in rows:
        cells = [
            row[0].ljust(widths[0]),
            *(c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)),
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", default="hnsw:20000x128,flat:100000x384")
    parser.add_argument("--change", choices=sorted(SCENARIOS), default="float16")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--idle", type=float, default=5.0, help="seconds of the idle baseline")
    parser.add_argument("--url", help="a Redis 8 + Search to use (flushed!); default: embedded")
    parser.add_argument("--smoke", action="store_true", help=f"--cases {SMOKE_CASES} --idle 0.5")
    args = parser.parse_args()
    cases = SMOKE_CASES if args.smoke else args.cases
    idle = 0.5 if args.smoke else args.idle
    scenario = SCENARIOS[args.change]
    with contextmanager(_server)(args.url) as url:
        for text in cases.split(","):
            size = Size.parse(text)
            outcomes = {
                mode: measure(url, scenario, size, mode, idle) for mode in args.modes.split(",")
            }
            title = f"{size}, {scenario.name}, reader + writer (drop_recreate: reader alone)"
            print(table(title, outcomes), flush=True)
            print(flush=True)


def _server(url: str | None) -> Iterator[str]:
    if url:
        yield url
        return
    with EmbeddedServer() as server:
        yield server.url


if __name__ == "__main__":
    main()
