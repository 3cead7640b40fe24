"""The ``ftctl demo`` scenario as library calls: a real migration and its rollback.

Creates the demo index, loads sentence embeddings (random vectors when the fixtures are
missing), plans float32 → float16 plus a new field, applies it with a journal, reads the
journal back, rolls it back and checks every original byte is back.

:func:`run_demo` yields one stage at a time so a caller can show each as it happens; it
prints nothing. A stage that did not reach its goal is yielded first (so its report can be
shown) and the next step of the iteration raises :class:`~ftctl.errors.MigrationFailed`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import redis

from ftctl import audit
from ftctl.drivers import SyncDriver, connect
from ftctl.errors import MigrationFailed
from ftctl.executor import MigrationExecutor
from ftctl.indexes import create_index
from ftctl.journal.inspect import InspectRow
from ftctl.journal.report import MigrationReport
from ftctl.plan.models import MigrationPlan, load_patch
from ftctl.planner import MigrationPlanner
from ftctl.steps.effects import Command, Commands, Step
from ftctl.steps.replies import ok

DIMS = 384
PREFIX = "doc:"
SAMPLE_KEY = "doc:0"
_LOAD_BATCH = 500


@dataclass(frozen=True)
class Loaded:
    """The demo index exists and holds ``documents`` documents."""

    index: str
    documents: int


@dataclass(frozen=True)
class Planned:
    """The reviewed plan (the demo stops after this stage when it is blocked)."""

    plan: MigrationPlan


@dataclass(frozen=True)
class Applied:
    """The apply's report, and the size of one converted vector (float32 was 4 bytes a dimension)."""

    report: MigrationReport
    sample_key: str
    sample_bytes: int
    original_bytes: int


@dataclass(frozen=True)
class Audited:
    """The journal of the apply, as ``journal inspect`` shows it."""

    rows: list[InspectRow]


@dataclass(frozen=True)
class RolledBack:
    """The rollback's report; ``restored``: every document is back byte for byte."""

    report: MigrationReport
    documents: int
    restored: bool


DemoStage = Loaded | Planned | Applied | Audited | RolledBack


def fixtures_present(fixtures: str | os.PathLike[str]) -> bool:
    """Whether ``fixtures`` holds the sentence embeddings (else the demo uses random vectors)."""
    embeddings = Path(fixtures) / "embeddings"
    return (embeddings / "minilm-384-3000.npy").exists() and (
        embeddings / "minilm-384-3000.txt"
    ).exists()


def load_documents(fixtures: Path, limit: int) -> tuple[list[str], np.ndarray]:
    """Up to ``limit`` texts and their float32 embeddings (seeded random ones without fixtures)."""
    vectors_file = fixtures / "embeddings" / "minilm-384-3000.npy"
    texts_file = fixtures / "embeddings" / "minilm-384-3000.txt"
    if fixtures_present(fixtures):
        vectors = np.load(vectors_file)[:limit].astype(np.float32)
        texts = texts_file.read_text(encoding="utf-8").splitlines()[:limit]
        return texts, vectors
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((limit, DIMS)).astype(np.float32)
    return [f"document {i}" for i in range(limit)], vectors


def _write_documents(texts: list[str], vectors: np.ndarray) -> Step[int]:
    commands: list[Command] = []
    for i, (text, vector) in enumerate(zip(texts, vectors, strict=True)):
        module = text.split(" ", 1)[0].strip(".").lower() or "misc"
        commands.append(
            ("HSET", f"{PREFIX}{i}", "text", text, "module", module,
             "embedding", vector.tobytes(), "words", len(text.split()))
        )  # fmt: skip
    for start in range(0, len(commands), _LOAD_BATCH):
        replies = yield Commands(commands[start : start + _LOAD_BATCH])
        for reply in replies:
            ok(reply, "HSET")
    return len(commands)


def _hash(reply: object) -> dict[bytes, bytes]:
    """An HGETALL reply (RESP3 map or RESP2 flat list) as a dict."""
    value = ok(reply, "HGETALL")
    if isinstance(value, Mapping):
        return dict(value)
    assert isinstance(value, list | tuple)
    return dict(zip(value[::2], value[1::2], strict=True))


