"""Reports written by apply regenerate identically from the journal alone."""

from __future__ import annotations

from pathlib import Path

import redis
from click.testing import CliRunner
from helpers import patch, plan, source

from ftctl.cli import cli
from ftctl.plan import dump_plan


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
