"""`ftctl demo` runs a real migration and its rollback end to end on its own server."""

from __future__ import annotations

from pathlib import Path

import redis
from click.testing import CliRunner
from helpers import ROOT

from ftctl.cli import cli
from ftctl.demo import Applied, Audited, Loaded, Planned, RolledBack, run_demo


def test_demo_migrates_and_rolls_back() -> None:
    """The demo plans float32→float16 + a field, applies, rolls back byte for byte, exits 0."""
    result = CliRunner().invoke(cli, ["demo", "--docs", "300"])
    assert result.exit_code == 0, result.output
    assert "Result: succeeded" in result.output
    assert "Result: rolled_back" in result.output
    assert "now 768 bytes (float16)" in result.output
    assert "back byte for byte" in result.output


def test_run_demo_yields_each_stage(r: redis.Redis, redis_url: str, tmp_path: Path) -> None:
    """The library scenario behind `ftctl demo` yields loaded, planned, applied, audited and
    rolled back, in that order, and ends with every document restored."""
    stages = list(
        run_demo(redis_url, fixtures=ROOT / "fixtures", backup_dir=tmp_path / "b", docs=40)
    )
    assert [type(s) for s in stages] == [Loaded, Planned, Applied, Audited, RolledBack]
    loaded, planned, applied, audited, undone = stages
    assert isinstance(loaded, Loaded) and loaded.documents == 40
    assert isinstance(planned, Planned) and planned.plan.supported
    assert isinstance(applied, Applied) and applied.report.result == "succeeded"
    assert (applied.sample_bytes, applied.original_bytes) == (384 * 2, 384 * 4)
    assert isinstance(audited, Audited) and audited.rows[0].event == "run_started"
    assert isinstance(undone, RolledBack) and undone.restored and undone.documents == 40
