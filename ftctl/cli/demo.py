"""``ftctl demo``: a real migration, end to end, on an embedded Redis 8 + Search.

Starts the embedded server, creates the demo index, loads sentence embeddings, plans
float32 → float16 plus a new field, applies it with a journal, shows the report and the
audit trail, then rolls it back and checks every original byte is back.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import click
import numpy as np
import redis

from ftctl.cli.render import report_summary, timeline
from ftctl.drivers import SyncDriver
from ftctl.errors import MigrationFailed
from ftctl.executor import MigrationExecutor, rollback
from ftctl.journal import Journal
from ftctl.journal.inspect import inspect_rows
from ftctl.plan.models import load_patch
from ftctl.planner import MigrationPlanner
from ftctl.schema.model import load_schema
from ftctl.server import EmbeddedServer
from ftctl.steps.catalog import create_with_history

_REPO_FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


def _load_documents(fixtures: Path, limit: int) -> tuple[list[str], np.ndarray]:
    vectors_file = fixtures / "embeddings" / "minilm-384-3000.npy"
    texts_file = fixtures / "embeddings" / "minilm-384-3000.txt"
    if vectors_file.exists() and texts_file.exists():
        vectors = np.load(vectors_file)[:limit].astype(np.float32)
        texts = texts_file.read_text(encoding="utf-8").splitlines()[:limit]
        return texts, vectors
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((limit, 384)).astype(np.float32)
    return [f"document {i}" for i in range(limit)], vectors


def _snapshot(client: redis.Redis, pattern: str) -> dict[object, object]:
    return {key: client.hgetall(key) for key in client.scan_iter(match=pattern, count=1000)}


@click.command()
@click.option("--docs", default=3000, show_default=True, type=click.IntRange(10, 100_000))
@click.option(
    "--fixtures",
    type=click.Path(file_okay=False, path_type=Path),
    default=_REPO_FIXTURES,
    show_default=False,
    help="The repository's fixtures/ (random vectors when missing).",
)
def demo(docs: int, fixtures: Path) -> None:
    """Run a real float32→float16 + add-field migration and its rollback on an embedded server."""
    echo = click.echo
    with EmbeddedServer() as server, tempfile.TemporaryDirectory(prefix="ftctl-demo-") as work:
        echo(f"Embedded Redis 8 + Search at {server.url}")
        client = redis.Redis.from_url(server.url, protocol=3)
        schema = load_schema(fixtures / "schemas" / "demo_docs.yaml")
        SyncDriver(client).run(create_with_history(schema))
        texts, vectors = _load_documents(fixtures, docs)
        pipe = client.pipeline(transaction=False)
        for i, (text, vector) in enumerate(zip(texts, vectors, strict=True)):
            module = text.split(" ", 1)[0].strip(".").lower() or "misc"
            fields = {
                "text": text,
                "module": module,
                "embedding": vector.tobytes(),
                "words": len(text.split()),
            }
            pipe.hset(f"doc:{i}", mapping=fields)  # type: ignore[arg-type]
        pipe.execute()
        echo(f"Loaded {len(texts):,} documents into index '{schema.name}'")
        before = _snapshot(client, "doc:*")

        patch = load_patch(fixtures / "patches" / "demo_quantize_add_field.yaml")
        plan = MigrationPlanner().create_plan(schema.name, redis_client=client, schema_patch=patch)
        echo(f"\nPlan: supported={plan.supported}, mode={plan.mode}")
        for warning in plan.warnings:
            echo(f"  - {warning}")
        if not plan.supported:
            raise MigrationFailed(
                "the demo plan is blocked: " + "; ".join(plan.diff_classification.blocked_reasons)
            )

        backup_dir = Path(work) / "backups"
        echo("\n== apply")
        report = MigrationExecutor().apply(
            plan, client=client, backup_dir=backup_dir, accept_data_loss=True
        )
        report_summary(report)
        if report.result != "succeeded":
            raise MigrationFailed("the demo migration failed")
        sample = client.hget("doc:0", "embedding") or b""
        echo(f"doc:0 embedding is now {len(sample)} bytes (float16), was {384 * 4}")

        echo("\n== journal (first and last events)")
        rows = inspect_rows(Journal.read(backup_dir / schema.name))
        timeline(rows[:6] + rows[-4:])

        echo("\n== rollback")
        undone = rollback(backup_dir, client=client)
        report_summary(undone)
        after = _snapshot(client, "doc:*")
        if after != before or undone.result != "rolled_back":
            raise MigrationFailed("rollback did not restore every original byte")
        echo(f"\nAll {len(before):,} documents are back byte for byte; the demo is done.")
        client.close()
