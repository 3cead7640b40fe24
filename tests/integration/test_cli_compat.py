"""The CLI follows the guide where the Python API does: lossy apply, query checks, batch flags."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import redis
import yaml
from click.testing import CliRunner, Result
from helpers import DOCS, INDEX, PREFIX, info, patch, plan, source

from ftctl.cli import cli
from ftctl.plan import dump_plan

FLOAT16 = {"update_fields": [{"name": "emb", "attrs": {"datatype": "float16"}}]}


def _run(redis_url: str, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--url", redis_url, "migrate", *args])


def _plan_file(tmp_path: Path, redis_url: str, changes: dict[str, object]) -> Path:
    out = tmp_path / "plan.yaml"
    out.write_bytes(dump_plan(plan(redis_url, patch(**changes))))
    return out


def test_apply_runs_a_reviewed_lossy_plan_without_the_flag(
    r: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    """`migrate apply` of a float16 plan without --accept-data-loss (and no terminal to
    ask on) runs it, as the guide's apply does; --query-check-file's checks and the guide's
    timing keys are in the --report-out file."""
    source(r, "hash")
    plan_file = _plan_file(tmp_path, redis_url, FLOAT16)
    checks = tmp_path / "checks.yaml"
    checks.write_text(yaml.safe_dump({"fetch_ids": ["0", "1"], "keys_exist": [f"{PREFIX}2"]}))
    report_file = tmp_path / "report.yaml"
    result = _run(
        redis_url, "apply", "--plan", str(plan_file), "--backup-dir", str(tmp_path / "b"),
        "--query-check-file", str(checks), "--report-out", str(report_file),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = yaml.safe_load(report_file.read_text())
    assert report["result"] == "succeeded"
    assert {c["name"]: c["passed"] for c in report["validation"]["query_checks"]} == {
        "functional:wildcard_search": True,
        "fetch:0": True,
        "fetch:1": True,
        f"key:{PREFIX}2": True,
    }
    assert isinstance(report["timings"]["quantize_duration_seconds"], float)
    assert "quantize" in report["timings"]["steps"]
    assert info(r).schema.field("emb").attrs.datatype == "float16"  # type: ignore[union-attr]


def test_validate_runs_the_query_check_file(r: redis.Redis, redis_url: str, tmp_path: Path) -> None:
    """`migrate validate --query-check-file` runs the file's checks: exit 0 when they all
    pass, 1 when a document is missing."""
    source(r, "hash")
    plan_file = _plan_file(tmp_path, redis_url, {"add_fields": [{"name": "color", "type": "tag"}]})
    applied = _run(
        redis_url, "apply", "--plan", str(plan_file), "--backup-dir", str(tmp_path / "b")
    )
    assert applied.exit_code == 0, applied.output
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text(yaml.safe_dump({"fetch_ids": [str(DOCS - 1)]}))
    bad.write_text(yaml.safe_dump({"fetch_ids": [str(DOCS)]}))
    ok = _run(redis_url, "validate", "--plan", str(plan_file), "--query-check-file", str(good))
    assert ok.exit_code == 0, ok.output
    report_file = tmp_path / "failed.yaml"
    failed = _run(
        redis_url, "validate", "--plan", str(plan_file), "--query-check-file", str(bad),
        "--report-out", str(report_file),
    )  # fmt: skip
    assert failed.exit_code == 1, failed.output
    errors = yaml.safe_load(report_file.read_text())["validation"]["errors"]
    assert errors == [f"fetch:{DOCS}: Document not found ({PREFIX}{DOCS})"]


def test_batch_apply_still_needs_accept_data_loss(
    r: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    """`migrate batch-apply` of a float16 batch keeps the guide's --accept-data-loss: without
    it the batch is refused (exit 2) and no vector changes; with it, it runs."""
    source(r, "hash")
    before = r.hget(f"{PREFIX}0", "emb")
    patch_file = tmp_path / "patch.yaml"
    patch_file.write_text(yaml.safe_dump({"version": 1, "changes": FLOAT16}))
    batch_plan = tmp_path / "batch_plan.yaml"
    planned = _run(redis_url, "batch-plan", "--indexes", INDEX, "--schema-patch", str(patch_file),
                   "--plan-out", str(batch_plan))  # fmt: skip
    assert planned.exit_code == 0, planned.output
    args = ["batch-apply", "--plan", str(batch_plan), "--backup-dir", str(tmp_path / "b"),
            "--state", str(tmp_path / "state.yaml"), "--report-dir", str(tmp_path / "reports")]  # fmt: skip
    refused = _run(redis_url, *args)
    assert refused.exit_code == 2 and "lossily" in refused.output
    assert r.hget(f"{PREFIX}0", "emb") == before
    accepted = _run(redis_url, *args, "--accept-data-loss")
    assert accepted.exit_code == 0, accepted.output
    expected = np.frombuffer(before, dtype="<f4").astype("<f2").tobytes()  # type: ignore[arg-type]
    assert r.hget(f"{PREFIX}0", "emb") == expected
