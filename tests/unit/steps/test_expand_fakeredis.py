"""expand on fakeredis: the real sync driver writes the new layout beside the old one, keeps
it in line with writers, and the contract leaves exactly what drop_recreate leaves."""

from __future__ import annotations

import msgspec
from fakestore import DIMS, FakeStore, conversion, spec, vectors

from ftctl.journal.segments import SegmentPayload, pack_field
from ftctl.plan.codecs import convert_many
from ftctl.steps import expand
from ftctl.steps.cas import digest
from ftctl.steps.effects import Progress
from ftctl.steps.spec import OnlineSpec, RunSpec

HOUR_MS = 3_600_000
TEMP = "emb__ftctl_t"


def _online(run: RunSpec, temps: dict[str, str] | None = None) -> RunSpec:
    names = OnlineSpec(serving_name="docs", strategy="expand", temp_fields=temps or {})
    return msgspec.structs.replace(run, online=names)


def _f16(vector: bytes) -> bytes:
    (out,) = convert_many([vector], "float32", "float16", DIMS)
    return out


def test_a_vector_converted_in_place_goes_through_a_temporary_field(store: FakeStore) -> None:
    """expand writes the converted bytes into the temporary field and leaves the served
    field alone; rewrite converts the field in place too; the contract drops the temporary
    field: the document ends as drop_recreate leaves it."""
    v0, v1 = vectors(2)
    store.r.hset("doc:0", mapping={"emb": v0, "title": "zero"})
    store.r.hset("doc:1", mapping={"emb": v1, "title": "one"})
    run = _online(spec(conversions=[conversion()]), {"emb": TEMP})
    keys = [b"doc:0", b"doc:1"]

    first = store.run(expand.sync_keys(run, keys, "expand"))

    assert first.written == 2
    assert store.r.hmget("doc:0", "emb", TEMP) == [v0, _f16(v0)]
    assert store.run(expand.sync_keys(run, keys, "expand")).already == 2
    store.run(expand.reconcile(run, "rewrite"))
    assert store.r.hmget("doc:1", "emb", TEMP) == [_f16(v1), _f16(v1)]
    store.run(expand.reconcile(run, "contract"))
    assert store.r.hgetall("doc:0") == {b"emb": _f16(v0), b"title": b"zero"}
    assert store.run(expand.leftovers(run)) == 0


def test_legacy_writes_are_converted_and_new_format_writes_kept(store: FakeStore) -> None:
    """A writer that still writes float32 after the rewrite has its vector converted; one
    that switched to float16 keeps its bytes (only converted once, never twice)."""
    v0, v1 = vectors(2)
    store.r.hset("doc:0", "emb", v0)
    store.r.hset("doc:1", "emb", v1)
    run = _online(spec(conversions=[conversion()]), {"emb": TEMP})
    store.run(expand.reconcile(run, "rewrite"))
    legacy, switched = vectors(2, seed=9)
    store.r.hset("doc:0", "emb", legacy)
    store.r.hset("doc:1", "emb", _f16(switched))

    store.run(expand.sync_keys(run, [b"doc:0", b"doc:1"], "rewrite"))

    assert store.r.hmget("doc:0", "emb", TEMP) == [_f16(legacy), _f16(legacy)]
    assert store.r.hmget("doc:1", "emb", TEMP) == [_f16(switched), _f16(switched)]


def test_a_renamed_field_is_copied_then_moved_with_its_ttl(store: FakeStore) -> None:
    """expand copies the field under its new name (with the field's TTL) and keeps the old
    one serving; a late write to the old name (which clears that field's TTL) is carried
    over by the contract, TTL state included, which removes the old name."""
    store.r.hset("doc:0", mapping={"title": "zero", "body": "b"})
    store.r.hpexpire("doc:0", 2 * HOUR_MS, "title")
    run = _online(spec(renames=[("title", "headline")]))

    store.run(expand.sync_keys(run, [b"doc:0"], "expand"))

    assert store.r.hmget("doc:0", "title", "headline") == [b"zero", b"zero"]
    (expiry,) = store.r.hpexpiretime("doc:0", "headline")
    assert expiry > 0
    store.r.hset("doc:0", "title", "written late")
    store.run(expand.reconcile(run, "contract"))
    assert store.r.hgetall("doc:0") == {b"headline": b"written late", b"body": b"b"}
    assert store.r.hpexpiretime("doc:0", "headline") == store.r.hpexpiretime("doc:0", "body")


