"""The fast reply path is in use with the installed redis-py, and the public path it falls
back to gives the same replies."""

from __future__ import annotations

import asyncio

import pytest
import redis
import redis.asyncio

from ftctl.drivers import AsyncDriver, SyncDriver, wire
from ftctl.steps.effects import Commands, ReplyError, Step

COMMANDS = [
    ("SET", "wire:s", b"\x00\r\n"),
    ("GET", "wire:s"),
    ("HGET", "wire:s", "f"),
    ("MULTI",),
    ("INCR", "wire:s"),
    ("EXEC",),
    ("MGET", "wire:s", "wire:none"),
]


def _step() -> Step[list[object]]:
    replies: list[object] = yield Commands(COMMANDS)
    return replies


def _shape(replies: list[object]) -> list[object]:
    return [
        ("error", type(r).__name__)
        if isinstance(r, ReplyError)
        else [type(x).__name__ if isinstance(x, ReplyError) else x for x in r]
        if isinstance(r, list)
        else r
        for r in replies
    ]


def test_resp2_connections_take_the_direct_path(redis_url: str) -> None:
    """If a redis-py release renames the parser internals, this fails instead of every run
    silently falling back to the slow path."""
    client = redis.Redis.from_url(redis_url, protocol=2)
    connection = client.connection_pool.get_connection()
    assert wire._direct_reader(connection, wire.SYNC_PARSER) is not None

    async def check() -> None:
        aclient = redis.asyncio.Redis.from_url(redis_url, protocol=2)
        aconn = await aclient.connection_pool.get_connection()
        assert wire._direct_reader(aconn, wire.ASYNC_PARSER) is not None
        await aclient.connection_pool.release(aconn)
        await aclient.aclose()

    asyncio.run(check())
    client.connection_pool.release(connection)
    client.close()


def test_direct_and_public_paths_give_the_same_replies(
    redis_url: str, r: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    def both() -> tuple[list[object], list[object]]:
        r.delete("wire:s")
        client = redis.Redis.from_url(redis_url, protocol=2)
        sync = SyncDriver(client).run(_step())
        client.close()
        r.delete("wire:s")

        async def go() -> list[object]:
            client = redis.asyncio.Redis.from_url(redis_url, protocol=2)
            replies: list[object] = await AsyncDriver(client).run(_step())
            await client.aclose()
            return replies

        return sync, asyncio.run(go())

    direct = both()
    monkeypatch.setattr(wire, "SYNC_PARSER", None)
    monkeypatch.setattr(wire, "ASYNC_PARSER", None)
    public = both()
    assert _shape(direct[0]) == _shape(public[0]) == _shape(direct[1]) == _shape(public[1])
    assert _shape(direct[0])[5] == ["ReplyError"]  # INCR of a non-number, inside EXEC
