"""A run that failed its validation checks again when it is run again.

The report of a run that failed says to re-run the same command; a check that failed once
(a count read while a writer was busy, a key someone has since put back) must be checked
again then, not reported failed from the journal forever.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import redis
from helpers import patch, plan, snapshot, source

from ftctl.executor import MigrationExecutor, rollback
from ftctl.runs import FAULT_ENV, FAULT_RAISE_ENV

RENAME = {"rename_fields": [{"old_name": "title", "new_name": "headline"}]}


def test_apply_that_failed_validation_validates_again_when_rerun(
    r: redis.Redis, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An apply whose validate step recorded a failed check ends failed; re-running the same
    apply checks again and, the data being right, succeeds."""
    source(r)
    made = plan(redis_url, patch(**RENAME))
    monkeypatch.setenv(FAULT_ENV, "after:check_passed:validate")
    monkeypatch.setenv(FAULT_RAISE_ENV, "validation")
    failed = MigrationExecutor().apply(made, client=r, backup_dir=tmp_path)
    assert failed.result == "failed", failed.error
    monkeypatch.delenv(FAULT_ENV)

    again = MigrationExecutor().apply(made, client=r, backup_dir=tmp_path)

    assert again.result == "succeeded", again.error
    assert again.validation.checks and all(c.passed for c in again.validation.checks)


def test_rollback_that_failed_validation_validates_again_when_rerun(
    r: redis.Redis, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rollback whose validation of the source recorded a failed check ends failed;
    re-running the rollback, as its report says, checks again and ends rolled_back."""
    source(r)
    before = snapshot(r)
    made = plan(redis_url, patch(**RENAME))
    assert MigrationExecutor().apply(made, client=r, backup_dir=tmp_path).result == "succeeded"
    monkeypatch.setenv(FAULT_ENV, "after:check_passed:validate_source")
    monkeypatch.setenv(FAULT_RAISE_ENV, "validation")
    failed = rollback(tmp_path, client=r)
    assert failed.result == "failed", failed.error
    monkeypatch.delenv(FAULT_ENV)

    again = rollback(tmp_path, client=r)

    assert again.result == "rolled_back", again.error
    assert snapshot(r) == before
