"""Enumeration on the real server: cursor pages read two per round trip, to the last key."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis
from helpers import patch, plan, source

from ftctl.drivers import SyncDriver
from ftctl.journal import Journal, RunStarted
from ftctl.journal.events import KeysEnumerated
from ftctl.steps import enumerate as enumeration
from ftctl.steps.spec import run_spec


@pytest.mark.parametrize("count", [60, 61, 70, 80])
def test_every_key_once_whatever_the_page_count(
    r: redis.Redis, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, count: int
) -> None:
    """Pages of 10 keys: odd and even page counts, a last page that is full or short; the
    read sent past the cursor's end is ignored and nothing is missed or repeated."""
    source(r, "hash", count=count)
    made = plan(redis_url, patch(update_fields=[{"name": "emb", "attrs": {"datatype": "float16"}}]))
    monkeypatch.setattr(enumeration, "PAGE_SIZE", 10)
    spec = run_spec(made, batch_size=10)
    first = RunStarted(
        run_id="r", kind="apply", index_name="i", plan_yaml="", plan_sha256="x", mode="m"
    )
    journal = Journal.create(tmp_path / "j", first=first)
    driver = SyncDriver(redis.Redis.from_url(redis_url, protocol=2), journal)
    assert driver.run(enumeration.enumerate_keys(spec)).keys == count
    enumerated = [e for e in journal.events() if isinstance(e, KeysEnumerated)]
    keys = [k for e in enumerated for k in journal.read_segment(e.segment).keys]
    assert sorted(keys) == sorted(r.keys("doc:*"))
    journal.close()
