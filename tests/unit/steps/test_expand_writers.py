"""What the README tells writers to do during an online rename or prefix change, on
fakeredis: the writes it recommends survive the contract, the ones it warns about do not."""

from __future__ import annotations

import msgspec
from fakestore import FakeStore, spec

from ftctl.steps import expand
from ftctl.steps.spec import OnlineSpec, RunSpec


def _online(run: RunSpec) -> RunSpec:
    return msgspec.structs.replace(run, online=OnlineSpec(serving_name="docs", strategy="expand"))


def test_rename_writes_through_the_contract(store: FakeStore) -> None:
    """After the cut-over, ``HSET headline`` with ``HDEL title`` in one transaction is kept
    by the contract; ``HSET headline`` alone, while the document still has ``title``, is
    overwritten by the older value (the README warns about it); a write of the old name by
    an instance not yet switched is moved."""
    run = _online(spec(renames=[("title", "headline")]))
    for i in range(3):
        store.r.hset(f"doc:{i}", "title", f"before {i}")
    store.run(expand.reconcile(run, "expand"))
    writer = store.client()

    with writer.pipeline(transaction=True) as switched:
        switched.hset("doc:0", "headline", "switched").hdel("doc:0", "title").execute()
    writer.hset("doc:1", "headline", "new name alone")
    writer.hset("doc:2", "title", "late old name")
    store.run(expand.reconcile(run, "contract"))

    assert [store.r.hgetall(f"doc:{i}") for i in range(3)] == [
        {b"headline": b"switched"},
        {b"headline": b"before 1"},
        {b"headline": b"late old name"},
    ]


def test_prefix_change_writes_through_the_contract(store: FakeStore) -> None:
    """After the cut-over, the whole document under the new prefix with the old key deleted
    in one transaction is kept; a write under the old prefix is moved over the copy; a
    delete by both names leaves nothing; a delete through the old name alone after the
    copy leaves the copy behind (why the README says to delete by both names)."""
    run = _online(spec(prefix=("doc:", "item:")))
    for i in range(4):
        store.r.hset(f"doc:{i}", "title", f"before {i}")
    store.run(expand.reconcile(run, "expand"))
    writer = store.client()

    with writer.pipeline(transaction=True) as switched:
        switched.delete("doc:0").hset("item:0", "title", "switched").execute()
    writer.hset("doc:1", "title", "late old prefix")
    writer.delete("doc:2", "item:2")
    writer.delete("doc:3")
    store.run(expand.reconcile(run, "contract"))

    assert sorted(store.r.keys("*")) == [b"item:0", b"item:1", b"item:3"]
    assert store.r.hget("item:0", "title") == b"switched"
    assert store.r.hget("item:1", "title") == b"late old prefix"
    assert store.r.hget("item:3", "title") == b"before 3"
