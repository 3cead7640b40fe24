"""The document rewrites on fakeredis (quantize, rename_fields, rename_keys): the real steps and
sync driver against an in-memory Redis, checked on the bytes and TTLs they leave and on what
they journal."""

from __future__ import annotations

import json

import pytest
from fakestore import FakeStore, conversion, spec, vectors

from ftctl.drivers import SyncDriver
from ftctl.journal import BatchDone, ConflictRecorded, Journal, SegmentRef
from ftctl.journal.events import KeysGone
from ftctl.plan.codecs import convert_many
from ftctl.steps.backup import backup_batch
from ftctl.steps.effects import Parallel, Step
from ftctl.steps.rewrite import quantize_batch, rename_fields_batch, rename_keys_batch
from ftctl.steps.spec import RunSpec

HOUR_MS = 3_600_000
FORMS = pytest.mark.parametrize("watch", [False, True], ids=["script", "watch-exec"])


def _backup(store: FakeStore, run: RunSpec, keys: list[bytes], batch: int = 0) -> SegmentRef:
    """The backup segment of ``keys``, made by the backup step itself."""
    done = store.run(backup_batch(run, batch, store.keys_segment(keys)))
    assert done.segment is not None
    return done.segment


def _events(store: FakeStore) -> list[object]:
    """The journal's events after the first, as read back from disk."""
    return list(Journal.read(store.journal.directory)[1:])


def _keys(count: int, prefix: str = "doc:") -> list[bytes]:
    return [f"{prefix}{i}".encode() for i in range(count)]


# -- quantize -------------------------------------------------------------------------------


def test_quantize_writes_the_conversion_of_the_backup_and_keeps_ttls(store: FakeStore) -> None:
    """Each vector becomes the exact conversion of its backed-up bytes; other fields, the
    key's TTL and the vector field's own TTL (which a plain HSET would clear) are kept."""
    originals = vectors(3)
    keys = _keys(3)
    for key, vector in zip(keys, originals, strict=True):
        store.r.hset(key, mapping={"emb": vector, "title": b"t"})
    store.r.pexpire("doc:0", HOUR_MS)
    store.r.hpexpire("doc:0", 2 * HOUR_MS, "emb")
    key_expiry = store.r.pexpiretime("doc:0")
    (field_expiry,) = store.r.hpexpiretime("doc:0", "emb")
    run = spec(conversions=[conversion()])

    done = store.run(quantize_batch(run, 0, _backup(store, run, keys), watch=False))

    assert done.counts == {"written": 3}
    wanted = convert_many(originals, "float32", "float16", 4)
    assert [store.r.hget(k, "emb") for k in keys] == wanted
    assert all(store.r.hget(k, "title") == b"t" for k in keys)
    assert store.r.pexpiretime("doc:0") == key_expiry
    assert store.r.hpexpiretime("doc:0", "emb") == [field_expiry]
    assert store.r.hpexpiretime("doc:1", "emb") == [-1]


@FORMS
def test_quantize_keeps_concurrent_writes_and_reports_them(store: FakeStore, watch: bool) -> None:
    """A vector rewritten after the backup is left as someone else made it and journaled as
    a conflict; a key deleted after the backup is not brought back and journaled as gone
    (not as someone else's write); a key that never had the vector is counted absent; the
    rest is converted."""
    originals = vectors(4)
    keys = _keys(4)
    for key, vector in zip(keys[:3], originals[:3], strict=True):
        store.r.hset(key, "emb", vector)
    store.r.hset("doc:3", "title", b"no vector")
    run = spec(conversions=[conversion()])
    backup = _backup(store, run, keys)
    other = store.client()
    other.hset("doc:1", "emb", b"a newer vector")
    other.delete("doc:2")

    done = store.run(quantize_batch(run, 0, backup, watch=watch))

    assert store.r.hget("doc:0", "emb") == convert_many(originals[:1], "float32", "float16", 4)[0]
    assert store.r.hget("doc:1", "emb") == b"a newer vector"
    assert not store.r.exists("doc:2")
    assert store.r.hgetall("doc:3") == {b"title": b"no vector"}
    *_, conflict, gone, batch = _events(store)
    assert isinstance(conflict, ConflictRecorded)
    assert conflict.step == "quantize" and conflict.keys == [b"doc:1"]
    assert isinstance(gone, KeysGone) and gone.keys == [b"doc:2"]
    assert batch == done
    assert done.counts == {"written": 1, "conflicts": 1, "absent": 2}