def test_a_prefix_change_copies_documents_and_follows_deletes(store: FakeStore) -> None:
    """Each document is copied to its new key (renamed, converted, with its TTLs); a delete
    through the old name before the contract removes the copy; the contract removes the old
    keys and leaves the copies."""
    v0, v1 = vectors(2)
    store.r.hset("doc:0", mapping={"emb": v0, "title": "zero"})
    store.r.pexpire("doc:0", HOUR_MS)
    store.r.hset("doc:1", mapping={"emb": v1, "title": "one"})
    run = _online(
        spec(prefix=("doc:", "item:"), renames=[("title", "headline")], conversions=[conversion()])
    )

    store.run(expand.reconcile(run, "expand"))

    assert store.r.hgetall("item:0") == {b"emb": _f16(v0), b"headline": b"zero"}
    assert store.r.pexpiretime("item:0") == store.r.pexpiretime("doc:0") > 0
    store.r.delete("doc:1")
    assert store.run(expand.sync_keys(run, [b"doc:1"], "expand")).deleted == 1
    assert not store.r.exists("item:1")
    store.run(expand.reconcile(run, "contract"))
    assert sorted(store.r.keys("*")) == [b"item:0"]
    assert store.run(expand.leftovers(run)) == 0


def test_the_reverse_migration_restores_originals_by_digest(store: FakeStore) -> None:
    """After a finished in-place quantization, the reverse migration puts back the original
    float32 bytes where the converted bytes are unchanged (digest from the backup), widens
    a vector written since, and its discard leaves no temporary field: the document is
    byte-identical to before the migration."""
    v0, v1 = vectors(2)
    store.r.hset("doc:0", mapping={"emb": v0, "title": "zero"})
    store.r.hset("doc:1", mapping={"emb": v1, "title": "one"})
    before = store.state()
    run = _online(spec(conversions=[conversion()]), {"emb": TEMP})
    store.run(expand.reconcile(run, "rewrite"))
    store.run(expand.reconcile(run, "contract"))
    assert store.r.hget("doc:0", "emb") == _f16(v0)
    segment = SegmentPayload(
        keys=[b"doc:0", b"doc:1"],
        fields={"emb": pack_field([v0, v1], dtype="float32", dims=DIMS)},
        digests={"emb": digest(_f16(v0)) + digest(_f16(v1))},
    )
    back = expand.reverse(run)

    originals = expand.originals_of(run, segment)
    store.run(expand.sync_keys(back, segment.keys, "expand", originals=originals))
    store.run(expand.reconcile(back, "expand", missing_only=True))
    store.run(expand.sync_keys(back, segment.keys, "rewrite", originals=originals))
    store.run(expand.reconcile(back, "rewrite"))
    store.run(expand.reconcile(run, "discard"))

    assert store.state() == before


def test_groups_follow_the_batch_size_and_report_progress(store: FakeStore) -> None:
    """A batch size below the WATCH group size makes smaller groups (the run's option holds
    in expand too), and each written group is reported as progress: the phases journal no
    batches, so this is how a run shows it is moving."""
    for i in range(5):
        store.r.hset(f"doc:{i}", "title", f"t{i}")
    progressed: list[Progress] = []
    store.driver.progress = progressed.append
    run = _online(spec(renames=[("title", "headline")], batch_size=2))

    done = store.run(expand.sync_keys(run, [f"doc:{i}".encode() for i in range(5)], "expand"))

    assert done.written == 5
    assert [p.advance for p in progressed] == [2, 2, 1]
    assert store.r.hget("doc:4", "headline") == b"t4"


def test_a_full_pass_follows_deletes_made_while_no_capture_ran(store: FakeStore) -> None:
    """A document deleted through its old name while the run was down is seen only from
    its copy: the expand pass (and a rollback's discard) removes the copy whose old key is
    gone; a rollback writing the old layout back (missing only) removes nothing."""
    v0, v1 = vectors(2)
    store.r.hset("doc:0", mapping={"emb": v0, "title": "zero"})
    store.r.hset("doc:1", mapping={"emb": v1, "title": "one"})
    run = _online(spec(prefix=("doc:", "item:")))
    store.run(expand.reconcile(run, "expand"))
    store.r.delete("doc:1")

    store.run(expand.reconcile(expand.reverse(run), "expand", missing_only=True))
    assert sorted(store.r.keys("*")) == [b"doc:0", b"item:0", b"item:1"]
    done = store.run(expand.reconcile(run, "expand"))

    assert done.deleted == 1
    assert sorted(store.r.keys("*")) == [b"doc:0", b"item:0"]
    store.r.hset("item:1", mapping={"emb": v1, "title": "one"})  # a stale copy again
    store.run(expand.reconcile(run, "discard"))
    assert sorted(store.r.keys("*")) == [b"doc:0"]
