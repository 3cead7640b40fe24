"""Run helpers that need no server: where journals go and how they are found, and
whether a journal was rolled back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ftctl.errors import JournalCorruptError, UsageError
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
from ftctl.runs import (
    Options,
    Run,
    find_journals,
    journal_dir,
    only_journal,
    rolled_back,
    run_started,
)

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


@pytest.mark.parametrize("index", ["..", "../x", "/abs/path", "a/b", "", "x" * 10_000, "idx:1"])
def test_hostile_index_names_get_a_directory_inside_the_backup_dir(
    tmp_path: Path, index: str
) -> None:
    """journal_dir of any index name is one entry of the backup dir, and --index finds the
    journal there by the index's real name."""
    backup = tmp_path / "backup"
    directory = journal_dir(backup, index)
    assert directory.parent == backup
    _journal(directory, "apply", index)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["backup"]
    assert find_journals(backup, index) == [directory]
    assert only_journal(backup, None) == directory


def test_index_lookup_matches_the_real_name_not_the_directory(tmp_path: Path) -> None:
    """--index NAME means the index: a directory called NAME holding another index's
    journal is not it, and the encoded directory of NAME is found by NAME only."""
    _journal(tmp_path / "a_idx", "apply", "something else")
    with pytest.raises(UsageError, match="for index 'a_idx'"):
        find_journals(tmp_path, "a_idx")
    _journal(journal_dir(tmp_path, "a/idx"), "apply", "a/idx")
    assert find_journals(tmp_path, "a/idx") == [journal_dir(tmp_path, "a/idx")]
    with pytest.raises(UsageError, match="for index"):
        find_journals(tmp_path, journal_dir(tmp_path, "a/idx").name)


def test_several_journals_are_listed_by_real_index_name(tmp_path: Path) -> None:
    """The 'several indexes' error names the indexes, not their directories."""
    _journal(journal_dir(tmp_path, "idx:a"), "apply", "idx:a")
    _journal(journal_dir(tmp_path, "idx:b"), "apply", "idx:b")
    with pytest.raises(UsageError, match=r"\(idx:a, idx:b\)"):
        only_journal(tmp_path, None)


def test_old_journal_named_after_the_index_is_still_found(tmp_path: Path) -> None:
    """A journal an earlier release wrote in <backup>/<exact index name>/ is found by that
    name, and journal_dir keeps pointing apply at it (so a re-run resumes it)."""
    _journal(tmp_path / "idx:docs", "apply", "idx:docs")
    assert journal_dir(tmp_path, "idx:docs") == tmp_path / "idx:docs"
    assert find_journals(tmp_path, "idx:docs") == [tmp_path / "idx:docs"]


@pytest.mark.parametrize("call", [journal_dir, find_journals, only_journal])
def test_empty_backup_dir_never_means_the_current_directory(call: Any) -> None:
    """--backup-dir '' is a UsageError before anything is read or written."""
    with pytest.raises(UsageError, match="--backup-dir is empty"):
        call("", "docs")


def test_damaged_journal_is_reported_not_taken_for_none(tmp_path: Path) -> None:
    """A journal whose first record is damaged makes resume/rollback/inspect say so."""
    _journal(tmp_path / "docs", "apply", "docs")
    log = tmp_path / "docs" / "journal.log"
    damaged = bytearray(log.read_bytes())
    damaged[12] ^= 0xFF
    log.write_bytes(bytes(damaged))
    for call in (lambda: find_journals(tmp_path), lambda: only_journal(tmp_path, "docs")):
        with pytest.raises(JournalCorruptError, match=r"damaged at byte 0 \(record 1"):
            call()


def test_backup_dir_may_be_a_symbolic_link(tmp_path: Path) -> None:
    """The backup dir is the user's choice: a link to it is used as given."""
    (tmp_path / "real").mkdir()
    _journal(journal_dir(tmp_path / "real", "docs"), "apply", "docs")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    assert find_journals(tmp_path / "link", "docs") == [tmp_path / "link" / "docs"]
    _journal(tmp_path / "direct", "apply", "x")
    (tmp_path / "direct-link").symlink_to(tmp_path / "direct")
    assert find_journals(tmp_path / "direct-link") == [tmp_path / "direct"]


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
