"""TTLs survive every rewrite and rename, forward and back."""

from __future__ import annotations

from pathlib import Path

import redis
from helpers import RUNNERS, patch, plan, run_apply, snapshot, source

from ftctl.executor import rollback

FIELD_TTL_MS = 4_102_444_800_000  # 2100-01-01, absolute: stable across the test
KEY_TTL_MS = 4_102_444_900_000


def _field_ttls(r: redis.Redis, key: str, *fields: str) -> list[int]:
    return list(r.execute_command("HPEXPIRETIME", key, "FIELDS", len(fields), *fields))


def test_field_and_key_ttls_survive_migration_and_rollback(
    r: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    """HPEXPIRETIME of a renamed text field and a re-encoded vector field, and PEXPIRETIME of
    keys, are unchanged under the new field and key names, and again after rollback."""
    source(r, "hash")
    r.execute_command("HPEXPIREAT", "doc:1", FIELD_TTL_MS, "FIELDS", 2, "title", "emb")
    r.execute_command("HPEXPIREAT", "doc:3", FIELD_TTL_MS + 1, "FIELDS", 1, "price")
    r.execute_command("PEXPIREAT", "doc:2", KEY_TTL_MS)
    r.execute_command("PEXPIREAT", "doc:1", KEY_TTL_MS + 1)
    made = plan(
        redis_url,
        patch(
            rename_fields=[{"old_name": "title", "new_name": "headline"}],
            index={"prefix": "item:"},
            update_fields=[{"name": "emb", "attrs": {"datatype": "bfloat16"}}],
        ),
    )
    before = snapshot(r)

    report = run_apply(RUNNERS[1], made, redis_url=redis_url, backup_dir=tmp_path)

    assert report.result == "succeeded", (report.error, report.validation.checks)
    assert _field_ttls(r, "item:1", "headline", "emb", "price") == [FIELD_TTL_MS] * 2 + [-1]
    assert _field_ttls(r, "item:3", "price", "headline") == [FIELD_TTL_MS + 1, -1]
    assert _field_ttls(r, "item:2", "headline", "emb") == [-1, -1]
    assert r.execute_command("PEXPIRETIME", "item:2") == KEY_TTL_MS
    assert r.execute_command("PEXPIRETIME", "item:1") == KEY_TTL_MS + 1
    assert r.exists("doc:1", "doc:2", "doc:3") == 0

    undone = rollback(tmp_path, redis_url=redis_url, num_workers=2)

    assert undone.result == "rolled_back", (undone.error, undone.validation.checks)
    assert _field_ttls(r, "doc:1", "title", "emb", "price") == [FIELD_TTL_MS] * 2 + [-1]
    assert _field_ttls(r, "doc:3", "price", "title") == [FIELD_TTL_MS + 1, -1]
    assert r.execute_command("PEXPIRETIME", "doc:2") == KEY_TTL_MS
    assert snapshot(r) == before


def test_schema_history_follows_the_index(r: redis.Redis, redis_url: str, tmp_path: Path) -> None:
    """A migration records the target schema under ftctl:schema:<target> and forgets the old
    name; rollback records the source schema again and forgets the target's."""
    from ftctl.steps.history import decode_history

    source(r, "hash")
    made = plan(redis_url, patch(index={"name": "catalog"}))
    report = run_apply(RUNNERS[0], made, redis_url=redis_url, backup_dir=tmp_path)
    assert report.result == "succeeded", report.error
    recorded = decode_history(r.get("ftctl:schema:catalog"))
    assert recorded is not None and recorded.name == "catalog"
    assert r.get(f"ftctl:schema:{made.source.index_name}") is None

    assert rollback(tmp_path, redis_url=redis_url).result == "rolled_back"
    restored = decode_history(r.get(f"ftctl:schema:{made.source.index_name}"))
    assert restored is not None and restored.name == made.source.index_name
    assert r.get("ftctl:schema:catalog") is None
