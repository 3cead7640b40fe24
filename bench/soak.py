"""Random-kill soak: SIGKILL migrations at random moments, recover at random, check every byte.

    python bench/soak.py [--kills 40] [--docs 3000] [--seed N] [--url URL] [--verbose]

Starts the embedded server (unless ``--url``), then runs cycles until ``--kills`` processes
were killed. A cycle seeds its own namespace with ``--docs`` documents (some with key or
field TTLs, a few without a vector) and a plan that renames a field, changes the prefix and
quantizes float32 → float16 (the crash suite's change). It starts ``apply`` in a child process
(sync or asyncio runner, 1 or 2 workers, at random) and SIGKILLs it after a random delay (up
to the length of the last clean runs). Then it recovers with a random choice of ``apply``, ``resume``
or ``rollback`` (once a rollback is chosen, it stays rollback), killing some recoveries too at
random moments, until one finishes. Every document of the namespace is then compared byte
for byte (fields, vector bytes, key and field TTLs) with the expected state — the clean run's
after apply/resume, the original after rollback — and the index is checked (the schema, every
document indexed, no other index left).

Prints a summary: kills, recoveries by kind, kills during recovery, checks passed and failed,
wall time. Exits 1 when a check failed. A benchmark, not a test (a smoke test runs
``--kills 2``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import redis
import redis.asyncio

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "crash"))

import crashkit

from ftctl.plan.models import MigrationPlan, dump_plan
from ftctl.schema.compare import reported_differences
from ftctl.schema.ftinfo import parse_ft_info
from ftctl.server import EmbeddedServer

DIMS = 32
BATCH_SIZE = 100
RECOVERY_KILL_CHANCE = 0.35
MAX_ATTEMPTS = 8
"""Recovery attempts per cycle; the last one is never killed, so every cycle ends."""
CHILD_TIMEOUT = 300.0


# --- the data ------------------------------------------------------------------------------


def seed(client: redis.Redis, ns: str, docs: int) -> None:
    """The namespace's HNSW index and ``docs`` documents (the same for every namespace)."""
    client.execute_command(
        "FT.CREATE", crashkit.index_name(ns), "ON", "HASH", "PREFIX", "1", f"{ns}doc:",
        "SCHEMA", "title", "TEXT", "tag", "TAG",
        "emb", "VECTOR", "HNSW", "6", "TYPE", "FLOAT32", "DIM", str(DIMS),
        "DISTANCE_METRIC", "COSINE",
    )  # fmt: skip
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((docs, DIMS)).astype(np.float32)
    pipe = client.pipeline(transaction=False)
    for i in range(docs):
        key = f"{ns}doc:{i}"
        mapping: dict[str, Any] = {"title": f"title {i}", "tag": "ab"[i % 2]}
        if i % 97 != 3:
            mapping["emb"] = vectors[i].tobytes()
        pipe.hset(key, mapping=mapping)
        if i % 7 == 0:
            pipe.pexpireat(key, crashkit.FAR + i)
        if i % 5 == 0:
            names = [f for f in ("title", "tag", "emb") if f in mapping]
            pipe.execute_command("HPEXPIREAT", key, crashkit.FAR + i, "FIELDS", len(names), *names)
        if i % 1000 == 999:
            pipe.execute()
    pipe.execute()
    wait_indexed(client, crashkit.index_name(ns))