def _documents() -> Step[dict[bytes, dict[bytes, bytes]]]:
    """Every demo document's fields (SCAN over the prefix, then HGETALL)."""
    out: dict[bytes, dict[bytes, bytes]] = {}
    cursor = 0
    while True:
        (reply,) = yield Commands([("SCAN", cursor, "MATCH", f"{PREFIX}*", "COUNT", "1000")])
        page = ok(reply, "SCAN")
        assert isinstance(page, list | tuple) and isinstance(page[1], list)
        keys: list[bytes] = page[1]
        replies = yield Commands([("HGETALL", key) for key in keys])
        out.update({key: _hash(r) for key, r in zip(keys, replies, strict=True)})
        cursor = int(page[0])
        if cursor == 0:
            return out


def _vector_bytes(key: str) -> Step[int]:
    (reply,) = yield Commands([("HGET", key, "embedding")])
    return len(reply) if isinstance(reply, bytes) else 0


def load_demo(
    *,
    fixtures: str | os.PathLike[str],
    docs: int = 3000,
    redis_url: str | None = None,
    redis_client: redis.Redis | None = None,
) -> Loaded:
    """Create the demo index from ``fixtures`` and load ``docs`` documents into it.

    Refused (:class:`~ftctl.errors.RefusedError`, nothing written) when the index exists.
    """
    root = Path(fixtures)
    client = redis_client if redis_client is not None else connect(redis_url)
    try:
        schema = create_index(root / "schemas" / "demo_docs.yaml", redis_client=client)
        texts, vectors = load_documents(root, docs)
        return Loaded(schema.name, SyncDriver(client).run(_write_documents(texts, vectors)))
    finally:
        if redis_client is None:
            client.close()


def run_demo(
    redis_url: str,
    *,
    fixtures: str | os.PathLike[str],
    backup_dir: str | os.PathLike[str],
    docs: int = 3000,
) -> Iterator[DemoStage]:
    """Run the demo on the server at ``redis_url`` (meant for an empty, throwaway one).

    ``fixtures`` is the repository's ``fixtures/`` (schema, patch, embeddings);
    ``backup_dir`` receives the journal. Raises MigrationFailed when the plan is blocked,
    the apply fails or the rollback does not restore every byte (after yielding the stage
    that shows it).
    """
    root = Path(fixtures)
    client = connect(redis_url)
    driver = SyncDriver(client)
    try:
        loaded = load_demo(fixtures=root, docs=docs, redis_client=client)
        yield loaded
        index = loaded.index
        before = driver.run(_documents())

        patch = load_patch(root / "patches" / "demo_quantize_add_field.yaml")
        plan = MigrationPlanner().create_plan(index, redis_client=client, schema_patch=patch)
        yield Planned(plan)
        if not plan.supported:
            reasons = "; ".join(plan.diff_classification.blocked_reasons)
            raise MigrationFailed(f"the demo plan is blocked: {reasons}")

        report = MigrationExecutor().apply(
            plan, redis_client=client, backup_dir=backup_dir, accept_data_loss=True
        )
        sample = driver.run(_vector_bytes(SAMPLE_KEY))
        yield Applied(report, SAMPLE_KEY, sample, DIMS * 4)
        if report.result != "succeeded":
            raise MigrationFailed("the demo migration failed")

        (timeline,) = audit.inspect(backup_dir, index=index)
        yield Audited(timeline.rows)

        undone = MigrationExecutor().rollback(backup_dir, redis_client=client)
        restored = undone.result == "rolled_back" and driver.run(_documents()) == before
        yield RolledBack(undone, len(before), restored)
        if not restored:
            raise MigrationFailed("rollback did not restore every original byte")
    finally:
        client.close()


__all__ = [
    "Applied",
    "Audited",
    "DemoStage",
    "Loaded",
    "Planned",
    "RolledBack",
    "fixtures_present",
    "load_demo",
    "load_documents",
    "run_demo",
]
