"""The sync driver on a fakeredis client, under RESP3 and RESP2: replies come through the
connection's own ``read_response`` (see test_wire_fakeredis.py) and must look as on the real server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fakestore import FakeStore

from ftctl.steps.effects import Commands, Packed, ReplyError, Session, Step, pack


@pytest.fixture(params=[3, 2], ids=["resp3", "resp2"])
def store(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[FakeStore]:
    """A fakeredis store whose client speaks RESP3 or RESP2."""
    made = FakeStore(tmp_path / "backup", protocol=request.param)
    yield made
    made.close()


def _send(commands: list[tuple[object, ...]]) -> Step[list[object]]:
    replies: list[object] = yield Commands(commands)  # type: ignore[arg-type]
    return replies


def test_replies_are_raw_and_errors_are_values(store: FakeStore) -> None:
    """One reply per command, raw bytes and ints; an error reply (also one inside EXEC's
    array) is a ReplyError value, never raised, and the replies after it still arrive."""
    replies = store.run(
        _send(
            [
                ("SET", "s", b"\x00\r\n"),
                ("GET", "s"),
                ("HGET", "s", "f"),
                ("MULTI",),
                ("HSET", "s", "f", "v"),
                ("INCR", "n"),
                ("EXEC",),
                ("MGET", "s", "missing"),
            ]
        )
    )
    assert replies[:2] == [b"OK", b"\x00\r\n"]
    assert isinstance(replies[2], ReplyError) and "WRONGTYPE" in str(replies[2])
    assert replies[3:6] == [b"OK", b"QUEUED", b"QUEUED"]
    failed, incremented = replies[6]  # type: ignore[misc]
    assert isinstance(failed, ReplyError) and incremented == 1
    assert replies[7] == [b"\x00\r\n", None]


def test_a_failed_session_leaves_no_transaction_behind(store: FakeStore) -> None:
    """A Session that fails mid-transaction has its connection dropped: the next batch on the
    driver runs its commands instead of having them queued in the abandoned MULTI."""

    def broken() -> Step[None]:
        yield Packed(pack([("WATCH", "k"), ("MULTI",), ("SET", "k", "queued")]), 3)
        raise RuntimeError("the step failed")

    def in_session() -> Step[None]:
        yield Session(broken())

    with pytest.raises(RuntimeError, match="the step failed"):
        store.run(in_session())
    assert store.run(_send([("SET", "k", "direct"), ("GET", "k")])) == [b"OK", b"direct"]