def wait_indexed(client: redis.Redis, name: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stats = parse_ft_info(client.execute_command("FT.INFO", name)).stats
        if not stats.indexing and stats.percent_indexed >= 1.0:
            return
        time.sleep(0.02)
    raise RuntimeError(f"index {name} is still indexing after {timeout:.0f}s")


def documents(client: redis.Redis, ns: str) -> dict[bytes, Any]:
    """Every key of the namespace (namespace stripped): type, fields and bytes, key expiry
    and the expiry of each field."""
    keys = sorted(client.scan_iter(match=f"{ns}*", count=1000))
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.type(key)
        pipe.hgetall(key)
        pipe.pexpiretime(key)
    first = pipe.execute()
    pipe = client.pipeline(transaction=False)
    for i, key in enumerate(keys):
        names = sorted(first[3 * i + 1])
        pipe.execute_command("HPEXPIRETIME", key, "FIELDS", len(names), *names)
    expiries = pipe.execute()
    out: dict[bytes, Any] = {}
    for i, key in enumerate(keys):
        kind, fields, expiry = first[3 * i : 3 * i + 3]
        out[key.replace(ns.encode(), b"")] = (
            kind,
            fields,
            expiry,
            dict(zip(sorted(fields), expiries[i], strict=True)),
        )
    return out


def build_plan(client: redis.Redis, ns: str) -> MigrationPlan:
    """The crash suite's plan (rename a field, change the prefix, quantize) for ``DIMS``."""
    plan = crashkit.build_plan(client, ns)
    changes = [msgspec.structs.replace(v, dims=DIMS) for v in plan.vector_changes]
    return msgspec.structs.replace(plan, vector_changes=changes)


def index_problems(client: redis.Redis, ns: str, schema: Any, docs: int) -> list[str]:
    """Why the namespace's index is not ``schema`` holding every document, alone."""
    name = crashkit.index_name(ns)
    listed = [n.decode() for n in client.execute_command("FT._LIST")]
    mine = sorted(n for n in listed if n.startswith(ns))
    out = [f"indexes {mine}, want only {name}"] if mine != [name] else []
    try:
        info = parse_ft_info(client.execute_command("FT.INFO", name))
    except redis.ResponseError as exc:
        return [*out, f"FT.INFO {name}: {exc}"]
    differences = reported_differences(schema, info.schema)
    if differences:
        out.append(f"schema differs: {'; '.join(differences)}")
    if info.stats.num_docs != docs:
        out.append(f"{info.stats.num_docs} documents indexed, want {docs}")
    return out


def forget(client: redis.Redis, ns: str) -> None:
    for raw in client.execute_command("FT._LIST"):
        if raw.decode().startswith(ns):
            client.execute_command("FT.DROPINDEX", raw)
    for pattern in (f"{ns}*", f"ftctl:schema:{ns}*"):
        keys = list(client.scan_iter(match=pattern, count=1000))
        for i in range(0, len(keys), 1000):
            client.delete(*keys[i : i + 1000])


# --- the child -----------------------------------------------------------------------------


def child(verb: str, runner: str, url: str, workdir: Path, workers: int) -> int:
    """Run one verb; print ``{"ready": ...}`` once imported, then the result as JSON."""
    from ftctl.errors import FtctlError
    from ftctl.executor import AsyncMigrationExecutor, MigrationExecutor
    from ftctl.logs import configure

    configure(verbosity=-1)  # warnings only, to stderr: stdout carries the JSON lines
    backup = workdir / "backup"
    common: dict[str, Any] = {"batch_size": BATCH_SIZE, "num_workers": workers}
    print(json.dumps({"ready": os.getpid()}), flush=True)

    async def run_async() -> Any:
        aclient = redis.asyncio.Redis.from_url(url, protocol=3)
        executor = AsyncMigrationExecutor()
        try:
            if verb == "apply":
                return await executor.apply(
                    workdir / "plan.yaml", client=aclient, backup_dir=backup,
                    accept_data_loss=True, **common,
                )  # fmt: skip
            if verb == "resume":
                return await executor.resume(backup, client=aclient, **common)
            return await executor.rollback(backup, client=aclient, **common)
        finally:
            await aclient.aclose()

    try:
        if runner == "async":
            report = asyncio.run(run_async())
        else:
            client = redis.Redis.from_url(url, protocol=3)
            executor = MigrationExecutor()
            try:
                if verb == "apply":
                    report = executor.apply(
                        workdir / "plan.yaml", client=client, backup_dir=backup,
                        accept_data_loss=True, **common,
                    )  # fmt: skip
                elif verb == "resume":
                    report = executor.resume(backup, client=client, **common)
                else:
                    report = executor.rollback(backup, client=client, **common)
            finally:
                client.close()
    except FtctlError as exc:
        print(json.dumps({"error": type(exc).__name__, "message": exc.message}), flush=True)
        return exc.exit_code
    print(json.dumps({"result": report.result, "error": report.error}), flush=True)
    return 0 if report.result in ("succeeded", "rolled_back") else 1


# --- the soak ------------------------------------------------------------------------------


@dataclass
class Ended:
    code: int
    said: dict[str, Any]
    killed: bool
    seconds: float


@dataclass
class Tally:
    kills: int = 0
    kills_in_apply: int = 0
    kills_in_recovery: Counter[str] = field(default_factory=Counter)
    finished_before_kill: int = 0
    recoveries: Counter[str] = field(default_factory=Counter)
    """Recovery runs started, by verb (killed ones included)."""
    nothing_to_recover: int = 0
    passed: int = 0
    failed: int = 0
    failures: list[str] = field(default_factory=list)
    cycles: int = 0
    runners: Counter[str] = field(default_factory=Counter)


def run_child(
    url: str, workdir: Path, verb: str, runner: str, workers: int, kill_after: float | None
) -> Ended:
    """Start a child; SIGKILL it ``kill_after`` seconds after it is ready (None: never)."""
    argv = [sys.executable, __file__, "--child", verb, runner, url, str(workdir), str(workers)]
    with open(workdir / "children.log", "ab") as log:
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=log)
        assert process.stdout is not None
        ready = process.stdout.readline()  # imports done: the run starts now
        started = time.monotonic()
        if ready and kill_after is not None:
            try:
                process.wait(timeout=kill_after)
            except subprocess.TimeoutExpired:
                process.send_signal(signal.SIGKILL)
        out = process.stdout.read()
        process.wait(timeout=CHILD_TIMEOUT)
        process.stdout.close()
    killed = process.returncode == -signal.SIGKILL  # not a child that had just finished
    lines = [ln for ln in out.decode(errors="replace").splitlines() if ln.startswith("{")]
    said = json.loads(lines[-1]) if lines else {}
    return Ended(process.returncode, said, killed, time.monotonic() - started)


