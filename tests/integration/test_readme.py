"""The README's quick start and Python example work as written."""

from __future__ import annotations

from pathlib import Path

import redis
from click.testing import CliRunner

from ftctl import MigrationExecutor, MigrationPlanner, rollback
from ftctl.cli import cli

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


def _load(r: redis.Redis, count: int = 50) -> None:
    import numpy as np

    vectors = np.load(FIXTURES / "embeddings" / "minilm-384-3000.npy")[:count]
    pipe = r.pipeline(transaction=False)
    for i, vector in enumerate(vectors):
        pipe.hset(
            f"doc:{i}", mapping={"text": f"text {i}", "module": "m", "embedding": vector.tobytes()}
        )
    pipe.execute()


def test_readme_quick_start_cli(redis_url: str, r: redis.Redis, tmp_path: Path) -> None:
    """index create → plan → apply → journal inspect → rollback, with the README's files."""
    runner = CliRunner()

    def run(*args: str) -> str:
        result = runner.invoke(cli, ["--url", redis_url, *args])
        assert result.exit_code == 0, result.output
        return result.output

    run("index", "create", "--schema", str(FIXTURES / "schemas" / "demo_docs.yaml"))
    _load(r)
    assert "demo_docs" in run("index", "listall")
    plan = tmp_path / "plan.yaml"
    patch = FIXTURES / "patches" / "demo_quantize_add_field.yaml"
    run(
        "migrate",
        "plan",
        "--index",
        "demo_docs",
        "--schema-patch",
        str(patch),
        "--plan-out",
        str(plan),
    )
    backups = tmp_path / "backups"
    applied = run("migrate", "apply", "--plan", str(plan), "--backup-dir", str(backups))
    assert "Result: succeeded" in applied
    assert len(r.hget("doc:0", "embedding") or b"") == 384 * 2
    assert "run_finished" in run("migrate", "journal", "inspect", "--backup-dir", str(backups))
    assert "Result: rolled_back" in run("migrate", "rollback", "--backup-dir", str(backups))
    assert len(r.hget("doc:0", "embedding") or b"") == 384 * 4


def test_readme_python_example(redis_url: str, r: redis.Redis, tmp_path: Path) -> None:
    """The README's Python snippet plans, applies and reports; rollback restores the bytes."""
    runner = CliRunner()
    created = runner.invoke(
        cli,
        [
            "--url",
            redis_url,
            "index",
            "create",
            "--schema",
            str(FIXTURES / "schemas" / "demo_docs.yaml"),
        ],
    )
    assert created.exit_code == 0, created.output
    _load(r)
    original = r.hget("doc:7", "embedding")
    patch = FIXTURES / "patches" / "demo_quantize_add_field.yaml"
    plan = MigrationPlanner().create_plan("demo_docs", redis_url=redis_url, schema_patch_path=patch)
    report = MigrationExecutor().apply(plan, redis_url=redis_url, backup_dir=tmp_path / "backups")
    assert report.result == "succeeded"
    assert report.timings.downtime_duration_seconds > 0
    assert rollback(tmp_path / "backups", redis_url=redis_url).result == "rolled_back"
    assert r.hget("doc:7", "embedding") == original
