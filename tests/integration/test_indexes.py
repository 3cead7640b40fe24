"""``ftctl.indexes``: index management as library calls, on the real server."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis
from helpers import patch, plan, source

from ftctl import indexes
from ftctl.errors import RefusedError, UsageError
from ftctl.executor import MigrationExecutor
from ftctl.schema.model import TextField, load_schema
from ftctl.validator import MigrationValidator

SCHEMA = """
index: {name: notes, prefix: "note:", storage_type: hash, key_separator: "|"}
fields:
  - {name: title, type: text, attrs: {phonetic_matcher: "dm:en", sortable: true}}
  - {name: tags, type: tag}
"""


@pytest.fixture
def schema_file(tmp_path: Path) -> Path:
    """A RedisVL schema YAML with options FT.INFO does not report (phonetic, separator)."""
    path = tmp_path / "notes.yaml"
    path.write_text(SCHEMA)
    return path


def test_create_list_info_delete_by_url(r: redis.Redis, redis_url: str, schema_file: Path) -> None:
    """create_index from a file records schema history; list_indexes and index_info see the
    index; delete_index drops it, forgets the history and keeps the documents."""
    created = indexes.create_index(schema_file, redis_url=redis_url)
    assert created.name == "notes"
    assert b"dm:en" in (r.get("ftctl:schema:notes") or b"")
    r.hset("note:1", mapping={"title": "hello", "tags": "a"})
    assert indexes.list_indexes(redis_url=redis_url) == ["notes"]
    info = indexes.index_info("notes", redis_url=redis_url)
    assert info.index_name == "notes" and info.schema.prefixes == ["note:"]
    assert info.stats.num_docs == 1
    indexes.delete_index("notes", redis_url=redis_url)
    assert indexes.list_indexes(redis_url=redis_url) == []
    assert r.get("ftctl:schema:notes") is None
    assert r.hget("note:1", "title") == b"hello"


def test_callers_client_is_used_and_left_open(r: redis.Redis, schema_file: Path) -> None:
    """redis_client= (RedisVL's name) runs every call on the caller's client and never
    closes it; a schema object works as well as a file."""
    schema = load_schema(schema_file)
    assert indexes.create_index(schema, redis_client=r) is schema
    assert indexes.list_indexes(redis_client=r) == ["notes"]
    assert indexes.index_info("notes", redis_client=r).schema.name == "notes"
    indexes.delete_index("notes", redis_client=r)
    assert r.ping()


def test_refusals_change_nothing(r: redis.Redis, schema_file: Path) -> None:
    """A taken name, an alias to delete and an unknown index are refused before any change."""
    indexes.create_index(schema_file, redis_client=r)
    with pytest.raises(RefusedError, match="already exists"):
        indexes.create_index(schema_file, redis_client=r)
    r.execute_command("FT.ALIASADD", "current", "notes")
    with pytest.raises(RefusedError, match="alias"):
        indexes.delete_index("current", redis_client=r)
    with pytest.raises(UsageError, match="does not exist"):
        indexes.index_info("nope", redis_client=r)
    with pytest.raises(UsageError, match="does not exist"):
        indexes.delete_index("nope", redis_client=r)
    assert indexes.list_indexes(redis_client=r) == ["notes"]


def test_source_schema_restores_what_ft_info_does_not_report(
    r: redis.Redis, redis_url: str, schema_file: Path
) -> None:
    """source_schema (what the wizard shows) resolves an alias and restores the options
    FT.INFO does not report from the schema history, as the planner does."""
    indexes.create_index(schema_file, redis_url=redis_url)
    r.execute_command("FT.ALIASADD", "current", "notes")
    live = indexes.index_info("notes", redis_url=redis_url).schema
    assert live.unreported
    restored = indexes.source_schema("current", redis_url=redis_url)
    assert restored.name == "notes" and not restored.unreported
    assert restored.index.key_separator == "|"
    title = restored.field("title")
    assert isinstance(title, TextField) and title.attrs.phonetic_matcher == "dm:en"


def test_source_schema_without_history_is_the_live_one(r: redis.Redis, redis_url: str) -> None:
    """An index ftctl did not create has no history: source_schema is FT.INFO's schema."""
    r.execute_command("FT.CREATE", "plain", "PREFIX", "1", "p:", "SCHEMA", "t", "TEXT")
    assert indexes.source_schema("plain", redis_url=redis_url) == (
        indexes.index_info("plain", redis_url=redis_url).schema
    )


def test_executor_and_validator_take_redis_client(
    r: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    """apply, rollback and validate accept the caller's client as redis_client= (RedisVL's
    name) as well as client=; two different clients are refused before anything runs."""
    source(r, "hash")
    made = plan(redis_url, patch(update_fields=[{"name": "emb", "attrs": {"datatype": "float16"}}]))
    other = redis.Redis.from_url(redis_url)
    try:
        with pytest.raises(UsageError, match="two different clients"):
            MigrationExecutor().apply(
                made, redis_client=r, client=other, backup_dir=tmp_path, accept_data_loss=True
            )
    finally:
        other.close()
    assert not any(tmp_path.iterdir())
    report = MigrationExecutor().apply(
        made, redis_client=r, backup_dir=tmp_path, accept_data_loss=True
    )
    assert report.result == "succeeded"
    assert MigrationValidator().validate(made, redis_client=r).result == "succeeded"
    assert MigrationExecutor().rollback(tmp_path, client=r).result == "rolled_back"
    assert r.ping()
