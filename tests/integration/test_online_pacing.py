"""Pacing of online expand runs on the real server: a busy server slows the writes down,
the pause flag holds them, and the plan's estimates (index builds, peak memory, the
maxmemory refusal) hold for the expand strategy.

The demo index (384-dim HNSW, fixtures/schemas/demo_docs.yaml) quantized to float16 in
place (fixtures/patches/demo_quantize_add_field.yaml): expand → shadow → cut-over → rewrite
→ final index → contract.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import redis
from click.testing import CliRunner

from ftctl.cli import cli
from ftctl.demo import load_documents
from ftctl.errors import RefusedError
from ftctl.executor import AsyncMigrationExecutor, MigrationExecutor
from ftctl.indexes import create_index
from ftctl.journal import Journal
from ftctl.journal.events import AnyEvent, PaceChanged, RunPaused, RunResumed, ShadowCreated
from ftctl.plan import load_patch
from ftctl.plan.codecs import convert_many
from ftctl.plan.models import MigrationPlan
from ftctl.plan.pacing import Pacing
from ftctl.planner import MigrationPlanner
from ftctl.runs import journal_dir

ROOT = Path(__file__).parents[2] / "fixtures"
INDEX = "demo_docs"
DIMS = 384
Docs = dict[bytes, dict[bytes, bytes]]

BUSY = "local x = 0 for i = 1, tonumber(ARGV[1]) do x = x + i end return 1"
"""Keeps the server's main thread busy for ARGV[1] loop turns (every client waits). Not a
loop on TIME: a script sees the time frozen at its start."""


def _load(r: redis.Redis, count: int) -> Docs:
    """The demo index with ``count`` documents; returns every document as written."""
    create_index(ROOT / "schemas" / "demo_docs.yaml", redis_client=r)
    texts, vectors = load_documents(ROOT, count)
    docs: Docs = {}
    pipe = r.pipeline(transaction=False)
    for i, (text, vector) in enumerate(zip(texts, vectors, strict=True)):
        doc = {
            b"text": text.encode(),
            b"module": (text.split(" ", 1)[0].strip(".").lower() or "misc").encode(),
            b"embedding": vector.tobytes(),
            b"words": str(len(text.split())).encode(),
        }
        docs[f"doc:{i}".encode()] = doc
        pipe.hset(f"doc:{i}", mapping=doc)  # type: ignore[arg-type]
    pipe.execute()
    while int(r.execute_command("FT.INFO", INDEX)[b"indexing"]):
        time.sleep(0.02)
    return docs


def _float16(docs: Docs) -> Docs:
    """What the migration must leave: every embedding converted, nothing else changed."""
    out: Docs = {}
    for key, doc in docs.items():
        (converted,) = convert_many([doc[b"embedding"]], "float32", "float16", DIMS)
        out[key] = {**doc, b"embedding": converted}
    return out


def _documents(r: redis.Redis, keys: Iterator[bytes] | list[bytes]) -> Docs:
    pipe = r.pipeline(transaction=False)
    names = list(keys)
    for key in names:
        pipe.hgetall(key)
    return dict(zip(names, pipe.execute(), strict=True))


def _plan(r: redis.Redis, **kwargs: object) -> MigrationPlan:
    patch = load_patch(ROOT / "patches" / "demo_quantize_add_field.yaml")
    plan = MigrationPlanner().create_plan(
        INDEX,
        redis_client=r,
        schema_patch=patch,
        mode="online",
        **kwargs,  # type: ignore[arg-type]
    )
    assert plan.online is not None and plan.online.strategy == "expand", plan.mode_reason
    return plan


def _events(backup: Path) -> list[AnyEvent]:
    return Journal.read(journal_dir(backup, INDEX))


@contextmanager
def _busy_server(
    url: str, *, busy_ms: float, gap_ms: float, seconds: float, until: Callable[[], bool]
) -> Iterator[None]:
    """Another client keeps the server's main thread busy ``busy_ms`` at a time with
    ``gap_ms`` between, until ``until()`` says so (at most ``seconds``)."""
    stop = threading.Event()

    client = redis.Redis.from_url(url)
    began = time.perf_counter()
    client.eval(BUSY, 0, 1_000_000)
    turns = int(1_000_000 * busy_ms / 1000 / (time.perf_counter() - began))

    def load() -> None:
        deadline = time.monotonic() + seconds
        try:
            while not stop.is_set() and time.monotonic() < deadline and not until():
                client.eval(BUSY, 0, turns)
                time.sleep(gap_ms / 1000)
        finally:
            client.close()

    worker = threading.Thread(target=load, daemon=True)
    worker.start()
    try:
        yield
    finally:
        stop.set()
        worker.join(10)


def test_a_busy_server_slows_the_writes_and_the_journal_and_report_say_so(
    r: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    """While another client holds the server 30 ms at a time, the probe (or the run's own
    transactions, queued behind it) exceeds a 15 ms target: the run halves its batches
    (100, 50, 25), journals each new low with the latency it measured, and (the load gone
    once it got there) still leaves every document exactly as the conversion says."""
    docs = _load(r, 200)
    plan = _plan(r, postpone_cutover=False)
    backup = tmp_path / "backup"

    def halved_twice() -> bool:
        directory = journal_dir(backup, INDEX)
        return Journal.exists(directory) and any(
            isinstance(e, PaceChanged) and e.batch <= 25 for e in Journal.read(directory)
        )

    with _busy_server(redis_url, busy_ms=30, gap_ms=3, seconds=30, until=halved_twice):
        report = MigrationExecutor().apply(
            plan,
            redis_client=r,
            backup_dir=backup,
            batch_size=100,
            pacing=Pacing(max_latency_ms=15),
        )

    assert report.result == "succeeded", report.error
    slowed = [e for e in _events(backup) if isinstance(e, PaceChanged) and e.change == "slowed"]
    assert slowed, "the busy server never slowed the run"
    assert min(e.batch for e in slowed) <= 25
    assert all(e.latency_ms is not None and e.latency_ms > 15 for e in slowed)
    assert report.pacing is not None and report.pacing.slowed == len(slowed)
    assert report.pacing.lowest_batch == min(e.batch for e in slowed)
    assert _documents(r, list(docs)) == _float16(docs)


def test_the_pause_flag_holds_the_run_and_unpause_lets_it_finish(
    r: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    """`migrate plan` says how apply will pace the plan; `migrate pause` on a run waiting at
    the cut-over gate (a datatype change waits there by default): `migrate cutover` journals
    run_paused before its first write and holds (the source still serves, no vector
    rewritten, `journal inspect` shows the pause); `migrate unpause` lets it finish with
    every document as the conversion says."""
    docs = _load(r, 200)
    plan_file = tmp_path / "plan.yaml"
    backup = str(tmp_path / "backup")
    cli_run = CliRunner()
    base = ["--url", redis_url, "migrate"]
    patch = str(ROOT / "patches" / "demo_quantize_add_field.yaml")
    planned = cli_run.invoke(
        cli, [*base, "plan", "-i", INDEX, "--schema-patch", patch, "--plan-out", str(plan_file)]
    )
    assert planned.exit_code == 0, planned.output
    assert "Pacing (at apply): batches shrink and pause while a KNN 10 probe" in planned.output
    applied = cli_run.invoke(
        cli, [*base, "apply", "--plan", str(plan_file), "--backup-dir", backup]
    )
    assert applied.exit_code == 0 and "Result: awaiting_cutover" in applied.output, applied.output

    paused = cli_run.invoke(cli, [*base, "pause", "--backup-dir", backup])
    assert paused.exit_code == 0 and paused.output.startswith("Pause requested"), paused.output
    outcome: list[object] = []
    worker = threading.Thread(
        target=lambda: outcome.append(MigrationExecutor().cutover(backup, redis_url=redis_url))
    )
    worker.start()
    try:
        deadline = time.monotonic() + 20
        while not any(isinstance(e, RunPaused) for e in _events(Path(backup))):
            assert time.monotonic() < deadline, "the run never paused"
            time.sleep(0.05)
        time.sleep(0.5)
        assert worker.is_alive() and outcome == []
        assert r.execute_command("FT.INFO", INDEX)[b"index_name"] == INDEX.encode()
        held = _documents(r, list(docs))
        assert all(held[k][b"embedding"] == docs[k][b"embedding"] for k in docs)
        shown = cli_run.invoke(cli, [*base, "journal", "inspect", "--backup-dir", backup])
        assert "run_paused" in shown.output and "paused by an operator" in shown.output
    finally:
        resumed = cli_run.invoke(cli, [*base, "unpause", "--backup-dir", backup])
        worker.join(60)
    assert resumed.exit_code == 0 and resumed.output.startswith("Pause flag removed")

    (report,) = outcome
    assert getattr(report, "result", None) == "succeeded"
    kinds = [type(e) for e in _events(Path(backup)) if isinstance(e, RunPaused | RunResumed)]
    assert kinds == [RunPaused, RunResumed]
    pacing = getattr(report, "pacing", None)
    assert pacing is not None and pacing.pauses == 1 and pacing.paused_seconds >= 0.5
    assert _documents(r, list(docs)) == _float16(docs)


def test_a_probe_query_the_server_rejects_refuses_before_anything_changes(
    r: redis.Redis, tmp_path: Path
) -> None:
    """A --probe-query with a syntax error is found by the expand preflight, its first
    step: refused (exit 2), no document written, no index created."""
    docs = _load(r, 50)
    plan = _plan(r, postpone_cutover=False)

    with pytest.raises(RefusedError, match="latency probe fails") as raised:
        MigrationExecutor().apply(
            plan, redis_client=r, backup_dir=tmp_path / "b", pacing=Pacing(probe_query="@x:(")
        )

    assert "--probe-query" in raised.value.message and raised.value.exit_code == 2
    assert _documents(r, list(docs)) == docs
    assert r.execute_command("FT._LIST") == [INDEX.encode()]


def test_the_plan_counts_the_index_builds_and_the_peak_memory_it_needs(
    r: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    """An in-place datatype change is planned as two index builds (the shadow on the
    temporary field, then the index on the final layout) and the run builds exactly two;
    the server's memory never grows past the estimate while it runs."""
    _load(r, 800)
    plan = _plan(r, postpone_cutover=False)
    assert plan.online is not None
    assert plan.online.index_builds == 2 and plan.online.memory.fits
    estimate = plan.online.memory.shadow_mb * 1024 * 1024
    before = int(r.info("memory")["used_memory"])
    peak = [before]
    stop = threading.Event()

    def sample() -> None:
        client = redis.Redis.from_url(redis_url)
        while not stop.is_set():
            peak[0] = max(peak[0], int(client.info("memory")["used_memory"]))
            time.sleep(0.005)
        client.close()

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        report = MigrationExecutor().apply(
            plan, redis_client=r, backup_dir=tmp_path / "b", pacing=Pacing(throttle=False)
        )
    finally:
        stop.set()
        sampler.join(10)

    assert report.result == "succeeded", report.error
    events = _events(tmp_path / "b")
    builds = [e for e in events if isinstance(e, ShadowCreated)]
    final = [e for e in events if getattr(e, "step", "") == "final_create"]
    assert len(builds) + (1 if final else 0) == plan.online.index_builds
    grown = peak[0] - before
    assert 0 < grown <= estimate, (grown / 2**20, plan.online.memory)


