"""Reports written by apply regenerate identically from the journal alone."""

from __future__ import annotations

from pathlib import Path

import redis
import yaml
from click.testing import CliRunner
from helpers import patch, plan, source

from ftctl.cli import cli
from ftctl.plan import dump_plan, load_plan


def test_apply_report_equals_the_report_regenerated_from_the_journal(
    r: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    """`migrate apply --report-out` and `migrate report` (journal only, after deleting the
    first file) write the same bytes; `--benchmark-out` holds per-step timings."""
    source(r, "hash")
    plan_file = tmp_path / "plan.yaml"
    plan_file.write_bytes(
        dump_plan(
            plan(
                redis_url, patch(update_fields=[{"name": "emb", "attrs": {"datatype": "float16"}}])
            )
        )
    )
    backups, first, bench = tmp_path / "b", tmp_path / "r1.yaml", tmp_path / "bench.yaml"
    runner = CliRunner()
    applied = runner.invoke(
        cli,
        ["--url", redis_url, "migrate", "apply", "--plan", str(plan_file), "--backup-dir", str(backups),
         "--accept-data-loss", "--report-out", str(first), "--benchmark-out", str(bench)],
    )  # fmt: skip
    assert applied.exit_code == 0, applied.output
    written = first.read_bytes()
    first.unlink()
    again = tmp_path / "r2.yaml"
    regenerated = runner.invoke(
        cli, ["migrate", "report", "--backup-dir", str(backups), "--report-out", str(again)]
    )
    assert regenerated.exit_code == 0, regenerated.output
    assert again.read_bytes() == written
    assert b"result: succeeded" in written
    assert b"quantize:" in bench.read_bytes()


def test_apply_and_validate_count_the_reviewed_plan_warnings_instead_of_reprinting_them(
    r: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    """`migrate plan` prints the warnings for review; `apply` and `validate` print one line
    counting them (each is still in the report file), not every warning again."""
    source(r, "hash")
    patch_file, plan_file = tmp_path / "patch.yaml", tmp_path / "plan.yaml"
    patch_file.write_text(
        "version: 1\nchanges:\n  update_fields:\n  - {name: emb, attrs: {datatype: float16}}\n"
    )
    runner = CliRunner()
    planned = runner.invoke(
        cli,
        ["--url", redis_url, "migrate", "plan", "--index", "docs", "--schema-patch",
         str(patch_file), "--plan-out", str(plan_file), "--mode", "drop_recreate"],
    )  # fmt: skip
    assert planned.exit_code == 0, planned.output
    warnings = load_plan(plan_file).warnings
    assert len(warnings) >= 2 and all(w in planned.stdout for w in warnings)
    report_file = tmp_path / "report.yaml"
    applied = runner.invoke(
        cli,
        ["--url", redis_url, "migrate", "apply", "--plan", str(plan_file), "--backup-dir",
         str(tmp_path / "b"), "--report-out", str(report_file)],
    )  # fmt: skip
    validated = runner.invoke(
        cli, ["--url", redis_url, "migrate", "validate", "--plan", str(plan_file)]
    )
    counted = (
        f"Plan warnings: {len(warnings)} (reviewed when the plan was made; listed under "
        "'warnings' in the plan and the report)"
    )
    for result in (applied, validated):
        assert result.exit_code == 0, result.output
        assert counted in result.stdout.splitlines()
        assert not any(w in result.stdout for w in warnings)
    assert yaml.safe_load(report_file.read_text())["warnings"] == warnings
