"""Pacing in runs without a server: journaled with the run and inherited by the next one,
the pause flag's library calls, and the tap's log lines for pauses and pace changes."""

from __future__ import annotations

import logging
from pathlib import Path

import msgspec
import pytest

from ftctl.errors import UsageError
from ftctl.journal import Journal
from ftctl.journal.events import PaceChanged, RunPaused, RunResumed, RunStarted
from ftctl.journal.pause import PAUSE_NAME
from ftctl.logs import get_logger
from ftctl.plan.models import MigrationPlan, load_plan
from ftctl.plan.online import OnlinePlan
from ftctl.plan.pacing import Pacing
from ftctl.runs import (
    JournalTap,
    Options,
    journal_dir,
    open_existing,
    open_for_apply,
    paces,
    pause,
    unpause,
)

FIXTURES = Path(__file__).parents[2] / "fixtures"


def _plans() -> tuple[MigrationPlan, MigrationPlan]:
    """(the guide's drop_recreate plan, the same change as an online expand plan)."""
    plan = load_plan(FIXTURES / "plans" / "guide_plan.yaml")
    online = OnlinePlan(strategy="expand", serving_name=plan.source.index_name, shadow_name="s")
    return plan, msgspec.structs.replace(plan, mode="online", online=online)


def _starts(directory: Path) -> list[RunStarted]:
    return [e for e in Journal.read(directory) if isinstance(e, RunStarted)]


def test_a_run_journals_its_pacing_and_the_next_run_inherits_what_it_is_not_given(
    tmp_path: Path,
) -> None:
    """apply --max-latency-ms 20 is journaled in full (defaults filled in); a rollback given
    only --max-cpu 0.5 keeps the apply's 20 ms and journals both."""
    _, plan = _plans()
    run = open_for_apply(plan, tmp_path, "redis://x", Options(pacing=Pacing(max_latency_ms=20)))
    run.journal.close()
    options = Options(pacing=Pacing(max_cpu=0.5))
    later = open_existing(run.directory, "rollback", "redis://x", options)
    later.journal.close()

    first, second = _starts(run.directory)
    assert Pacing.from_options(first.options) == Pacing(
        max_latency_ms=20, max_cpu=0.8, probe_query="", throttle=True
    )
    assert Pacing.from_options(second.options) == Pacing(
        max_latency_ms=20, max_cpu=0.5, probe_query="", throttle=True
    )
    assert options.pacing == Pacing.from_options(second.options)


def test_plans_that_write_no_documents_online_journal_no_pacing(tmp_path: Path) -> None:
    """drop_recreate is never paced: its run_started carries no pacing settings."""
    plan, _ = _plans()
    run = open_for_apply(plan, tmp_path, "redis://x", Options(pacing=Pacing(max_latency_ms=20)))
    run.journal.close()
    (first,) = _starts(run.directory)
    assert "max_latency_ms" not in first.options and "throttle" not in first.options


def test_pause_and_unpause_set_and_clear_the_flag(tmp_path: Path) -> None:
    """pause creates the flag in the journal directory (once), unpause removes it (once)."""
    _, plan = _plans()
    open_for_apply(plan, tmp_path, "redis://x", Options()).journal.close()
    directory = journal_dir(tmp_path, plan.source.index_name)

    assert pause(tmp_path).changed and (directory / PAUSE_NAME).exists()
    assert not pause(tmp_path).changed
    with Journal.open(directory) as journal:
        assert journal.paused()
    assert unpause(tmp_path).changed and not (directory / PAUSE_NAME).exists()
    assert not unpause(tmp_path).changed


def test_pausing_a_migration_that_writes_no_documents_online_is_refused(tmp_path: Path) -> None:
    """A drop_recreate journal has nothing to pause: a one-line usage error, no flag."""
    plan, _ = _plans()
    open_for_apply(plan, tmp_path, "redis://x", Options()).journal.close()
    with pytest.raises(UsageError, match="does not rewrite documents online") as raised:
        pause(tmp_path)
    assert "Ctrl+C" in raised.value.hint
    assert not (journal_dir(tmp_path, plan.source.index_name) / PAUSE_NAME).exists()


def test_the_tap_logs_pauses_and_pace_changes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """run_paused is a warning with the way out, run_resumed says how long it held, a pace
    change names what was measured."""
    caplog.set_level(logging.INFO, logger="ftctl")
    _, plan = _plans()
    run = open_for_apply(plan, tmp_path, "redis://x", Options())
    try:
        tap = JournalTap(run.journal, get_logger("ftctl.run"))
        tap.append([RunPaused(step="expand")])
        tap.append([RunResumed(step="expand")])
        tap.append(
            [PaceChanged(step="contract", change="slowed", batch=10, sleep_ms=20, latency_ms=61.5)]
        )
    finally:
        run.journal.close()
    records = {r.msg if isinstance(r.msg, str) else "": r.__dict__ for r in caplog.records}
    paused = records["run paused"]
    assert paused["levelno"] == logging.WARNING and "unpause" in paused["hint"]
    assert "paused_s" in records["run resumed"]
    slowed = records["pace slowed"]
    assert (slowed["batch"], slowed["sleep_ms"], slowed["latency_ms"]) == (10, 20, 61.5)
    assert "cpu" not in slowed


def test_only_online_plans_that_rewrite_documents_are_paced() -> None:
    """drop_recreate (nothing serves in its window), FT.ALTER and shadow plans (they write
    no document) get no pacer; an expand plan does."""
    plan, expanding = _plans()
    assert paces(expanding) and not paces(plan)
    for strategy in ("alter", "shadow"):
        assert expanding.online is not None
        other = msgspec.structs.replace(
            expanding, online=msgspec.structs.replace(expanding.online, strategy=strategy)
        )
        assert not paces(other)


def test_the_package_exports_the_pacing_api() -> None:
    """``from ftctl import Pacing, pause, unpause`` (the README's Python names)."""
    import ftctl

    assert ftctl.Pacing is Pacing and ftctl.pause is pause and ftctl.unpause is unpause
    assert {"Pacing", "pause", "unpause"} <= set(ftctl.__all__)
