"""Which reply path a connection takes: a connection class that reads its replies its own way
(fakeredis' has no socket behind its hiredis parser) must get the public path, sync and async.

The real server's connections taking the fast path is checked in
tests/integration/test_wire.py.
"""

from __future__ import annotations

import logging

import fakeredis
import pytest

from ftctl.drivers import AsyncDriver, SyncDriver, wire
from ftctl.steps.effects import Commands, ReplyError, Step

PROTOCOLS = pytest.mark.parametrize("protocol", [2, 3], ids=["resp2", "resp3"])


def _step() -> Step[list[object]]:
    replies: list[object] = yield Commands([("SET", "a", b"1"), ("GET", "a"), ("HGET", "a", "f")])
    return replies


def _check(replies: list[object]) -> None:
    assert replies[:2] == [b"OK", b"1"]
    assert isinstance(replies[2], ReplyError) and "WRONGTYPE" in str(replies[2])


@PROTOCOLS
def test_a_connection_with_its_own_read_response_is_read_through_it(protocol: int) -> None:
    """fakeredis' sync connection carries redis-py's hiredis parser (under RESP2 too) but
    answers through its own read_response: no direct reader, and the driver's replies come
    through."""
    client = fakeredis.FakeRedis(protocol=protocol)
    connection = client.connection_pool.get_connection()
    try:
        assert wire._direct_reader(connection, wire.SYNC_PARSER) is None
    finally:
        client.connection_pool.release(connection)
    _check(SyncDriver(client).run(_step()))
    client.close()


@PROTOCOLS
async def test_the_async_path_reads_such_a_connection_through_it_too(protocol: int) -> None:
    """The same for fakeredis' asyncio connection and the async driver."""
    client = fakeredis.FakeAsyncRedis(protocol=protocol)
    connection = await client.connection_pool.get_connection()
    try:
        assert wire._direct_reader(connection, wire.ASYNC_PARSER) is None
    finally:
        await client.connection_pool.release(connection)
    _check(await AsyncDriver(client).run(_step()))
    await client.aclose()


def test_the_slow_path_is_logged_once_with_its_reason(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Falling back to the public reply path is a debug line naming the reason and the
    connection class, once per process, not once per batch; redis-py internals that moved
    (every run slower) are a warning."""
    monkeypatch.setattr(wire, "_told", set())
    caplog.set_level(logging.DEBUG, logger="ftctl.drivers.wire")
    client = fakeredis.FakeRedis(protocol=2)
    for _ in range(3):
        _check(SyncDriver(client).run(_step()))
    client.close()
    (record,) = caplog.records
    assert record.levelno == logging.DEBUG
    assert record.getMessage() == "wire fast path unavailable"
    assert record.__dict__["reason"] == "the connection class reads its replies itself"
    assert record.__dict__["connection"].startswith("Fake")

    caplog.clear()
    monkeypatch.setattr(wire, "SYNC_PARSER", None)
    client = fakeredis.FakeRedis(protocol=2)
    _check(SyncDriver(client).run(_step()))
    client.close()
    (moved,) = caplog.records
    assert moved.levelno == logging.WARNING and "internals" in moved.__dict__["reason"]