def cycle(
    url: str, root: Path, n: int, args: argparse.Namespace, ref: dict[str, Any], tally: Tally
) -> None:
    """One migration killed at random, recovered at random, checked byte for byte."""
    rng: random.Random = args.rng
    ns = f"soak{n:03d}_"
    workdir = root / ns
    workdir.mkdir()
    client = redis.Redis.from_url(url, protocol=3)
    try:
        seed(client, ns, args.docs)
        plan = build_plan(client, ns)
        (workdir / "plan.yaml").write_bytes(dump_plan(plan))
        runner, workers = rng.choice(("sync", "async")), rng.choice((1, 2))
        tally.runners[f"{runner}-w{workers}"] += 1
        delay = rng.uniform(0.0, run_length(ref))
        ended = run_child(url, workdir, "apply", runner, workers, delay)
        story = [f"apply {runner} w{workers} kill at {delay:.2f}s: exit {ended.code}"]
        if ended.killed:
            tally.kills += 1
            tally.kills_in_apply += 1
        elif ended.code == 0:
            tally.finished_before_kill += 1
            ref["lengths"].append(ended.seconds)
        else:
            raise RuntimeError(f"apply failed without a kill: {ended.said}")
        expected = "clean" if ended.code == 0 else None
        verbs: tuple[str, ...] = ("apply", "resume", "rollback")
        if ended.code == 0:
            verbs = ("rollback", "none")  # finished: roll back, or leave it
        for attempt in range(MAX_ATTEMPTS):
            verb = rng.choice(verbs)
            if verb == "none":
                break
            if verb == "rollback":
                verbs = ("rollback",)  # apply/resume are refused once a rollback started
            kill = rng.random() < RECOVERY_KILL_CHANCE and attempt < MAX_ATTEMPTS - 1
            kill_after = rng.uniform(0.0, run_length(ref)) if kill else None
            runner, workers = rng.choice(("sync", "async")), rng.choice((1, 2))
            tally.recoveries[verb] += 1
            ended = run_child(url, workdir, verb, runner, workers, kill_after)
            story.append(f"{verb} {runner} w{workers}: exit {ended.code} {ended.said}")
            if ended.killed:
                tally.kills += 1
                tally.kills_in_recovery[verb] += 1
                continue
            if ended.code == 0:
                expected = "original" if verb == "rollback" else "clean"
                break
            nothing = "never started" in str(ended.said) or "no migration journal" in str(
                ended.said
            )
            if ended.code == 2 and nothing:
                # Killed before the apply changed anything (or wrote its journal).
                tally.nothing_to_recover += 1
                expected = "original"
                if verb == "resume":
                    verbs = ("apply", "rollback")
                    continue
                break
            raise RuntimeError(f"{verb} failed: {ended.said}")
        if expected is None:
            raise RuntimeError("no recovery finished")
        problems = []
        if documents(client, ns) != ref[expected]:
            problems.append(f"documents differ from the {expected} state")
        schema = plan.merged_target_schema if expected == "clean" else plan.source.schema_snapshot
        problems += index_problems(client, ns, schema, args.docs)
        if problems:
            tally.failed += 1
            tally.failures.append(f"{ns}: {'; '.join(problems)} ({' / '.join(story)})")
        else:
            tally.passed += 1
        if args.verbose:
            mark = "FAIL" if problems else "ok"
            print(f"{ns} {mark} -> {expected}: {' / '.join(story)}", flush=True)
    finally:
        forget(client, ns)
        client.close()
        tally.cycles += 1


