"""The connections a run opens itself speak RESP2; a caller's client keeps its protocol."""

from __future__ import annotations

from pathlib import Path

import redis
from helpers import patch, plan, source

from ftctl.executor import MigrationExecutor


def _ids(r: redis.Redis) -> set[int]:
    return {int(entry["id"]) for entry in r.client_list()}


def _protocols_seen(r: redis.Redis, into: set[str], before: set[int]) -> None:
    """RESP versions of the connections opened since ``before`` was taken."""
    for entry in r.client_list():
        if int(entry["id"]) not in before:
            into.add(str(entry.get("resp", "")))


def test_run_opened_from_a_url_uses_resp2(r: redis.Redis, redis_url: str, tmp_path: Path) -> None:
    """apply(redis_url=...) talks RESP2 (bulk replies parse faster) while it runs."""
    source(r, "hash")
    seen: set[str] = set()
    made = plan(redis_url, patch(update_fields=[{"name": "emb", "attrs": {"datatype": "float16"}}]))
    before = _ids(r)
    report = MigrationExecutor().apply(
        made,
        redis_url=redis_url,
        backup_dir=tmp_path,
        accept_data_loss=True,
        progress_callback=lambda *_: _protocols_seen(r, seen, before),
    )
    assert report.result == "succeeded"
    assert seen == {"2"}


def test_callers_client_keeps_its_protocol(r: redis.Redis, redis_url: str, tmp_path: Path) -> None:
    """apply(client=...) uses the caller's RESP3 client as it is."""
    source(r, "hash")
    seen: set[str] = set()
    made = plan(redis_url, patch(update_fields=[{"name": "emb", "attrs": {"datatype": "float16"}}]))
    before = _ids(r)
    caller = redis.Redis.from_url(redis_url, protocol=3)
    try:
        report = MigrationExecutor().apply(
            made,
            client=caller,
            backup_dir=tmp_path,
            accept_data_loss=True,
            progress_callback=lambda *_: _protocols_seen(r, seen, before),
        )
    finally:
        caller.close()
    assert report.result == "succeeded"
    assert seen == {"3"}
