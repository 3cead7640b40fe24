"""One conformance suite for both drivers: every effect means the same under sync and asyncio."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio

from ftctl.drivers import AsyncDriver, SyncDriver
from ftctl.errors import ConnectionFailed
from ftctl.journal import Journal, Note, RunStarted, SegmentPayload
from ftctl.journal.pause import request_pause
from ftctl.steps.effects import (
    Commands,
    Offload,
    Packed,
    Parallel,
    Paused,
    ReadSegment,
    Record,
    ReplyError,
    Session,
    Sleep,
    Step,
    Timed,
    Timing,
    WriteSegment,
    pack,
)

Runner = Callable[[Step[Any], Journal, int], Any]


def _sync(url: str, protocol: int) -> Runner:
    def run(step: Step[Any], journal: Journal, workers: int) -> Any:
        client = redis.Redis.from_url(url, protocol=protocol)
        driver = SyncDriver(
            client,
            journal,
            workers=workers,
            connect_worker=lambda: redis.Redis.from_url(url, protocol=protocol),
        )
        try:
            return driver.run(step)
        finally:
            driver.close()
            client.close()

    return run


def _async(url: str, protocol: int) -> Runner:
    def run(step: Step[Any], journal: Journal, workers: int) -> Any:
        async def go() -> Any:
            client = redis.asyncio.Redis.from_url(url, protocol=protocol)

            async def more() -> redis.asyncio.Redis:
                return redis.asyncio.Redis.from_url(url, protocol=protocol)

            driver = AsyncDriver(client, journal, workers=workers, connect_worker=more)
            try:
                return await driver.run(step)
            finally:
                await driver.close()
                await client.aclose()

        return asyncio.run(go())

    return run


@pytest.fixture(params=["sync-resp2", "sync-resp3", "async-resp2", "async-resp3"])
def runner(request: pytest.FixtureRequest, redis_url: str) -> Runner:
    """Each driver in turn, under each protocol (RESP2 takes replies straight off hiredis)."""
    kind, resp = request.param.split("-")
    protocol = int(resp[-1])
    return _sync(redis_url, protocol) if kind == "sync" else _async(redis_url, protocol)


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    first = RunStarted(
        run_id="r", kind="apply", index_name="i", plan_yaml="", plan_sha256="x", mode="m"
    )
    return Journal.create(tmp_path / "j", first=first)


def _batch(n: int) -> Step[int]:
    yield Commands([("INCR", "conformance:counter")])
    yield Record([Note(message=f"batch {n}")])
    return n


def _watched_incr() -> Step[str]:
    """WATCH, MULTI and INCR+EXEC in three round trips: a batch of another thread in between
    would nest MULTI or WATCH inside MULTI (errors); only a Session keeps them together."""
    watched = yield Commands([("WATCH", "conformance:w")])
    multi = yield Commands([("MULTI",)])
    replies = yield Commands([("INCR", "conformance:w"), ("EXEC",)])
    if any(isinstance(x, ReplyError) for x in [*watched, *multi, *replies]):
        return "error"
    return "aborted" if replies[-1] is None else "ok"


def _in_session() -> Step[object]:
    value = yield Session(_watched_incr())
    return value


def _everything() -> Step[dict[str, Any]]:
    replies = yield Commands(
        [
            ("SET", "conformance:a", b"\x00\xff"),
            ("GET", "conformance:a"),
            ("HGET", "conformance:a", "x"),
        ]
    )
    tx = yield Commands([("INCR", "conformance:n"), ("INCR", "conformance:n")], transaction=True)
    stamped = yield Record([Note(message="hello")])
    durable = yield WriteSegment(SegmentPayload(keys=[b"k1"]))
    deferred = yield WriteSegment(SegmentPayload(keys=[b"k2"]), durable=False)
    yield Record([Note(message="segments named")])
    back = yield ReadSegment(deferred)
    computed = yield Offload(lambda: sum(range(10)))
    yield Sleep(0.001)
    parallel = yield Parallel([_batch(n) for n in range(6)])
    sessions = yield Parallel([_in_session() for _ in range(4)])
    packed = yield Packed(pack([("SET", "conformance:p", b"\r\n"), ("GET", "conformance:p")]), 2)
    in_exec = yield Commands([("MULTI",), ("INCR", "conformance:a"), ("EXEC",)])
    return {
        "sessions": sessions,
        "packed": packed,
        "in_exec": isinstance(in_exec[-1][0], ReplyError) and "integer" in in_exec[-1][0].message,
        "set": replies[0],
        "get": replies[1],
        "wrongtype": isinstance(replies[2], ReplyError) and "WRONGTYPE" in replies[2].message,
        "tx": tx,
        "seq": stamped[0].seq,
        "segments": (durable.number, deferred.number, back.keys),
        "offload": computed,
        "parallel": parallel,
    }


@pytest.mark.parametrize("workers", [1, 2])
def test_every_effect_means_the_same_under_both_drivers(
    runner: Runner, journal: Journal, r: redis.Redis, workers: int
) -> None:
    """Replies (errors as values, MULTI/EXEC), journal records, segments, offloaded work and
    parallel batches give the same results under the sync and the asyncio driver."""
    result = runner(_everything(), journal, workers)
    assert result == {
        "sessions": result["sessions"],
        "packed": [b"OK", b"\r\n"],
        "in_exec": True,
        "set": b"OK",
        "get": b"\x00\xff",
        "wrongtype": True,
        "tx": [1, 2],
        "seq": 2,
        "segments": (1, 2, [b"k2"]),
        "offload": 45,
        "parallel": [0, 1, 2, 3, 4, 5],
    }
    assert gc.isenabled(), "the collector paused for parsing must be back on"
    # One connection: nothing else can touch the watched key. Two: the other worker may.
    assert "error" not in result["sessions"]
    if workers == 1:
        assert result["sessions"] == ["ok"] * 4
    assert int(r.get("conformance:counter") or 0) == 6
    notes = [e for e in journal.events() if isinstance(e, Note)]
    assert len(notes) == 8
    journal.close()


def _timed_watch() -> Step[object]:
    """A WATCH … MULTI/EXEC session whose transaction is timed (as expand's groups are)."""
    yield Commands([("WATCH", "conformance:t")])
    timing: Timing = yield Timed(Commands([("MULTI",), ("INCR", "conformance:t"), ("EXEC",)]))
    return timing.replies[-1]


def _clocked() -> Step[dict[str, Any]]:
    first: Timing = yield Timed(Commands([("PING",), ("INFO", "cpu")]))
    yield Sleep(0.05)
    second: Timing = yield Timed(Commands([("PING",)]))
    in_session = yield Session(_timed_watch())
    flags = [(yield Paused())]
    return {"first": first, "second": second, "session": in_session, "paused": flags}


def test_timed_batches_and_the_pause_flag_mean_the_same_under_both_drivers(
    runner: Runner, journal: Journal, r: redis.Redis
) -> None:
    """Timed gives the replies, a positive round trip and a monotonic clock (two timings
    are at least a Sleep and the second round trip apart), also inside a Session;
    Paused answers the journal directory's PAUSE flag."""
    result = runner(_clocked(), journal, 1)
    first, second = result["first"], result["second"]
    assert first.replies[0] in (b"PONG", "PONG") and b"used_cpu" in bytes(first.replies[1])
    assert first.seconds > 0 and second.seconds > 0
    assert second.at - first.at >= 0.05 + second.seconds
    assert result["session"] == [1] and result["paused"] == [False]
    request_pause(journal.directory)
    assert runner(_paused(), journal, 1) is True
    journal.close()


def _paused() -> Step[object]:
    value = yield Paused()
    return value


def test_lost_connection_is_one_ftctl_error(runner: Runner, journal: Journal) -> None:
    """A connection that cannot be made surfaces as ConnectionFailed, not a redis exception."""

    def step() -> Step[None]:
        yield Commands([("PING",)])

    bad = (
        _sync("redis://127.0.0.1:1", 2)
        if runner.__qualname__.startswith("_sync")
        else _async("redis://127.0.0.1:1", 2)
    )
    with pytest.raises(ConnectionFailed):
        bad(step(), journal, 1)
    journal.close()


@pytest.mark.parametrize("protocol", [2, 3])
def test_a_connection_killed_inside_a_session_fails_it_and_is_replaced(
    redis_url: str, protocol: int
) -> None:
    """A session never carries on over a silently re-made connection (its WATCH would be
    gone): the kill surfaces as ConnectionFailed; the next batch gets a fresh connection.
    Both drivers."""
    killer = redis.Redis.from_url(redis_url)

    def session() -> Step[None]:
        def inside() -> Step[None]:
            (client_id,) = yield Commands([("CLIENT", "ID")])
            killer.client_kill_filter(_id=client_id)
            yield Commands([("PING",)])

        yield Session(inside())

    def ping() -> Step[object]:
        (pong,) = yield Commands([("PING",)])
        return pong

    sync = SyncDriver(redis.Redis.from_url(redis_url, protocol=protocol))
    with pytest.raises(ConnectionFailed):
        sync.run(session())
    assert sync.run(ping()) == b"PONG"

    async def go() -> None:
        driver = AsyncDriver(redis.asyncio.Redis.from_url(redis_url, protocol=protocol))
        with pytest.raises(ConnectionFailed):
            await driver.run(session())
        assert await driver.run(ping()) == b"PONG"
        await driver.client.aclose()

    asyncio.run(go())
    killer.close()
