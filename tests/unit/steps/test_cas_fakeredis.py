"""Compare-and-set on fakeredis, in both forms (WATCH/EXEC and the script), through the real
sync driver: the same decisions and bytes, and real WATCH semantics against a second client.

Whether the WATCH/EXEC form keeps a field's TTL (HSETEX KEEPTTL) is checked on the real
server only (tests/integration/test_cas_server.py): fakeredis drops the TTL there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fakestore import FakeStore

from ftctl.steps import cas, scripts
from ftctl.steps.effects import Packed, Session, Step

ORIGINAL, NEW, OTHER = b"original-bytes", b"new", b"someone-else"
KEYS = [b"cas:match", b"cas:already", b"cas:changed", b"cas:deleted", b"cas:skipped"]
HOUR_MS = 3_600_000
FORMS = pytest.mark.parametrize("watch", [True, False], ids=["watch-exec", "script"])


def _load(store: FakeStore) -> None:
    store.r.hset("cas:match", mapping={"vec": ORIGINAL, "other": "x"})
    store.r.hset("cas:already", "vec", NEW)
    store.r.hset("cas:changed", "vec", OTHER)
    store.r.hset("cas:skipped", "vec", OTHER)


def _column() -> cas.Column:
    expected: list[bytes | None] = [ORIGINAL] * 4 + [None]
    return cas.Column("vec", expected, [NEW] * 5)


@FORMS
def test_both_forms_decide_and_write_alike(store: FakeStore, watch: bool) -> None:
    """Written where the original is still there, already where the new bytes are, conflict
    where someone else's bytes are, absent where the key is gone (not recreated) or nothing
    was expected; only the first key changes."""
    _load(store)
    store.r.pexpire("cas:match", HOUR_MS)
    expiry = store.r.pexpiretime("cas:match")
    prepared = cas.prepare(KEYS, [_column()], force=False, batch_size=2, watch=watch)

    statuses = store.run(cas.compare_and_set(prepared))

    assert statuses == [
        scripts.WRITTEN,
        scripts.ALREADY,
        scripts.CONFLICT,
        scripts.ABSENT,
        scripts.ABSENT,
    ]
    assert store.r.hgetall("cas:match") == {b"vec": NEW, b"other": b"x"}
    assert store.r.pexpiretime("cas:match") == expiry
    assert store.r.hget("cas:changed", "vec") == OTHER
    assert store.r.hget("cas:skipped", "vec") == OTHER
    assert not store.r.exists("cas:deleted")


@FORMS
def test_force_writes_over_anything(store: FakeStore, watch: bool) -> None:
    """With force (rollback --force), other bytes are written too; a deleted key is never
    recreated (it would be a document with only that field)."""
    _load(store)
    column = cas.Column("vec", [ORIGINAL] * 4, [NEW] * 4)
    prepared = cas.prepare(KEYS[:4], [column], force=True, batch_size=10, watch=watch)
    statuses = store.run(cas.compare_and_set(prepared))
    assert statuses == [scripts.WRITTEN, scripts.ALREADY, scripts.WRITTEN, scripts.ABSENT]
    assert [store.r.hget(k, "vec") for k in KEYS[:3]] == [NEW] * 3
    assert not store.r.exists(KEYS[3])


@FORMS
def test_two_fields_are_written_together_or_not_at_all(store: FakeStore, watch: bool) -> None:
    """Per key, every field must match for any to be written; a field already converted is
    left as it is while the other is written."""
    store.r.hset("two:half", mapping={"a": NEW, "b": ORIGINAL})
    store.r.hset("two:clash", mapping={"a": ORIGINAL, "b": OTHER})
    keys = [b"two:half", b"two:clash"]
    columns = [cas.Column(f, [ORIGINAL] * 2, [NEW] * 2) for f in ("a", "b")]
    prepared = cas.prepare(keys, columns, force=False, batch_size=10, watch=watch)
    assert store.run(cas.compare_and_set(prepared)) == [scripts.WRITTEN, scripts.CONFLICT]
    assert store.r.hgetall("two:half") == {b"a": NEW, b"b": NEW}
    assert store.r.hgetall("two:clash") == {b"a": ORIGINAL, b"b": OTHER}


def test_the_script_keeps_the_fields_ttl(store: FakeStore) -> None:
    """The script form rewrites a field with HSET (which clears its TTL) and puts the field's
    expiry time back."""
    store.r.hset("cas:match", "vec", ORIGINAL)
    store.r.hpexpire("cas:match", HOUR_MS, "vec")
    (expiry,) = store.r.hpexpiretime("cas:match", "vec")
    column = cas.Column("vec", [ORIGINAL], [NEW])
    prepared = cas.prepare(KEYS[:1], [column], force=False, batch_size=10, watch=False)
    assert store.run(cas.compare_and_set(prepared)) == [scripts.WRITTEN]
    assert store.r.hget("cas:match", "vec") == NEW
    assert store.r.hpexpiretime("cas:match", "vec") == [expiry]


def _racing(step: Step[Any], action: Callable[[], None], sent: list[bytes]) -> Step[Any]:
    """``step``, with ``action`` run (on another client) after each of its round trips; the
    payload of each round trip is appended to ``sent``."""
    reply: object = None
    while True:
        try:
            effect = step.send(reply)
        except StopIteration as done:
            return done.value
        if isinstance(effect, Packed):
            sent.append(effect.payload)
        reply = yield effect
        action()


def _session(step: Step[Any]) -> Step[Any]:
    value = yield Session(step)
    return value


def test_a_write_between_read_and_exec_is_kept(store: FakeStore) -> None:
    """Another client rewrites a watched key after the group was read: EXEC fails, the group
    is read again (one retry, counted), the changed key becomes a conflict with its newer
    bytes kept, and the rest of the group is written."""
    for key in KEYS[:3]:
        store.r.hset(key, "vec", ORIGINAL)
    other = store.client()
    writes = iter([lambda: other.hset("cas:already", "vec", OTHER)])

    def race_once() -> None:
        next(writes, lambda: None)()

    column = cas.Column("vec", [ORIGINAL] * 3, [NEW] * 3)
    prepared = cas.prepare(KEYS[:3], [column], force=False, batch_size=10, watch=True)
    sent: list[bytes] = []
    written = store.run(_session(_racing(cas.watched_writes(prepared), race_once, sent)))

    assert written.statuses == [scripts.WRITTEN, scripts.CONFLICT, scripts.WRITTEN]
    assert (written.retries, written.fallbacks) == (1, 0)
    assert store.r.hget("cas:already", "vec") == OTHER
    assert store.r.hget("cas:match", "vec") == NEW
    assert store.r.hget("cas:changed", "vec") == NEW
    assert len(sent) == 4  # read, failed EXEC, re-read, EXEC


def test_a_group_raced_every_time_is_decided_by_the_script(store: FakeStore) -> None:
    """A key rewritten after every read makes EXEC fail each time; after RETRIES re-reads the
    group goes to the script, which keeps the racer's bytes and writes the other key; the
    retries and the fall-back are counted for the batch's journal event."""
    store.r.hset("cas:match", "vec", ORIGINAL)
    store.r.hset("cas:changed", "vec", ORIGINAL)
    other = store.client()
    count = iter(range(1000))

    def race() -> None:
        other.hset("cas:changed", "vec", b"racer %d" % next(count))

    column = cas.Column("vec", [ORIGINAL] * 2, [NEW] * 2)
    keys = [b"cas:match", b"cas:changed"]
    prepared = cas.prepare(keys, [column], force=False, batch_size=10, watch=True)
    sent: list[bytes] = []
    written = store.run(_session(_racing(cas.watched_writes(prepared), race, sent)))

    assert written.statuses == [scripts.WRITTEN, scripts.CONFLICT]
    assert written.counts() == {"cas_retries": cas.RETRIES, "cas_fallbacks": 1}
    assert store.r.hget("cas:match", "vec") == NEW
    assert store.r.hget("cas:changed", "vec").startswith(b"racer ")
    assert len(sent) == 2 + 2 * cas.RETRIES + 1
    assert b"EVAL" in sent[-1] and all(b"EVAL" not in p for p in sent[:-1])
