"""Writes by others during a migration are detected, kept, and reported, never overwritten."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import redis
from helpers import DIMS, DOCS, RUNNERS, patch, plan, run_apply, snapshot, source

from ftctl.executor import rollback
from ftctl.journal import CheckFailed, CheckPassed, Journal
from ftctl.plan.codecs import convert_many

KEY = b"doc:7"
NEWER = np.full(DIMS, 0.5, dtype=np.float32).tobytes()


@pytest.mark.parametrize("runner", [RUNNERS[1], RUNNERS[3]])
def test_vector_written_after_backup_survives_and_is_reported(
    r: redis.Redis, redis_url: str, tmp_path: Path, runner: str
) -> None:
    """A vector rewritten after its backup keeps the newer bytes; every other vector is
    converted; the report fails with concurrent_writes == 1 and names the key. Rollback does
    not overwrite it either (without force) and says so."""
    source(r, "hash")
    made = plan(redis_url, patch(update_fields=[{"name": "emb", "attrs": {"datatype": "float16"}}]))
    before = snapshot(r)
    wrote: list[str] = []

    def write_once_backed_up(step: str, done: int, total: int) -> None:
        if step == "backup" and done == total and not wrote:
            r.hset(KEY, "emb", NEWER)
            wrote.append(step)

    report = run_apply(
        runner,
        made,
        redis_url=redis_url,
        backup_dir=tmp_path,
        progress_callback=write_once_backed_up,
    )

    assert wrote == ["backup"]
    assert report.result == "failed"
    assert report.validation.concurrent_writes == 1
    assert report.conflicts == 1 and report.conflict_sample == [KEY.decode()]
    assert "concurrent_writes" in report.error
    assert report.manual_actions
    assert r.hget(KEY, "emb") == NEWER
    for key, (_, fields, _) in before.items():
        if key != KEY:
            assert (
                r.hget(key, "emb") == convert_many([fields[b"emb"]], "float32", "float16", DIMS)[0]
            )

    undone = rollback(tmp_path, redis_url=redis_url)
    assert undone.result == "failed"
    assert undone.conflict_sample == [KEY.decode()]
    assert r.hget(KEY, "emb") == NEWER
    after = snapshot(r)
    assert {k: v for k, v in after.items() if k != KEY} == {
        k: v for k, v in before.items() if k != KEY
    }
    assert len(after) == DOCS


def test_a_key_deleted_after_its_rewrite_fails_the_document_checks(
    r: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    """The document checks run while the index builds (journaled in the wait step) and
    still decide the run: a key deleted after quantize fails keys_exist and the run."""
    source(r, "hash")
    made = plan(redis_url, patch(update_fields=[{"name": "emb", "attrs": {"datatype": "float16"}}]))
    deleted: list[str] = []

    def delete_once_rewritten(step: str, done: int, total: int) -> None:
        if step == "quantize" and done == total and not deleted:
            r.delete(KEY)
            deleted.append(step)

    report = run_apply(
        RUNNERS[1], made, redis_url=redis_url, backup_dir=tmp_path,
        progress_callback=delete_once_rewritten,
    )  # fmt: skip
    assert deleted == ["quantize"]
    assert report.result == "failed"
    assert report.validation.keys_exist is False
    events = Journal.read(tmp_path / made.source.index_name)
    in_wait, step = [], None
    for event in events:
        step = getattr(event, "step", step)
        if isinstance(event, CheckPassed | CheckFailed) and step == "wait":
            in_wait.append(event.check)
    assert in_wait == ["keys_exist", "vector_bytes"]