def test_maxmemory_too_tight_for_the_expand_peak_refuses_online(r: redis.Redis) -> None:
    """With maxmemory between used_memory and used_memory + the expand estimate, auto plans
    drop_recreate and says why; --mode online is blocked with the estimate."""
    _load(r, 300)
    roomy = _plan(r)
    assert roomy.online is not None
    need = int(roomy.online.memory.shadow_mb * 1024 * 1024)
    used = int(r.info("memory")["used_memory"])
    previous = r.config_get("maxmemory")["maxmemory"]
    r.config_set("maxmemory", used + need // 2)
    try:
        patch = load_patch(ROOT / "patches" / "demo_quantize_add_field.yaml")
        auto = MigrationPlanner().create_plan(
            INDEX, redis_client=r, schema_patch=patch, mode="auto"
        )
        online = MigrationPlanner().create_plan(
            INDEX, redis_client=r, schema_patch=patch, mode="online"
        )
    finally:
        r.config_set("maxmemory", previous)
    assert auto.mode == "drop_recreate" and "maxmemory" in auto.mode_reason
    assert not online.supported
    assert any("maxmemory" in reason for reason in online.diff_classification.blocked_reasons)


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
def test_a_vector_probe_follows_the_cut_over_to_the_new_datatype(
    r: redis.Redis, redis_url: str, tmp_path: Path, use_async: bool
) -> None:
    """After the cut-over the live index reads float16: the probe's float32 vector fails
    once (the only failed FT.SEARCH of the run), then the probe is looked up again and the
    probes of the final build and the contract no longer fail. Both executors."""
    _load(r, 100)
    plan = _plan(r, postpone_cutover=False)
    r.config_resetstat()

    if use_async:
        run = AsyncMigrationExecutor().apply(plan, redis_url=redis_url, backup_dir=tmp_path / "b")
        report = asyncio.run(run)
    else:
        report = MigrationExecutor().apply(plan, redis_url=redis_url, backup_dir=tmp_path / "b")

    assert report.result == "succeeded", report.error
    stats = r.info("commandstats")["cmdstat_FT.SEARCH"]
    assert stats["failed_calls"] == 1
    assert np.frombuffer(r.hget("doc:0", "embedding") or b"", dtype=np.float16).size == DIMS
