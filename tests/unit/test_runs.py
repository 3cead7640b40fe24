"""Run helpers that need no server: finding journals under a backup dir, and whether a
journal was rolled back."""

from __future__ import annotations

from pathlib import Path

import pytest

from ftctl.errors import UsageError
from ftctl.journal import Journal, RunStarted
from ftctl.journal.events import (
    AnyEvent,
    BatchRunStarted,
    RunFinished,
    RunKind,
    StepSkipped,
    StepStarted,
)
from ftctl.plan.models import load_plan
from ftctl.runs import Options, Run, find_journals, only_journal, rolled_back, run_started

FIXTURES = Path(__file__).parents[2] / "fixtures"


def _journal(directory: Path, kind: RunKind, index: str) -> None:
    first = RunStarted(
        run_id="r", kind=kind, index_name=index, plan_yaml="", plan_sha256="x", mode="online"
    )
    Journal.create(directory, first=first).close()


def test_resume_and_rollback_see_index_journals_not_the_batch_journal(tmp_path: Path) -> None:
    """A batch backup dir holds batch-<id>/ beside the index journals: only inspect lists it."""
    _journal(tmp_path / "batch-20261125", "batch", "")
    batch = BatchRunStarted(
        run_id="r", batch_id="b2", plan_yaml="", plan_sha256="x", mode="drop_recreate"
    )
    Journal.create(tmp_path / "batch-b2", first=batch).close()
    _journal(tmp_path / "a_idx", "apply", "a_idx")
    assert find_journals(tmp_path) == [tmp_path / "a_idx"]
    assert only_journal(tmp_path, None) == tmp_path / "a_idx"
    assert set(find_journals(tmp_path, batches=True)) == {
        tmp_path / "a_idx",
        tmp_path / "batch-20261125",
        tmp_path / "batch-b2",
    }


def test_no_journal_is_a_usage_error_with_a_hint(tmp_path: Path) -> None:
    """An empty backup dir names the problem and the fix."""
    with pytest.raises(UsageError, match="no migration journal") as caught:
        find_journals(tmp_path)
    assert "--backup-dir" in caught.value.hint


def test_several_index_journals_need_index(tmp_path: Path) -> None:
    """With two index journals, resume asks for --index."""
    _journal(tmp_path / "a_idx", "apply", "a_idx")
    _journal(tmp_path / "b_idx", "apply", "b_idx")
    with pytest.raises(UsageError, match="several indexes"):
        only_journal(tmp_path, None)
    assert only_journal(tmp_path, "b_idx") == tmp_path / "b_idx"


def _run_with(directory: Path, *later: list[AnyEvent]) -> Run:
    """A journal of an apply that started, followed by ``later`` appends (one run each)."""
    plan = load_plan(FIXTURES / "plans" / "guide_plan.yaml")
    apply = run_started(plan, "apply", "redis://x", Options())
    journal = Journal.create(directory, first=apply)
    journal.append([StepStarted(step="online_preflight")])
    rollback = run_started(plan, "rollback", "redis://x", Options())
    for events in later:
        journal.append([rollback, *events])
    return Run(journal, plan, directory, "apply")


def test_a_refused_rollback_does_not_end_the_apply(tmp_path: Path) -> None:
    """A rollback or abort refused before its first step (abort after a cut-over) changed
    nothing: apply, resume and cutover may still go on."""
    run = _run_with(tmp_path, [RunFinished(result="refused", error="already cut over")], [])
    try:
        assert not rolled_back(run)
    finally:
        run.journal.close()


def test_a_rollback_that_decided_anything_ends_the_apply(tmp_path: Path) -> None:
    """Once a rollback started or skipped a step, the journal belongs to the rollback."""
    for n, first in enumerate(
        [StepStarted(step="abort_shadow"), StepSkipped(step="rb_shadow_create", reason="r")]
    ):
        run = _run_with(tmp_path / str(n), [first])
        try:
            assert rolled_back(run)
        finally:
            run.journal.close()
