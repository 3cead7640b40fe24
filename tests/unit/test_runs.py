"""Run helpers that need no server: finding journals under a backup dir."""

from __future__ import annotations

from pathlib import Path

import pytest

from ftctl.errors import UsageError
from ftctl.journal import Journal, RunStarted
from ftctl.journal.events import BatchRunStarted, RunKind
from ftctl.runs import find_journals, only_journal


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
