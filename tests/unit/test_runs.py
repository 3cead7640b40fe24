"""Run helpers that need no server: where journals go and how they are found, whether
a journal was rolled back, and the journal tap's progress (callbacks, rate/ETA, periodic
lines) and log lines."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ftctl.errors import JournalCorruptError, JournalLockedError, UsageError
from ftctl.journal import Journal, RunStarted
from ftctl.journal.events import (
    AnyEvent,
    BatchDone,
    BatchRunStarted,
    RunFinished,
    RunKind,
    StepFinished,
    StepSkipped,
    StepStarted,
)
from ftctl.logs import PROGRESS_LOGGER, get_logger
from ftctl.plan.models import load_plan
from ftctl.runs import (
    PROGRESS_INTERVAL,
    PROGRESS_INTERVAL_ENV,
    JournalTap,
    Options,
    Run,
    find_journals,
    journal_dir,
    only_journal,
    open_existing,
    progress_interval,
    rolled_back,
    run_started,
)
from ftctl.steps.effects import Progress

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


# --- the journal tap: progress, rate/ETA, log lines ------------------------------------------


class _Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> _Clock:
    fake = _Clock()
    monkeypatch.setattr("ftctl.runs.time.monotonic", fake)
    return fake


@pytest.fixture
def tap_of(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> Iterator[Callable[..., tuple[JournalTap, list[tuple[str, int, int]]]]]:
    """A tap on a real journal, with its progress calls collected and ftctl's info logged."""
    caplog.set_level(logging.INFO, logger="ftctl")
    journals: list[Journal] = []

    def make(**options: Any) -> tuple[JournalTap, list[tuple[str, int, int]]]:
        _journal(tmp_path / f"j{len(journals)}", "apply", "docs")
        journal = Journal.open(tmp_path / f"j{len(journals)}")
        journals.append(journal)
        calls: list[tuple[str, int, int]] = []
        tap = JournalTap(
            journal,
            get_logger("ftctl.run"),
            progress=lambda *call: calls.append(call),
            **options,
        )
        return tap, calls

    yield make
    for journal in journals:
        journal.close()


def _progress_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [r.__dict__ for r in caplog.records if r.name == PROGRESS_LOGGER]


def test_progress_lines_come_every_interval_with_rate_and_eta(
    tap_of: Any, clock: _Clock, caplog: pytest.LogCaptureFixture
) -> None:
    """Batches call back at once; a ``progress`` line (done, total, rate, ETA) comes only
    once ``interval`` seconds have passed since the step started or the last line."""
    tap, calls = tap_of(total=10_000, interval=5.0)
    tap.append([StepStarted(step="quantize")])
    for batch in range(4):
        clock.now += 2.0
        tap.append([BatchDone(step="quantize", batch=batch, keys=500)])
    assert calls == [("quantize", 500 * n, 10_000) for n in range(1, 5)]
    lines = _progress_lines(caplog)
    assert [line["done"] for line in lines] == [1_500]  # at 6 s; the next would be at 11 s
    (line,) = lines
    assert line["step"] == "quantize" and line["total"] == 10_000
    assert line["rate"] == 250.0 and line["eta_s"] == 34.0 and line["percent"] == 15.0


def test_a_resumed_step_counts_on_from_the_journal(
    tap_of: Any, clock: _Clock, caplog: pytest.LogCaptureFixture
) -> None:
    """A step resumed with 6,000 of 10,000 done by an earlier run reports 6,500 after its
    first batch, and a rate made of this run's 500 documents only."""
    tap, calls = tap_of(total=10_000, interval=0.0, baseline={"quantize": 6_000})
    tap.append([StepStarted(step="quantize")])
    clock.now += 1.0
    tap.append([BatchDone(step="quantize", batch=12, keys=500)])
    assert calls == [("quantize", 6_500, 10_000)]
    (line,) = _progress_lines(caplog)
    assert line["rate"] == 500.0 and line["eta_s"] == 7.0