@FORMS
def test_a_redone_quantize_batch_converts_from_the_backup_again(
    store: FakeStore, watch: bool
) -> None:
    """Redoing a batch (a crash before its event) finds every key already converted and
    changes nothing, even for a same-width change (float16 → bfloat16) where converting the
    live bytes a second time would give different bytes."""
    originals = vectors(3, "float16")
    keys = _keys(3)
    for key, vector in zip(keys, originals, strict=True):
        store.r.hset(key, "emb", vector)
    run = spec(conversions=[conversion("float16", "bfloat16")])
    backup = _backup(store, run, keys)
    first = store.run(quantize_batch(run, 0, backup, watch=watch))
    after_first = store.state()

    again = store.run(quantize_batch(run, 0, backup, watch=watch))

    assert first.counts == {"written": 3} and again.counts == {"already": 3}
    assert store.state() == after_first
    live = [store.r.hget(k, "emb") for k in keys]
    assert live == convert_many(originals, "float16", "bfloat16", 4)
    assert convert_many(live, "float16", "bfloat16", 4) != live  # a live re-read would differ


def test_quantize_batches_in_parallel_on_worker_connections(store: FakeStore) -> None:
    """Several batches run as one Parallel effect on two worker connections; each key gets its
    own conversion (no replies mixed between batches) and each batch journals once."""
    originals = vectors(12)
    keys = _keys(12)
    for key, vector in zip(keys, originals, strict=True):
        store.r.hset(key, "emb", vector)
    run = spec(conversions=[conversion()], batch_size=2)
    backups = [_backup(store, run, keys[i : i + 4], batch=i // 4) for i in range(0, 12, 4)]
    driver = SyncDriver(store.r, store.journal, workers=2, connect_worker=store.client)

    def all_batches() -> Step[list[BatchDone]]:
        done: list[BatchDone] = yield Parallel(
            [quantize_batch(run, b, ref, watch=False) for b, ref in enumerate(backups)]
        )
        return done

    try:
        done = driver.run(all_batches())
    finally:
        driver.close()
    assert [(d.batch, d.counts) for d in done] == [(b, {"written": 4}) for b in range(3)]
    assert [store.r.hget(k, "emb") for k in keys] == convert_many(
        originals, "float32", "float16", 4
    )


# -- rename_fields --------------------------------------------------------------------------


def _hash_rename_data(store: FakeStore) -> None:
    store.r.hset("doc:0", mapping={"title": b"zero", "emb": b"v0"})
    store.r.hpexpire("doc:0", HOUR_MS, "title")
    store.r.pexpire("doc:0", 2 * HOUR_MS)
    store.r.hset("doc:1", mapping={"title": b"old", "name": b"someone else's"})
    store.r.hset("doc:2", mapping={"name": b"renamed before"})


def test_rename_fields_moves_values_and_their_ttls(store: FakeStore) -> None:
    """A hash field's value moves to its new name with its own TTL; the key's TTL and other
    fields stay. A key holding both names is a conflict left as it is, one holding only the
    new name is already done, a missing key is absent."""
    _hash_rename_data(store)
    (title_expiry,) = store.r.hpexpiretime("doc:0", "title")
    key_expiry = store.r.pexpiretime("doc:0")
    run = spec(renames=[("title", "name")])

    done = store.run(rename_fields_batch(run, 0, store.keys_segment(_keys(4))))

    assert store.r.hgetall("doc:0") == {b"name": b"zero", b"emb": b"v0"}
    assert store.r.hpexpiretime("doc:0", "name") == [title_expiry]
    assert store.r.pexpiretime("doc:0") == key_expiry
    assert store.r.hgetall("doc:1") == {b"title": b"old", b"name": b"someone else's"}
    assert store.r.hgetall("doc:2") == {b"name": b"renamed before"}
    *_, conflict, batch = _events(store)
    assert isinstance(conflict, ConflictRecorded)
    assert (conflict.step, conflict.keys) == ("rename_fields", [b"doc:1"])
    assert batch == done
    assert done.counts == {"written": 1, "conflicts": 1, "already": 1, "absent": 1}


def test_a_redone_field_rename_changes_nothing(store: FakeStore) -> None:
    """Renaming the same batch again finds the renamed keys already done and writes nothing."""
    _hash_rename_data(store)
    run = spec(renames=[("title", "name")])
    keys = store.keys_segment(_keys(4))
    store.run(rename_fields_batch(run, 0, keys))
    after_first = store.state()

    again = store.run(rename_fields_batch(run, 0, keys))

    assert store.state() == after_first
    assert again.counts == {"already": 2, "conflicts": 1, "absent": 1}


def test_rename_json_fields_moves_whole_values(store: FakeStore) -> None:
    """A JSON path's value (nested objects, lists, nulls) moves to its new path unchanged; a
    document holding both paths is a conflict left as it is; the key's TTL stays."""
    doc0 = {"title": {"a": [1.5, None, "x"]}, "emb": [0.25, 0.5]}
    store.r.execute_command("JSON.SET", "doc:0", "$", json.dumps(doc0))
    store.r.execute_command("JSON.SET", "doc:1", "$", json.dumps({"title": 1, "name": 2}))
    store.r.pexpire("doc:0", HOUR_MS)
    key_expiry = store.r.pexpiretime("doc:0")
    run = spec(storage="json", renames=[("$.title", "$.name")])

    done = store.run(rename_fields_batch(run, 0, store.keys_segment(_keys(2))))

    assert done.counts == {"written": 1, "conflicts": 1}
    (moved,) = json.loads(store.r.execute_command("JSON.GET", "doc:0", "$"))
    assert moved == {"name": {"a": [1.5, None, "x"]}, "emb": [0.25, 0.5]}
    (kept,) = json.loads(store.r.execute_command("JSON.GET", "doc:1", "$"))
    assert kept == {"title": 1, "name": 2}
    assert store.r.pexpiretime("doc:0") == key_expiry


# -- rename_keys ----------------------------------------------------------------------------


def test_rename_keys_moves_keys_with_their_ttls_and_keeps_occupied_destinations(
    store: FakeStore,
) -> None:
    """Each key moves to its new prefix with its content, key TTL and field TTLs; a key whose
    destination is taken is a conflict and neither key changes; a key already moved counts
    as already, one with neither name as absent and journaled as gone. Keys go to the server
    in batch_size chunks."""
    store.r.hset("doc:0", mapping={"title": b"zero", "emb": b"v0"})
    store.r.pexpire("doc:0", HOUR_MS)
    store.r.hpexpire("doc:0", 2 * HOUR_MS, "emb")
    store.r.hset("doc:1", "title", b"mine")
    store.r.hset("item:1", "title", b"someone else's")
    store.r.hset("item:2", "title", b"moved before")
    before = store.state()
    run = spec(prefix=("doc:", "item:"), batch_size=2)

    done = store.run(rename_keys_batch(run, 0, store.keys_segment(_keys(4))))

    after = store.state()
    assert not store.r.exists("doc:0")
    assert after[b"item:0"] == before[b"doc:0"]
    assert after[b"item:0"][2] > 0 and after[b"item:0"][3]  # the TTLs came along
    assert after[b"doc:1"] == before[b"doc:1"] and after[b"item:1"] == before[b"item:1"]
    assert after[b"item:2"] == before[b"item:2"]
    *_, conflict, gone, batch = _events(store)
    assert isinstance(conflict, ConflictRecorded) and conflict.keys == [b"doc:1"]
    assert isinstance(gone, KeysGone) and gone.keys == [b"doc:3"]
    assert batch == done
    assert done.counts == {"written": 1, "conflicts": 1, "already": 1, "absent": 1}


def test_a_redone_key_rename_changes_nothing(store: FakeStore) -> None:
    """Renaming the same batch again finds every key at its destination: all already done."""
    for key in _keys(3):
        store.r.hset(key, "title", key)
    run = spec(prefix=("doc:", "item:"))
    keys = store.keys_segment(_keys(3))
    store.run(rename_keys_batch(run, 0, keys))
    after_first = store.state()

    again = store.run(rename_keys_batch(run, 0, keys))

    assert store.state() == after_first
    assert sorted(after_first) == _keys(3, "item:")
    assert again.counts == {"already": 3}