def run_length(ref: dict[str, Any]) -> float:
    """How long an apply runs: the median of the last five that ran to their end (the
    machine's load changes it; kills come at random moments within it)."""
    return statistics.median(ref["lengths"][-5:])


def reference(url: str, root: Path, docs: int) -> dict[str, Any]:
    """The original and the clean-run documents (namespace stripped), and how long two clean
    applies ran (the first one is often slower: the server is still busy starting)."""
    ns = "soak000_"
    workdir = root / ns
    workdir.mkdir()
    client = redis.Redis.from_url(url, protocol=3)
    try:
        seed(client, ns, docs)
        (workdir / "plan.yaml").write_bytes(dump_plan(build_plan(client, ns)))
        original = documents(client, ns)
        ended = run_child(url, workdir, "apply", "sync", 1, None)
        if ended.code != 0:
            raise RuntimeError(f"the clean reference apply failed: {ended.said}")
        clean = documents(client, ns)
        ended_rb = run_child(url, workdir, "rollback", "sync", 1, None)
        if ended_rb.code != 0 or documents(client, ns) != original:
            raise RuntimeError(f"the clean reference rollback failed: {ended_rb.said}")
        (workdir / "backup").rename(workdir / "rolled-back")
        second = run_child(url, workdir, "apply", "sync", 1, None)
        if second.code != 0 or documents(client, ns) != clean:
            raise RuntimeError(f"the second reference apply failed: {second.said}")
    finally:
        forget(client, ns)
        client.close()
    return {"original": original, "clean": clean, "lengths": [ended.seconds, second.seconds]}


def soak(url: str, args: argparse.Namespace) -> Tally:
    tally = Tally()
    with tempfile.TemporaryDirectory(prefix="ftctl-soak-") as tmp:
        root = Path(tmp)
        ref = reference(url, root, args.docs)
        if args.verbose:
            print(f"clean apply of {args.docs} documents: {run_length(ref):.2f}s", flush=True)
        n = 0
        while tally.kills < args.kills:
            n += 1
            try:
                cycle(url, root, n, args, ref, tally)
            except RuntimeError as exc:
                tally.failed += 1
                tally.failures.append(f"cycle {n}: {exc}")
    return tally


def summary(tally: Tally, seconds: float, args: argparse.Namespace) -> str:
    recoveries = ", ".join(f"{v} {tally.recoveries[v]}" for v in ("apply", "resume", "rollback"))
    during = ", ".join(f"{v} {tally.kills_in_recovery[v]}" for v in ("apply", "resume", "rollback"))
    runners = ", ".join(f"{k} {v}" for k, v in sorted(tally.runners.items()))
    lines = [
        f"soak: {tally.cycles} migrations of {args.docs} documents (seed {args.seed}), "
        f"applies by {runners}",
        f"kills: {tally.kills} (during apply {tally.kills_in_apply}, during recovery "
        f"{sum(tally.kills_in_recovery.values())}); {tally.finished_before_kill} applies "
        "finished before their kill",
        f"recoveries: {recoveries}; killed during recovery: {during}; "
        f"{tally.nothing_to_recover} found nothing to recover",
        f"byte-exact checks: {tally.passed} passed, {tally.failed} failed "
        f"({tally.passed * args.docs} documents equal to their expected state)",
        f"wall time: {seconds:.1f}s",
    ]
    lines += [f"FAILED {f}" for f in tally.failures]
    return "\n".join(lines)


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        verb, runner, url, workdir, workers = sys.argv[2:7]
        return child(verb, runner, url, Path(workdir), int(workers))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=40)
    parser.add_argument("--docs", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--url", default=None, help="a server to use instead of the embedded one")
    parser.add_argument("--verbose", action="store_true", help="one line per migration")
    args = parser.parse_args()
    if args.seed is None:
        args.seed = random.randrange(1_000_000)
    args.rng = random.Random(args.seed)
    started = time.monotonic()
    if args.url:
        tally = soak(args.url, args)
    else:
        with EmbeddedServer() as server:
            tally = soak(server.url, args)
    print(summary(tally, time.monotonic() - started, args), flush=True)
    return 1 if tally.failed else 0


if __name__ == "__main__":
    sys.exit(main())
