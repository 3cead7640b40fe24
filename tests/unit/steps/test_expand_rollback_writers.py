"""What the README tells writers to do during the rollback of an online rename, prefix change
or in-place conversion, on fakeredis: the reverse migration's passes keep their writes."""

from __future__ import annotations

import msgspec
from fakestore import DIMS, FakeStore, conversion, spec, vectors

from ftctl.plan.codecs import convert_many
from ftctl.steps import expand
from ftctl.steps.spec import OnlineSpec, RunSpec

TEMP = "emb__ftctl_t"


def _online(run: RunSpec, temps: dict[str, str] | None = None) -> RunSpec:
    names = OnlineSpec(serving_name="docs", strategy="expand", temp_fields=temps or {})
    if run.prefix_change is not None:  # the target index is on the new prefix
        index = msgspec.structs.replace(run.target_schema.index, prefix=run.prefix_change.new)
        target = msgspec.structs.replace(run.target_schema, index=index)
        run = msgspec.structs.replace(run, target_schema=target)
    return msgspec.structs.replace(run, online=names)


def _cut_back_passes(store: FakeStore, run: RunSpec) -> None:
    """The last step of a rollback that cut back (``rb_unexpand``): the new layout removed
    where the old one is, then what only the new layout holds moved back."""
    store.run(expand.reconcile(run, "discard", follow_deletes=False))
    store.run(expand.reconcile(expand.reverse(run), "contract"))


def test_prefix_change_rollback_keeps_what_writers_wrote_under_either_prefix(
    store: FakeStore,
) -> None:
    """After the cut-back, a document an instance not switched back yet wrote under the new
    prefix alone (the old key deleted, as it did since the cut-over) is moved back, and so
    is one it created there; the switched writer's old-prefix write (the new key deleted)
    and a delete by both names stand; no key under the new prefix is left. The discard of a
    rollback that never cut over took both for deletes through the old name and removed
    them: the document was lost."""
    run = _online(spec(prefix=("doc:", "item:")))
    for i in range(4):
        store.r.hset(f"item:{i}", "title", f"migrated {i}")  # after the apply's contract
    store.run(expand.reconcile(expand.reverse(run), "expand", missing_only=True))  # relayout
    writer = store.client()

    with writer.pipeline(transaction=True) as legacy:
        legacy.delete("doc:0").hset("item:0", "title", "new prefix, not switched").execute()
    writer.hset("item:9", "title", "created under the new prefix")
    with writer.pipeline(transaction=True) as switched:
        switched.delete("item:1").hset("doc:1", "title", "switched back").execute()
    writer.delete("doc:2", "item:2")
    _cut_back_passes(store, run)

    assert {k: store.r.hget(k, "title") for k in sorted(store.r.keys("*"))} == {
        b"doc:0": b"new prefix, not switched",
        b"doc:1": b"switched back",
        b"doc:3": b"migrated 3",
        b"doc:9": b"created under the new prefix",
    }


def test_rename_rollback_moves_back_what_only_the_new_name_holds(store: FakeStore) -> None:
    """After the cut-back, ``HSET title`` with ``HDEL headline`` (switched back) is kept, a
    write of the new name with the old one removed (not switched yet) is moved back, and a
    document holding both keeps its old name's value: the rollback ends with no document
    holding the new name (its validation failed on them)."""
    run = _online(spec(renames=[("title", "headline")]))
    for i in range(3):
        store.r.hset(f"doc:{i}", "headline", f"migrated {i}")
    store.run(expand.reconcile(expand.reverse(run), "expand", missing_only=True))
    writer = store.client()

    with writer.pipeline(transaction=True) as legacy:
        legacy.hset("doc:0", "headline", "not switched").hdel("doc:0", "title").execute()
    with writer.pipeline(transaction=True) as switched:
        switched.hset("doc:1", "title", "switched").hdel("doc:1", "headline").execute()
    _cut_back_passes(store, run)

    assert [store.r.hgetall(f"doc:{i}") for i in range(3)] == [
        {b"title": b"not switched"},
        {b"title": b"switched"},
        {b"title": b"migrated 2"},
    ]


def test_a_restored_original_survives_a_sync_without_its_originals(store: FakeStore) -> None:
    """A rollback follows writes from the start: its own write of an original float32
    vector beside the float16 one is captured and synced again, without the backup's
    originals at hand. The original is kept (it narrows to exactly the float16 bytes),
    where it used to be replaced by the float16 bytes widened back, which the rollback's
    index then served; a vector written since in float16 is widened."""
    original, written = vectors(2)
    run = _online(spec(conversions=[conversion()]), {"emb": TEMP})
    back = expand.reverse(run)
    rollback_temp = expand.rollback_temp(TEMP)
    (f16_original, f16_written) = convert_many([original, written], "float32", "float16", DIMS)
    store.r.hset("doc:0", mapping={"emb": f16_original, rollback_temp: original})
    store.r.hset("doc:1", mapping={"emb": f16_written, rollback_temp: original})

    store.run(expand.sync_keys(back, [b"doc:0", b"doc:1"], "expand"))

    (widened,) = convert_many([f16_written], "float16", "float32", DIMS)
    assert store.r.hget("doc:0", rollback_temp) == original
    assert store.r.hget("doc:1", rollback_temp) == widened
