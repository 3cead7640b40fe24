"""backup on fakeredis: the real step and sync driver read a batch's vectors into a segment of
the real journal, byte for byte, and leave the documents as they were."""

from __future__ import annotations

import pytest
from fakestore import FakeStore, conversion, spec, vectors

from ftctl.errors import MigrationFailed
from ftctl.journal import BatchDone, Journal, RunStarted
from ftctl.journal.events import VectorsRejected
from ftctl.journal.segments import unpack_field
from ftctl.plan.codecs import convert_many
from ftctl.steps.backup import backup_batch
from ftctl.steps.cas import DIGEST_SIZE, digest

KEYS = [b"doc:1", b"doc:2", b"doc:3", b"doc:4", b"doc:5"]


def test_backup_stores_each_keys_bytes_exactly(store: FakeStore) -> None:
    """Each key's vector lands in the segment as the bytes Redis holds, at the key's position:
    a key without the field and a key that is gone are absent, a vector of the wrong length is
    kept as it is (and named in a vectors_rejected event); the batch event names the segment,
    and nothing in Redis changes."""
    v0, v1 = vectors(2)
    store.r.hset("doc:1", mapping={"emb": v0, "title": "one"})
    store.r.hset("doc:2", mapping={"title": "no vector"})
    store.r.hset("doc:3", mapping={"emb": b"\x01\x02\x03"})
    store.r.hset("doc:5", mapping={"emb": v1})
    before = store.state()

    done = store.run(backup_batch(spec(conversions=[conversion()]), 3, store.keys_segment(KEYS)))

    assert done.step == "backup" and done.batch == 3 and done.keys == 5
    assert done.segment is not None
    payload = store.journal.read_segment(done.segment)
    assert payload.keys == KEYS
    assert unpack_field(payload.fields["emb"], len(KEYS)) == [v0, None, b"\x01\x02\x03", None, v1]
    assert store.state() == before
    events = Journal.read(store.journal.directory)
    assert [type(e) for e in events] == [RunStarted, VectorsRejected, BatchDone]
    rejected = events[1]
    assert isinstance(rejected, VectorsRejected)
    assert (rejected.kind, rejected.keys, rejected.count) == ("wrong_length", [b"doc:3"], 1)
    assert events[-1] == done


def test_backup_records_the_digest_of_each_conversion(store: FakeStore) -> None:
    """The segment holds, per key, the digest of the bytes quantize will write (zeros for a
    key without a vector), so a rollback recognises them without converting again."""
    (v0,) = vectors(1)
    store.r.hset("doc:1", mapping={"emb": v0})
    keys = KEYS[:2]
    conv = conversion()

    done = store.run(backup_batch(spec(conversions=[conv]), 0, store.keys_segment(keys)))

    assert done.segment is not None
    payload = store.journal.read_segment(done.segment)
    (written,) = convert_many([v0], conv.source, conv.target, conv.dims, conv.params)
    assert payload.digests["emb"] == digest(written) + bytes(DIGEST_SIZE)


def test_backup_of_two_fields_keeps_them_apart(store: FakeStore) -> None:
    """With two vector fields (one HMGET per key), each field gets its own block, and a key
    that has only one of them is absent from the other's block only."""
    a, b, c = vectors(3)
    store.r.hset("doc:1", mapping={"emb": a, "alt": b})
    store.r.hset("doc:2", mapping={"alt": c})
    keys = KEYS[:2]
    two = spec(conversions=[conversion(), conversion(field="alt")])

    done = store.run(backup_batch(two, 0, store.keys_segment(keys)))

    assert done.segment is not None
    payload = store.journal.read_segment(done.segment)
    assert unpack_field(payload.fields["emb"], 2) == [a, None]
    assert unpack_field(payload.fields["alt"], 2) == [b, c]


def test_a_read_error_fails_the_batch_before_anything_is_journaled(store: FakeStore) -> None:
    """A key of the wrong type under the prefix makes the server answer with an error: the
    batch fails with that error and records no event (it is redone on resume)."""
    store.r.set("doc:1", b"a string, not a hash")
    refs = store.keys_segment(KEYS[:1])
    with pytest.raises(MigrationFailed, match="backup read failed: WRONGTYPE"):
        store.run(backup_batch(spec(conversions=[conversion()]), 0, refs))
    assert [type(e) for e in Journal.read(store.journal.directory)] == [RunStarted]
