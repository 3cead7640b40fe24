"""The pacing options of the run commands, and ``migrate pause|unpause``, without a server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest
from click.testing import CliRunner

from ftctl.cli import cli
from ftctl.journal.pause import PAUSE_NAME
from ftctl.journal.report import MigrationReport
from ftctl.plan.models import load_plan
from ftctl.plan.online import OnlinePlan
from ftctl.plan.pacing import Pacing
from ftctl.runs import Options, journal_dir, open_for_apply

FIXTURES = Path(__file__).parents[3] / "fixtures"


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """What the run commands hand to the executor (nothing runs)."""
    seen: list[dict[str, Any]] = []

    def execute(use_async: bool, verb: str, *args: Any, **kwargs: Any) -> MigrationReport:
        seen.append({"verb": verb, **kwargs})
        return MigrationReport(result="rolled_back" if verb == "abort" else "succeeded")

    monkeypatch.setattr("ftctl.cli.migrate_run.execute", execute)
    monkeypatch.setattr("ftctl.cli.online.execute", execute)
    return seen


@pytest.mark.parametrize(
    ("args", "pacing"),
    [
        ([], None),
        (["--max-cpu", "80%"], Pacing(max_cpu=0.8)),
        (
            ["--max-cpu", "0.25", "--max-latency-ms", "12.5"],
            Pacing(max_cpu=0.25, max_latency_ms=12.5),
        ),
        (["--no-throttle"], Pacing(throttle=False)),
        (["--probe-query", "@module:{json}"], Pacing(probe_query="@module:{json}")),
    ],
)
def test_resume_hands_only_the_settings_given_to_the_library(
    calls: list[dict[str, Any]], tmp_path: Path, args: list[str], pacing: Pacing | None
) -> None:
    """Options left out stay None (the library inherits them from the journal); a CPU share
    is a fraction or a percentage."""
    out = CliRunner().invoke(cli, ["migrate", "resume", "--backup-dir", str(tmp_path), *args])
    assert out.exit_code == 0, out.output
    assert calls[-1]["pacing"] == pacing


@pytest.mark.parametrize("verb", ["apply", "resume", "rollback", "cutover", "abort"])
def test_every_verb_that_writes_online_takes_the_pacing_options(
    calls: list[dict[str, Any]], tmp_path: Path, verb: str
) -> None:
    """apply, resume, rollback, cutover and abort all pass --max-latency-ms on."""
    plan = tmp_path / "plan.yaml"
    plan.write_bytes((FIXTURES / "plans" / "guide_plan.yaml").read_bytes())
    where = ["--plan", str(plan)] if verb == "apply" else []
    out = CliRunner().invoke(
        cli,
        ["migrate", verb, *where, "--backup-dir", str(tmp_path), "--max-latency-ms", "20"],
    )
    assert out.exit_code == 0, out.output
    assert calls[-1]["verb"] == verb and calls[-1]["pacing"] == Pacing(max_latency_ms=20)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--max-cpu", "120%"], "is not between 0 and 1"),
        (["--max-cpu", "lots"], "is not a share of one core"),
        (["--max-latency-ms", "0"], "--max-latency-ms"),
    ],
)
def test_bad_pacing_values_exit_2_before_anything_runs(
    calls: list[dict[str, Any]], tmp_path: Path, args: list[str], says: str
) -> None:
    """A CPU share outside (0, 1] or a latency that is not positive: usage error, exit 2."""
    out = CliRunner().invoke(cli, ["migrate", "resume", "--backup-dir", str(tmp_path), *args])
    assert out.exit_code == 2 and says in out.output
    assert calls == []


def test_pause_and_unpause_commands(tmp_path: Path) -> None:
    """`migrate pause` creates the flag and says how to go on; a second pause says it
    already is; `unpause` removes it; a second unpause says there is none."""
    plan = load_plan(FIXTURES / "plans" / "guide_plan.yaml")
    online = OnlinePlan(strategy="expand", serving_name=plan.source.index_name, shadow_name="s")
    plan = msgspec.structs.replace(plan, mode="online", online=online)
    open_for_apply(plan, tmp_path, "redis://x", Options()).journal.close()
    flag = journal_dir(tmp_path, plan.source.index_name) / PAUSE_NAME
    run = CliRunner()

    first = run.invoke(cli, ["migrate", "pause", "--backup-dir", str(tmp_path)])
    assert first.exit_code == 0 and first.output.startswith("Pause requested")
    assert "ftctl migrate unpause --backup-dir" in first.output and flag.exists()
    again = run.invoke(cli, ["migrate", "pause", "--backup-dir", str(tmp_path)])
    assert again.exit_code == 0 and again.output.startswith("Already paused")
    done = run.invoke(cli, ["migrate", "unpause", "--backup-dir", str(tmp_path)])
    assert done.exit_code == 0 and done.output.startswith("Pause flag removed")
    assert not flag.exists()
    none = run.invoke(cli, ["migrate", "unpause", "--backup-dir", str(tmp_path)])
    assert none.exit_code == 0 and none.output.startswith("Not paused")


def test_pausing_without_a_journal_is_a_one_line_usage_error(tmp_path: Path) -> None:
    """No journal under the backup dir: exit 2, one line with a hint, nothing created."""
    out = CliRunner().invoke(cli, ["migrate", "pause", "--backup-dir", str(tmp_path)])
    assert out.exit_code == 2
    assert out.stderr.startswith("error: no migration journal under")
    assert list(tmp_path.iterdir()) == []