def test_a_tick_at_the_steps_start_shows_no_rate(
    tap_of: Any, clock: _Clock, caplog: pytest.LogCaptureFixture
) -> None:
    """Work reported microseconds after the step started gives no rate (not millions/s)."""
    tap, _ = tap_of(total=50_000, interval=0.0)
    tap.append([StepStarted(step="backup")])
    clock.now += 1e-6
    tap.append([BatchDone(step="backup", batch=0, keys=500)])
    (line,) = _progress_lines(caplog)
    assert line["rate"] is None and line["eta_s"] is None


def test_polled_progress_sets_or_advances_the_count(
    tap_of: Any, clock: _Clock, caplog: pytest.LogCaptureFixture
) -> None:
    """A Progress effect with ``done`` (the index build's num_docs) sets the running step's
    count and adds its detail (percent_indexed) to the line; ``advance`` adds to it."""
    tap, calls = tap_of(total=1_000, interval=0.0)
    tap.append([StepStarted(step="wait")])
    clock.now += 2.0
    tap.report(Progress(done=400, detail={"percent_indexed": 0.4}))
    clock.now += 1.0
    tap.report(Progress(advance=100))
    assert calls == [("wait", 400, 1_000), ("wait", 500, 1_000)]
    first, second = _progress_lines(caplog)
    assert first["percent_indexed"] == 0.4 and first["rate"] == 200.0
    assert second["done"] == 500 and second["eta_s"] == 3.0


def test_enumeration_sets_the_total_later_steps_count_towards(tap_of: Any, clock: _Clock) -> None:
    """The plan's document count stands in until enumerate has counted the keys."""
    tap, calls = tap_of(total=100, interval=60.0)
    tap.append([StepStarted(step="enumerate")])
    tap.append([StepFinished(step="enumerate", counts={"keys": 120})])
    tap.append([StepStarted(step="wait")])
    tap.report(Progress(done=60))
    assert calls == [("wait", 60, 120)]


def test_step_finished_says_how_long_and_how_fast(
    tap_of: Any, clock: _Clock, caplog: pytest.LogCaptureFixture
) -> None:
    """``step finished`` carries the step's counts, its seconds and its documents per second;
    compare-and-set retries of a batch are a line of their own."""
    tap, _ = tap_of(total=1_000, interval=60.0)
    tap.append([StepStarted(step="quantize")])
    clock.now += 4.0
    tap.append([BatchDone(step="quantize", batch=0, keys=1_000, counts={"cas_retries": 2})])
    tap.append([StepFinished(step="quantize", counts={"batches": 1})])
    by_event = {r.getMessage(): r.__dict__ for r in caplog.records}
    finished = by_event["step finished"]
    assert finished["batches"] == 1 and finished["seconds"] == 4.0 and finished["rate"] == 250.0
    retried = by_event["compare-and-set retried"]
    assert (retried["retries"], retried["script_fallbacks"], retried["batch"]) == (2, 0, 0)


def test_progress_interval_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """FTCTL_PROGRESS_INTERVAL sets the seconds between progress lines; garbage or nothing
    leaves the default."""
    monkeypatch.setenv(PROGRESS_INTERVAL_ENV, "0.25")
    assert progress_interval() == 0.25
    monkeypatch.setenv(PROGRESS_INTERVAL_ENV, "soon")
    assert progress_interval() == PROGRESS_INTERVAL
    monkeypatch.delenv(PROGRESS_INTERVAL_ENV)
    assert progress_interval() == PROGRESS_INTERVAL


def test_a_locked_journal_is_logged_and_refused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A second process on the same backup dir is refused, with a warning naming the dir
    (the journal lock's holder is in the message)."""
    _journal(tmp_path / "docs", "apply", "docs")
    held = Journal.open(tmp_path / "docs")
    try:
        with pytest.raises(JournalLockedError):
            open_existing(tmp_path / "docs", "rollback", "redis://localhost", Options())
    finally:
        held.close()
    (record,) = [r for r in caplog.records if r.getMessage() == "journal locked"]
    assert record.levelno == logging.WARNING and record.__dict__["index"] == "docs"
    assert "in use by another ftctl process" in record.__dict__["error"]
