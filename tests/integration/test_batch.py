"""Batch migrations end to end on the real server, through the CLI (and a SIGKILLed process)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import msgspec
import numpy as np
import pytest
import redis
from click.testing import CliRunner, Result

from ftctl.cli import cli
from ftctl.executor import FAULT_ENV
from ftctl.plan.batch import load_batch_plan
from ftctl.plan.models import load_plan, plan_digest
from ftctl.schema.ftinfo import parse_ft_info
from ftctl.schema.model import VectorField

DIMS = 8
SIZES = {"a_idx": 4, "b_idx": 12, "c_idx": 6}
"""With --batch-size 1 (segments of 4 keys), a_idx has one quantize batch (0) and b_idx
three (0, 1, 2)."""
PATCH = """version: 1
changes:
  update_fields:
    - name: embedding
      attrs:
        datatype: float16
"""


def _create(
    r: redis.Redis, name: str, prefix: str, *, vector: bool = True, extra: tuple[str, ...] = ()
) -> None:
    fields = ["title", "TEXT", *extra]
    if vector:
        fields += ["embedding", "VECTOR", "FLAT", "6", "TYPE", "FLOAT32", "DIM", str(DIMS),
                   "DISTANCE_METRIC", "COSINE"]  # fmt: skip
    r.execute_command("FT.CREATE", name, "ON", "HASH", "PREFIX", "1", prefix, "SCHEMA", *fields)


def _load(r: redis.Redis, prefix: str, count: int, seed: int) -> dict[bytes, bytes]:
    rng = np.random.default_rng(seed)
    originals: dict[bytes, bytes] = {}
    for i in range(count):
        vec = rng.normal(size=DIMS).astype(np.float32).tobytes()
        key = f"{prefix}{i}".encode()
        r.hset(key, mapping={"title": f"doc {i}", "embedding": vec})
        originals[key] = vec
    return originals


@pytest.fixture
def four(r: redis.Redis) -> dict[str, dict[bytes, bytes]]:
    """a_idx, b_idx, c_idx (float32 vectors, disjoint prefixes) and d_idx (no 'embedding')."""
    data: dict[str, dict[bytes, bytes]] = {}
    for seed, (name, count) in enumerate(SIZES.items()):
        prefix = f"{name[0]}:"
        _create(r, name, prefix)
        data[name] = _load(r, prefix, count, seed)
    _create(r, "d_idx", "d:", vector=False)
    r.hset("d:0", mapping={"title": "plain"})
    return data


def _run(redis_url: str, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--url", redis_url, "migrate", *args])


def _exact(r: redis.Redis, originals: dict[bytes, bytes]) -> None:
    """Every vector is exactly the float16 conversion of its original float32 bytes."""
    for key, original in originals.items():
        expected = np.frombuffer(original, dtype="<f4").astype("<f2").tobytes()
        assert r.hget(key, "embedding") == expected, key


def _untouched(r: redis.Redis, originals: dict[bytes, bytes]) -> None:
    for key, original in originals.items():
        assert r.hget(key, "embedding") == original, key


def _datatype(r: redis.Redis, index: str) -> str:
    field = parse_ft_info(r.execute_command("FT.INFO", index)).schema.field("embedding")
    assert isinstance(field, VectorField)
    return field.attrs.datatype


def _plan(tmp_path: Path, redis_url: str, *selector: str, policy: str = "fail_fast") -> Path:
    patch = tmp_path / "patch.yaml"
    patch.write_text(PATCH)
    out = tmp_path / "batch_plan.yaml"
    result = _run(redis_url, "batch-plan", *selector, "--schema-patch", str(patch),
                  "--failure-policy", policy, "--plan-out", str(out))  # fmt: skip
    assert result.exit_code == 0, result.output
    return out


def _apply_args(tmp_path: Path, plan: Path) -> list[str]:
    return ["batch-apply", "--plan", str(plan), "--backup-dir", str(tmp_path / "backups"),
            "--state", str(tmp_path / "batch_state.yaml"), "--report-dir",
            str(tmp_path / "reports"), "--accept-data-loss", "--batch-size", "1"]  # fmt: skip


def _status(redis_url: str, tmp_path: Path, *extra: str) -> str:
    result = _run(redis_url, "batch-status", "--state", str(tmp_path / "batch_state.yaml"), *extra)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_batch_quantizes_three_indexes_and_skips_the_one_without_the_field(
    r: redis.Redis, redis_url: str, four: dict[str, dict[bytes, bytes]], tmp_path: Path
) -> None:
    """batch-plan writes a reviewed plan per applicable index (path + digest) and a skip_reason
    for the index without 'embedding'; batch-apply quantizes exactly the three, logging each
    index's end with the batch id; status and the batch report come back byte-identical from
    the journal after the YAML files are deleted."""
    plan_path = _plan(tmp_path, redis_url, "--pattern", "*_idx")
    batch = load_batch_plan(plan_path)
    assert [(i.name, i.applicable) for i in batch.indexes] == [
        ("a_idx", True), ("b_idx", True), ("c_idx", True), ("d_idx", False)
    ]  # fmt: skip
    for entry in batch.applicable:
        assert entry.plan_path == f"plans/{entry.name}.yaml"
        plan = load_plan(tmp_path / entry.plan_path)
        assert plan.index_name == entry.name and plan_digest(plan) == entry.plan_sha256
    (skipped,) = [i for i in batch.indexes if not i.applicable]
    assert skipped.skip_reason is not None and "'embedding'" in skipped.skip_reason
    assert not (tmp_path / "plans" / "d_idx.yaml").exists()

    result = _run(redis_url, *_apply_args(tmp_path, plan_path))
    assert result.exit_code == 0, result.output
    assert "[2/3] b_idx: success" in result.output
    finished = [line for line in result.stderr.splitlines() if "batch index finished" in line]
    assert len(finished) == 3 and all(f"batch_id={batch.batch_id}" in f for f in finished)
    for name, originals in four.items():
        _exact(r, originals)
        assert _datatype(r, name) == "float16"
    assert r.hget("d:0", "title") == b"plain"

    status = _status(redis_url, tmp_path)
    assert "Completed: 3" in status and "  - b_idx: success (" in status
    assert "Remaining: 0" in status and "In Progress: -" in status
    assert "Skipped: 1\n  - d_idx: " in status
    report = msgspec.yaml.decode((tmp_path / "reports" / "batch_report.yaml").read_bytes())
    assert report["status"] == "completed"
    assert report["summary"]["successful"] == 3 and report["summary"]["skipped"] == 1
    assert Path(report["indexes"][0]["report_path"]).is_file()
    assert (tmp_path / "backups" / f"batch-{batch.batch_id}" / "journal.log").is_file()

    state_bytes = (tmp_path / "batch_state.yaml").read_bytes()
    report_bytes = (tmp_path / "reports" / "batch_report.yaml").read_bytes()
    json_status = _status(redis_url, tmp_path, "--json")
    (tmp_path / "batch_state.yaml").unlink()
    (tmp_path / "reports" / "batch_report.yaml").unlink()
    backups = str(tmp_path / "backups")
    assert _status(redis_url, tmp_path, "--backup-dir", backups, "--regenerate") == status
    assert (tmp_path / "batch_state.yaml").read_bytes() == state_bytes
    assert (tmp_path / "reports" / "batch_report.yaml").read_bytes() == report_bytes
    assert _status(redis_url, tmp_path, "--json") == json_status


def test_overlapping_indexes_inside_the_batch_are_refused(
    r: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    """Two applicable indexes whose prefixes overlap: exit 2, the guide's error with the pair
    and both prefixes, no plan written, no key touched."""
    _create(r, "products_main", "product:")
    _create(r, "products_premium", "product:premium:")
    originals = _load(r, "product:premium:", 3, 7)
    patch = tmp_path / "patch.yaml"
    patch.write_text(PATCH)
    out = tmp_path / "batch_plan.yaml"
    result = _run(redis_url, "batch-plan", "--indexes", "products_main,products_premium",
                  "--schema-patch", str(patch), "--plan-out", str(out))  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "Refusing to create batch plan: overlapping indexes detected." in result.output
    assert "Conflicts:" in result.output
    assert (
        "- products_main <-> products_premium: 'product:' <-> 'product:premium:'" in result.output
    )
    assert not out.exists() and not (tmp_path / "plans").exists()
    _untouched(r, originals)


def test_outside_index_sharing_a_reencoded_vector_is_refused(
    r: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    """A live index outside the batch on an overlapping prefix that indexes the re-encoded
    vector field refuses the batch (exit 2, names both); a text-only outside index on the same
    keys does not."""
    _create(r, "a_idx", "a:")
    _load(r, "a:", 3, 1)
    _create(r, "a_titles", "a:", vector=False)
    assert _plan(tmp_path, redis_url, "--indexes", "a_idx").exists()

    _create(r, "a_view", "a:sub")
    patch = tmp_path / "patch.yaml"
    out = tmp_path / "other_plan.yaml"
    result = _run(redis_url, "batch-plan", "--indexes", "a_idx", "--schema-patch", str(patch),
                  "--plan-out", str(out))  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "- a_idx <-> a_view (not in the batch): 'a:' <-> 'a:sub'" in result.output
    assert "a_titles" not in result.output
    assert not out.exists()


def _make_fail(r: redis.Redis) -> None:
    """b_idx no longer matches its reviewed plan (an extra field): its preflight refuses."""
    r.execute_command("FT.DROPINDEX", "b_idx")
    _create(r, "b_idx", "b:", extra=("category", "TAG"))


def test_fail_fast_stops_then_retry_failed_finishes(
    r: redis.Redis, redis_url: str, four: dict[str, dict[bytes, bytes]], tmp_path: Path
) -> None:
    """fail_fast: b_idx fails, c_idx is not run (exit 1, status shows the error and what
    remains); batch-resume without --retry-failed leaves b_idx failed; with it, b_idx runs."""
    plan_path = _plan(tmp_path, redis_url, "--indexes", "a_idx,b_idx,c_idx")
    _make_fail(r)
    result = _run(redis_url, *_apply_args(tmp_path, plan_path))
    assert result.exit_code == 1, result.output
    _exact(r, four["a_idx"])
    _untouched(r, four["b_idx"])
    _untouched(r, four["c_idx"])
    status = _status(redis_url, tmp_path)
    assert "  - a_idx: success (" in status
    assert "  - b_idx: failed - " in status and "Failed: 1" in status
    assert "Remaining: 1 (c_idx)" in status and "Status: failed" not in status

    state = str(tmp_path / "batch_state.yaml")
    result = _run(redis_url, "batch-resume", "--state", state, "--accept-data-loss")
    assert result.exit_code == 1, result.output
    _exact(r, four["c_idx"])
    _untouched(r, four["b_idx"])
    status = _status(redis_url, tmp_path)
    assert "Completed: 3" in status and "Remaining: 0" in status and "Failed: 1" in status

    r.execute_command("FT.DROPINDEX", "b_idx")
    _create(r, "b_idx", "b:")
    result = _run(redis_url, "batch-resume", "--state", state, "--retry-failed",
                  "--accept-data-loss")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "b_idx: success" in result.output and "a_idx" not in result.output
    for originals in four.values():
        _exact(r, originals)
    status = _status(redis_url, tmp_path)
    assert "Status: completed" in status and "Failed: 0" in status


def test_continue_on_error_runs_the_rest(
    r: redis.Redis, redis_url: str, four: dict[str, dict[bytes, bytes]], tmp_path: Path
) -> None:
    """continue_on_error: b_idx fails, c_idx still runs; exit 1 and a partial_failure report."""
    plan_path = _plan(tmp_path, redis_url, "--indexes", "a_idx,b_idx,c_idx",
                      policy="continue_on_error")  # fmt: skip
    _make_fail(r)
    result = _run(redis_url, *_apply_args(tmp_path, plan_path))
    assert result.exit_code == 1, result.output
    _exact(r, four["a_idx"])
    _exact(r, four["c_idx"])
    _untouched(r, four["b_idx"])
    report = msgspec.yaml.decode((tmp_path / "reports" / "batch_report.yaml").read_bytes())
    assert report["status"] == "partial_failure"
    assert report["summary"] == {
        "total_indexes": 3, "successful": 2, "failed": 1, "skipped": 0, "remaining": 0,
        "total_duration_seconds": report["summary"]["total_duration_seconds"],
    }  # fmt: skip
    (failed,) = [i for i in report["indexes"] if i["status"] == "failed"]
    assert failed["name"] == "b_idx" and failed["error"]


def test_sigkill_in_the_second_index_then_batch_resume(
    r: redis.Redis, redis_url: str, four: dict[str, dict[bytes, bytes]], tmp_path: Path
) -> None:
    """SIGKILL in the middle of b_idx's quantize (its source index already dropped): status
    shows it in progress; a different --backup-dir is refused; batch-resume finishes b_idx
    from its own journal and then c_idx, every vector exact."""
    plan_path = _plan(tmp_path, redis_url, "--pattern", "*_idx")
    env = {**os.environ, FAULT_ENV: "before:batch_done:quantize:1"}
    code = "from ftctl.cli import main; main()"
    args = [
        sys.executable,
        "-c",
        code,
        "--url",
        redis_url,
        "migrate",
        *_apply_args(tmp_path, plan_path),
    ]
    killed = subprocess.run(args, env=env, capture_output=True, timeout=120)
    assert killed.returncode == -9, killed.stderr
    assert b"b_idx" not in r.execute_command("FT._LIST")
    _exact(r, four["a_idx"])
    _untouched(r, four["c_idx"])
    status = _status(redis_url, tmp_path)
    assert "Completed: 1\n  - a_idx: success (" in status
    assert "In Progress: b_idx" in status and "Remaining: 1 (c_idx)" in status

    state = str(tmp_path / "batch_state.yaml")
    other = str(tmp_path / "elsewhere")
    refused = _run(redis_url, "batch-resume", "--state", state, "--backup-dir", other,
                   "--accept-data-loss")  # fmt: skip
    assert refused.exit_code == 2, refused.output
    assert "backup dir" in refused.output

    result = _run(redis_url, "batch-resume", "--state", state, "--accept-data-loss")
    assert result.exit_code == 0, result.output
    assert "[2/3] b_idx: success" in result.output and "[3/3] c_idx: success" in result.output
    for name, originals in four.items():
        _exact(r, originals)
        assert _datatype(r, name) == "float16"
    status = _status(redis_url, tmp_path)
    assert "Status: completed" in status and "Completed: 3" in status
    assert "In Progress: -" in status and "Remaining: 0" in status
