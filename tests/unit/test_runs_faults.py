"""Fault injection of the crash suites (``FTCTL_FAULT`` + ``FTCTL_FAULT_RAISE``), no server."""

from __future__ import annotations

from pathlib import Path

import pytest
import structlog

from ftctl.errors import ConnectionFailed, MigrationFailed, UsageError
from ftctl.journal import Journal, RunStarted
from ftctl.journal.events import BatchDone, CheckFailed, CheckPassed, StepStarted, event_tag
from ftctl.plan.codecs import CodecError
from ftctl.runs import FAULT_ENV, FAULT_RAISE_ENV, JournalTap


def _tap(directory: Path) -> JournalTap:
    first = RunStarted(
        run_id="r", kind="apply", index_name="i", plan_yaml="", plan_sha256="x", mode="online"
    )
    return JournalTap(Journal.create(directory, first=first), structlog.get_logger("test"))


def _tags(tap: JournalTap) -> list[str]:
    return [event_tag(e) for e in tap.journal.events()]


BATCH_1 = BatchDone(step="quantize", batch=1, keys=3)


@pytest.mark.parametrize(
    ("kind", "error"),
    [
        ("codec", CodecError),
        ("oom", MigrationFailed),
        ("connection", ConnectionFailed),
        ("timeout", MigrationFailed),
    ],
)
def test_raise_before_an_event_fails_without_appending_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str, error: type[Exception]
) -> None:
    """``before:`` with a raise kind raises that kind's error (naming the injection) instead
    of a signal, and the event is not journaled; other events pass untouched."""
    monkeypatch.setenv(FAULT_ENV, "before:batch_done:quantize:1")
    monkeypatch.setenv(FAULT_RAISE_ENV, kind)
    tap = _tap(tmp_path)
    tap.append([StepStarted(step="quantize"), BatchDone(step="quantize", batch=0, keys=3)])
    with pytest.raises(error, match=f"injected by {FAULT_RAISE_ENV}={kind}"):
        tap.append([BATCH_1])
    assert _tags(tap) == ["run_started", "step_started", "batch_done"]
    if kind == "oom":
        with pytest.raises(MigrationFailed, match="OOM command not allowed"):
            tap.append([BATCH_1])


def test_raise_after_an_event_journals_it_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``after:`` raises once the event is on disk (the batch counts as done on resume)."""
    monkeypatch.setenv(FAULT_ENV, "after:batch_done:quantize:1")
    monkeypatch.setenv(FAULT_RAISE_ENV, "timeout")
    tap = _tap(tmp_path)
    with pytest.raises(MigrationFailed, match="timeout waiting for index ready"):
        tap.append([BATCH_1])
    assert _tags(tap) == ["run_started", "batch_done"]


@pytest.mark.parametrize("phase", ["before", "after"])
def test_validation_kind_records_a_failed_check_beside_the_event(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, phase: str
) -> None:
    """``validation`` raises nothing: a failed check is journaled before or after the event
    and returned with it, so the run's state folds it and the run ends ``failed``."""
    monkeypatch.setenv(FAULT_ENV, f"{phase}:batch_done:quantize:1")
    monkeypatch.setenv(FAULT_RAISE_ENV, "validation")
    tap = _tap(tmp_path)
    stamped = tap.append([BATCH_1])
    tags = ["check_failed", "batch_done"] if phase == "before" else ["batch_done", "check_failed"]
    assert [event_tag(e) for e in stamped] == tags
    assert _tags(tap) == ["run_started", *tags]
    failed = next(e for e in stamped if isinstance(e, CheckFailed))
    assert failed.check == "injected" and failed.count == 1
    assert [e.seq for e in stamped] == [2, 3]


@pytest.mark.parametrize("phase", ["before", "after"])
def test_verification_kind_records_a_failed_check_then_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, phase: str
) -> None:
    """``verification`` journals the failed check, then raises MigrationFailed as a shadow
    that fails verification does (``before``: the event itself is never journaled)."""
    monkeypatch.setenv(FAULT_ENV, f"{phase}:batch_done:quantize:1")
    monkeypatch.setenv(FAULT_RAISE_ENV, "verification")
    tap = _tap(tmp_path)
    with pytest.raises(MigrationFailed, match="verification failed: injected"):
        tap.append([BATCH_1])
    tags = ["check_failed"] if phase == "before" else ["batch_done", "check_failed"]
    assert _tags(tap) == ["run_started", *tags]


def test_a_failed_check_takes_the_name_of_the_check_it_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At a passed check, ``validation`` fails that very check (the latest result of a check
    is the one that counts), as a real failure of it would."""
    monkeypatch.setenv(FAULT_ENV, "after:check_passed:validate")
    monkeypatch.setenv(FAULT_RAISE_ENV, "validation")
    tap = _tap(tmp_path)
    tap.append([StepStarted(step="validate")])
    stamped = tap.append([CheckPassed(check="doc_count"), CheckPassed(check="knn")])
    failed = stamped[-1]
    assert isinstance(failed, CheckFailed) and failed.check == "doc_count"


def test_unknown_raise_kind_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A misspelt kind fails loudly at the fault point instead of silently doing nothing."""
    monkeypatch.setenv(FAULT_ENV, "before:batch_done:quantize:1")
    monkeypatch.setenv(FAULT_RAISE_ENV, "oops")
    tap = _tap(tmp_path)
    with pytest.raises(UsageError, match="not a failure kind"):
        tap.append([BATCH_1])


def test_no_fault_no_injection(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A raise kind without a matching fault point changes nothing."""
    monkeypatch.delenv(FAULT_ENV, raising=False)
    monkeypatch.setenv(FAULT_RAISE_ENV, "codec")
    tap = _tap(tmp_path)
    assert [event_tag(e) for e in tap.append([BATCH_1])] == ["batch_done"]
