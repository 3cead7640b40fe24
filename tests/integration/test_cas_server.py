"""Compare-and-set writes on the real server, in both forms (WATCH/EXEC with HSETEX, and the
script): the same statuses, the same bytes, TTLs kept, and a write that races the
transaction is kept, never overwritten."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import redis

from ftctl.drivers import SyncDriver
from ftctl.errors import MigrationFailed
from ftctl.steps import cas, scripts
from ftctl.steps.effects import Session, Step

ORIGINAL, NEW, OTHER = b"original-bytes", b"new", b"someone-else"
KEYS = [b"cas:match", b"cas:already", b"cas:changed", b"cas:deleted", b"cas:skipped"]


def _load(r: redis.Redis) -> None:
    r.hset("cas:match", mapping={"vec": ORIGINAL, "other": "x"})
    r.hpexpire("cas:match", 600_000, "vec")
    r.pexpire("cas:match", 900_000)
    r.hset("cas:already", "vec", NEW)
    r.hset("cas:changed", "vec", OTHER)
    r.hset("cas:skipped", "vec", OTHER)


def _column() -> cas.Column:
    expected: list[bytes | None] = [ORIGINAL] * 4 + [None]
    return cas.Column("vec", expected, [NEW] * 5)


def test_the_server_has_hsetex(r: redis.Redis) -> None:
    """The embedded Redis 8 takes the WATCH/EXEC path; the probe answers from the server."""
    assert SyncDriver(r).run(cas.watch_supported()) is True


@pytest.mark.parametrize("watch", [True, False], ids=["watch-exec", "script"])
def test_both_forms_decide_and_write_alike(r: redis.Redis, watch: bool) -> None:
    _load(r)
    field_expiry = r.hpexpiretime("cas:match", "vec")
    key_ttl = r.pttl("cas:match")
    prepared = cas.prepare(KEYS, [_column()], force=False, batch_size=2, watch=watch)
    step = cas.compare_and_set(prepared)
    statuses = SyncDriver(r).run(step)
    assert statuses == [
        scripts.WRITTEN,
        scripts.ALREADY,
        scripts.CONFLICT,
        scripts.ABSENT,  # a deleted key is gone, not a conflict
        scripts.ABSENT,
    ]
    assert r.hgetall("cas:match") == {b"vec": NEW, b"other": b"x"}
    assert r.hpexpiretime("cas:match", "vec") == field_expiry
    assert 0 <= key_ttl - r.pttl("cas:match") < 60_000
    assert r.hget("cas:changed", "vec") == OTHER
    assert r.hget("cas:skipped", "vec") == OTHER
    assert not r.exists("cas:deleted")


@pytest.mark.parametrize("watch", [True, False], ids=["watch-exec", "script"])
def test_force_writes_over_anything(r: redis.Redis, watch: bool) -> None:
    _load(r)
    column = cas.Column("vec", [ORIGINAL] * 4, [NEW] * 4)
    prepared = cas.prepare(KEYS[:4], [column], force=True, batch_size=10, watch=watch)
    step = cas.compare_and_set(prepared)
    statuses = SyncDriver(r).run(step)
    assert statuses == [scripts.WRITTEN, scripts.ALREADY, scripts.WRITTEN, scripts.ABSENT]
    assert r.hget("cas:changed", "vec") == NEW
    assert not r.exists("cas:deleted")  # force never recreates a deleted document


def _after_first_round_trip(step: Step[Any], action: Callable[[], None]) -> Step[Any]:
    """``step``, with ``action`` run (on another connection) once its first reply is in."""
    reply: object = None
    rounds = 0
    while True:
        try:
            effect = step.send(reply)
        except StopIteration as done:
            return done.value
        reply = yield effect
        rounds += 1
        if rounds == 1:
            action()


def test_a_write_between_read_and_exec_is_kept(redis_url: str, r: redis.Redis) -> None:
    """Another client rewrites a watched key after the group was read: EXEC fails, the group
    is read again, the changed key becomes a conflict with its newer bytes kept, and the
    rest of the group is written."""
    for key in KEYS[:3]:
        r.hset(key, "vec", ORIGINAL)
    other = redis.Redis.from_url(redis_url)

    def race() -> None:
        other.hset("cas:already", "vec", OTHER)

    column = cas.Column("vec", [ORIGINAL] * 3, [NEW] * 3)
    prepared = cas.prepare(KEYS[:3], [column], force=False, batch_size=10, watch=True)
    inner = cas.watched_writes(prepared)
    written = SyncDriver(r).run(_session(_after_first_round_trip(inner, race)))
    assert written.statuses == [scripts.WRITTEN, scripts.CONFLICT, scripts.WRITTEN]
    assert written.counts() == {"cas_retries": 1}
    assert r.hget("cas:already", "vec") == OTHER
    assert r.hget("cas:match", "vec") == NEW
    other.close()


def _session(step: Step[Any]) -> Step[Any]:
    value = yield Session(step)
    return value


@pytest.mark.parametrize("watch", [True, False], ids=["watch-exec", "script"])
def test_two_fields_are_written_together_or_not_at_all(r: redis.Redis, watch: bool) -> None:
    """Per key, every field must match for any to be written; a field already converted is
    left as it is while the other is written."""
    r.hset("two:half", mapping={"a": NEW, "b": ORIGINAL})
    r.hset("two:clash", mapping={"a": ORIGINAL, "b": OTHER})
    keys = [b"two:half", b"two:clash"]
    columns = [cas.Column(f, [ORIGINAL] * 2, [NEW] * 2) for f in ("a", "b")]
    prepared = cas.prepare(keys, columns, force=False, batch_size=10, watch=watch)
    assert SyncDriver(r).run(cas.compare_and_set(prepared)) == [scripts.WRITTEN, scripts.CONFLICT]
    assert r.hgetall("two:half") == {b"a": NEW, b"b": NEW}
    assert r.hgetall("two:clash") == {b"a": ORIGINAL, b"b": OTHER}


@pytest.mark.parametrize("watch", [True, False], ids=["watch-exec", "script"])
def test_a_server_out_of_memory_fails_the_write_and_changes_nothing(
    r: redis.Redis, watch: bool
) -> None:
    _load(r)
    prepared = cas.prepare(KEYS, [_column()], force=False, batch_size=10, watch=watch)
    r.config_set("maxmemory", 1)
    try:
        with pytest.raises(MigrationFailed, match="maxmemory"):
            SyncDriver(r).run(cas.compare_and_set(prepared))
    finally:
        r.config_set("maxmemory", 0)
    assert r.hget("cas:match", "vec") == ORIGINAL
