"""Rollback's key-level steps on fakeredis (restore_vectors, restore_keys, restore_fields):
after the apply's rewrites, they bring every document back byte for byte, TTLs included,
and keep what others wrote in between unless forced."""

from __future__ import annotations

import pytest
from fakestore import FakeStore, conversion, spec, vectors

from ftctl.journal import BatchDone, ConflictRecorded, Journal, SegmentRef
from ftctl.plan.codecs import convert_many
from ftctl.steps.backup import backup_batch
from ftctl.steps.rewrite import quantize_batch, rename_fields_batch, rename_keys_batch
from ftctl.steps.rollback import restore_fields_batch, restore_keys_batch, restore_vectors_batch
from ftctl.steps.spec import RunSpec

HOUR_MS = 3_600_000
COUNT = 6
KEYS = [f"doc:{i}".encode() for i in range(COUNT)]
FORMS = pytest.mark.parametrize("watch", [False, True], ids=["script", "watch-exec"])


def _load(store: FakeStore) -> list[bytes]:
    """COUNT documents with a vector, a title and a body; key and field TTLs on some."""
    originals = vectors(COUNT)
    for i, (key, vector) in enumerate(zip(KEYS, originals, strict=True)):
        store.r.hset(key, mapping={"emb": vector, "title": f"title {i}", "body": b"\x00\xff"})
    store.r.pexpire("doc:0", HOUR_MS)
    store.r.hpexpire("doc:1", 2 * HOUR_MS, "emb")
    store.r.hpexpire("doc:2", 3 * HOUR_MS, "title")
    store.r.pexpire("doc:3", 4 * HOUR_MS)
    store.r.hpexpire("doc:3", 5 * HOUR_MS, "emb", "title")
    return originals


def _apply(store: FakeStore, run: RunSpec, *, watch: bool) -> tuple[SegmentRef, SegmentRef]:
    """backup, rename_fields, rename_keys, quantize, as an apply runs them (one batch each);
    returns the key segment and the backup segment."""
    keys = store.keys_segment(KEYS)
    backed_up = store.run(backup_batch(run, 0, keys))
    assert backed_up.segment is not None
    store.run(rename_fields_batch(run, 0, keys))
    store.run(rename_keys_batch(run, 0, keys))
    store.run(quantize_batch(run, 0, backed_up.segment, watch=watch))
    return keys, backed_up.segment


def _run_spec() -> RunSpec:
    """Prefix doc: → item:, title → name, emb → vec re-encoded float32 → float16."""
    return spec(
        prefix=("doc:", "item:"),
        renames=[("title", "name"), ("emb", "vec")],
        conversions=[conversion(to="vec")],
        batch_size=4,
    )


def test_rollback_restores_every_document_byte_for_byte(store: FakeStore) -> None:
    """After an apply that renamed keys and fields and re-encoded vectors, restore_vectors,
    restore_keys and restore_fields (in rollback's order) leave exactly the original keys,
    fields, bytes, key TTLs and field TTLs; each step journals its batch under its own name."""
    originals = _load(store)
    before = store.state()
    run = _run_spec()
    keys, backup = _apply(store, run, watch=False)
    migrated = store.state()
    assert sorted(migrated) == [k.replace(b"doc:", b"item:") for k in KEYS]
    assert [migrated[b"item:%d" % i][1][b"vec"] for i in range(COUNT)] == convert_many(
        originals, "float32", "float16", 4
    )
    _, _, key_expiry, field_expiry = before[b"doc:3"]
    assert key_expiry > 0 and migrated[b"item:3"][2] == key_expiry
    assert migrated[b"item:3"][3] == {b"name": field_expiry[b"title"], b"vec": field_expiry[b"emb"]}

    vectors_done = store.run(restore_vectors_batch(run, 0, backup, force=False, watch=False))
    keys_done = store.run(restore_keys_batch(run, 0, keys))
    fields_done = store.run(restore_fields_batch(run, 0, keys))

    assert store.state() == before
    assert [d.counts for d in (vectors_done, keys_done, fields_done)] == [{"written": COUNT}] * 3
    steps = [e.step for e in Journal.read(store.journal.directory) if isinstance(e, BatchDone)]
    assert steps[-3:] == ["restore_vectors", "restore_keys", "restore_fields"]


def test_a_redone_rollback_changes_nothing(store: FakeStore) -> None:
    """Each restore batch run a second time (a crash before its event) finds its work done."""
    _load(store)
    before = store.state()
    run = _run_spec()
    keys, backup = _apply(store, run, watch=False)
    store.run(restore_vectors_batch(run, 0, backup, force=False, watch=False))
    again_vectors = store.run(restore_vectors_batch(run, 0, backup, force=False, watch=False))
    store.run(restore_keys_batch(run, 0, keys))
    again_keys = store.run(restore_keys_batch(run, 0, keys))
    store.run(restore_fields_batch(run, 0, keys))
    again_fields = store.run(restore_fields_batch(run, 0, keys))

    assert store.state() == before
    assert again_vectors.counts == again_keys.counts == again_fields.counts == {"already": COUNT}


@FORMS
def test_restore_vectors_keeps_a_newer_vector_unless_forced(store: FakeStore, watch: bool) -> None:
    """A vector rewritten after the migration converted it is kept and journaled as a
    conflict; the others get their original bytes back. With force, it is overwritten too."""
    originals = vectors(3)
    keys = KEYS[:3]
    for key, vector in zip(keys, originals, strict=True):
        store.r.hset(key, "emb", vector)
    run = spec(conversions=[conversion()])
    backed_up = store.run(backup_batch(run, 0, store.keys_segment(keys)))
    assert backed_up.segment is not None
    store.run(quantize_batch(run, 0, backed_up.segment, watch=watch))
    store.client().hset("doc:1", "emb", b"written after the migration")

    kept = store.run(restore_vectors_batch(run, 0, backed_up.segment, force=False, watch=watch))

    assert [store.r.hget(k, "emb") for k in keys] == [
        originals[0],
        b"written after the migration",
        originals[2],
    ]
    assert kept.counts == {"written": 2, "conflicts": 1}
    conflict = Journal.read(store.journal.directory)[-2]
    assert isinstance(conflict, ConflictRecorded)
    assert conflict.step == "restore_vectors" and conflict.keys == [b"doc:1"]

    forced = store.run(restore_vectors_batch(run, 0, backed_up.segment, force=True, watch=watch))

    assert [store.r.hget(k, "emb") for k in keys] == originals
    assert forced.counts == {"written": 1, "already": 2}


def test_restore_keys_keeps_both_when_the_original_name_is_taken_again(store: FakeStore) -> None:
    """A key recreated under its original name while the migrated one exists: both are kept
    as they are and the key is a conflict; the other keys move back."""
    store.r.hset("doc:0", "title", b"zero")
    store.r.hset("doc:1", "title", b"one")
    run = spec(prefix=("doc:", "item:"))
    keys = store.keys_segment(KEYS[:2])
    store.run(rename_keys_batch(run, 0, keys))
    store.client().hset("doc:1", "title", b"a new doc:1")

    done = store.run(restore_keys_batch(run, 0, keys))

    assert store.r.hget("doc:0", "title") == b"zero" and not store.r.exists("item:0")
    assert store.r.hget("doc:1", "title") == b"a new doc:1"
    assert store.r.hget("item:1", "title") == b"one"
    assert done.counts == {"written": 1, "conflicts": 1}
    conflict = Journal.read(store.journal.directory)[-2]
    assert isinstance(conflict, ConflictRecorded) and conflict.keys == [b"doc:1"]
