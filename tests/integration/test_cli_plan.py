"""``ftctl migrate plan`` and ``estimate`` through click, on the real server."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import redis
from click.testing import CliRunner

from ftctl.cli import cli
from ftctl.plan import load_plan


@pytest.fixture
def products(r: redis.Redis) -> redis.Redis:
    """Index 'products' on 'doc:' with 30 float32 vectors of 8 dims."""
    r.execute_command(
        "FT.CREATE", "products", "ON", "HASH", "PREFIX", "1", "doc:", "SCHEMA",
        "title", "TEXT", "embedding", "VECTOR", "FLAT", "6", "TYPE", "FLOAT32", "DIM", "8",
        "DISTANCE_METRIC", "L2",
    )  # fmt: skip
    rng = np.random.default_rng(3)
    for i in range(30):
        r.hset(
            f"doc:{i}",
            mapping={"title": "t", "embedding": rng.normal(size=8).astype(np.float32).tobytes()},
        )
    return r


def _run(redis_url: str, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--url", redis_url, "migrate", *args])
    return result.exit_code, result.stdout, result.stderr


def test_plan_writes_plan_and_summary(
    products: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    """A supported patch: plan written, summary shows mode, supported and warnings, exit 0."""
    patch = tmp_path / "patch.yaml"
    patch.write_text(
        "version: 1\nchanges:\n  update_fields:\n  - name: embedding\n    attrs: {datatype: float16}\n"
    )
    out = tmp_path / "plan.yaml"
    code, stdout, _ = _run(
        redis_url,
        "plan",
        "--index",
        "products",
        "--schema-patch",
        str(patch),
        "--plan-out",
        str(out),
        "--mode",
        "drop_recreate",
    )
    assert code == 0, stdout
    assert "Supported: True" in stdout and "Mode: drop_recreate" in stdout
    assert "Index downtime is required" in stdout
    plan = load_plan(out)
    assert plan.vector_changes[0].target_datatype == "float16"
    assert plan.redis_url.startswith("redis://")


def test_blocked_plan_still_exits_zero(
    products: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    """A blocked plan is written and exits 0; the summary lists the blocked reason."""
    target = tmp_path / "target.yaml"
    target.write_text(
        "index: {name: products, prefix: 'doc:', storage_type: json}\n"
        "fields:\n- {name: title, type: text}\n"
        "- {name: embedding, type: vector, attrs: {dims: 8, algorithm: flat, distance_metric: l2}}\n"
    )
    out = tmp_path / "plan.yaml"
    code, stdout, _ = _run(
        redis_url,
        "plan",
        "--index",
        "products",
        "--target-schema",
        str(target),
        "--plan-out",
        str(out),
    )
    assert code == 0
    assert "Supported: False" in stdout and "storage type" in stdout
    assert not load_plan(out).diff_classification.supported


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--index", "ghost", "--schema-patch", "{patch}"], "does not exist"),
        (["--index", "products"], "exactly one"),
        (
            ["--index", "products", "--schema-patch", "{patch}", "--target-schema", "{patch}"],
            "exactly one",
        ),
        (["--index", "products", "--schema-patch", "{bad}"], "not valid YAML"),
        (["--index", "products", "--schema-patch", "{missing_field}"], "'nope'"),
    ],
)
def test_bad_input_exit_2_nothing_changed(
    products: redis.Redis, redis_url: str, tmp_path: Path, args: list[str], needle: str
) -> None:
    """Bad input is one error line with a hint, exit 2, no plan file, Redis unchanged."""
    files = {
        "patch": tmp_path / "p.yaml",
        "bad": tmp_path / "bad.yaml",
        "missing_field": tmp_path / "m.yaml",
    }
    files["patch"].write_text("changes: {}\n")
    files["bad"].write_text("changes: [unclosed\n")
    files["missing_field"].write_text("changes:\n  remove_fields: [nope]\n")
    out = tmp_path / "plan.yaml"
    before = (products.dbsize(), products.execute_command("FT._LIST"))
    argv = [a.format(**{k: str(v) for k, v in files.items()}) for a in args]
    code, _, stderr = _run(redis_url, "plan", *argv, "--plan-out", str(out))
    assert code == 2
    assert needle in stderr and "hint:" in stderr
    assert len(stderr.strip().splitlines()) == 1
    assert not out.exists()
    assert (products.dbsize(), products.execute_command("FT._LIST")) == before


def test_estimate_reports_memory_and_recall(
    products: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    """estimate prints backup size, memory before/after and the measured recall."""
    patch = tmp_path / "patch.yaml"
    patch.write_text(
        "changes:\n  update_fields:\n  - {name: embedding, attrs: {datatype: float16}}\n"
    )
    out = tmp_path / "plan.yaml"
    assert (
        _run(
            redis_url,
            "plan",
            "--index",
            "products",
            "--schema-patch",
            str(patch),
            "--plan-out",
            str(out),
        )[0]
        == 0
    )
    code, stdout, _ = _run(redis_url, "estimate", "--plan", str(out), "--aof-enabled")
    assert code == 0
    assert "float32 -> float16" in stdout
    assert "Backup (--backup-dir): ~960 B" in stdout  # 30 docs x 8 dims x 4 bytes
    assert "memory: ~960 B -> ~480 B" in stdout
    assert "measured recall@10" in stdout
    assert "AOF growth: ~" in stdout
