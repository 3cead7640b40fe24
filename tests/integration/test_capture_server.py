"""Change capture (StartCapture / TakeCaptured / StopCapture) on the real server, through
both drivers, with the client under RESP2 and RESP3 (the capture's own connection is RESP3)."""

from __future__ import annotations

import asyncio
import gc
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis
import redis.asyncio

from ftctl.drivers import AsyncDriver, SyncDriver
from ftctl.errors import RedisCommandError
from ftctl.steps.effects import (
    Captured,
    Commands,
    Parallel,
    Sleep,
    StartCapture,
    Step,
    StopCapture,
    TakeCaptured,
)

StepFactory = Callable[[], Step[Any]]


def tracking_clients(r: redis.Redis) -> list[dict[str, str]]:
    """The server's clients with key tracking on (``t`` among their flags)."""
    listing = r.execute_command("CLIENT", "LIST")
    text = listing.decode() if isinstance(listing, bytes) else str(listing)
    clients = [
        dict(f.split("=", 1) for f in line.split(" ") if "=" in f) for line in text.splitlines()
    ]
    return [c for c in clients if "t" in c["flags"]]


@dataclass
class Drive:
    """One driver kind under one client protocol; runs a step, closes the driver after."""

    kind: str
    protocol: int
    url: str

    def run(
        self,
        make: StepFactory,
        *,
        workers: int = 1,
        url: str | None = None,
        after: Callable[[], None] | None = None,
        client_options: dict[str, Any] | None = None,
        **options: Any,
    ) -> Any:
        """Run ``make()``; ``after`` runs once the step is done, before the driver closes.
        Asserts that no thread (sync) or task (asyncio) outlives the driver."""
        url = url or self.url
        settings = client_options or {}
        if self.kind == "sync":
            threads = threading.active_count()
            client = redis.Redis.from_url(url, protocol=self.protocol, **settings)
            driver = SyncDriver(
                client,
                workers=workers,
                connect_worker=lambda: redis.Redis.from_url(url, protocol=self.protocol),
                **options,
            )
            try:
                value = driver.run(make())
                if after is not None:
                    after()
                return value
            finally:
                driver.close()
                client.close()
                assert threading.active_count() == threads, "a capture thread outlived close()"

        async def go() -> Any:
            client = redis.asyncio.Redis.from_url(url, protocol=self.protocol, **settings)

            async def more() -> redis.asyncio.Redis:
                return redis.asyncio.Redis.from_url(url, protocol=self.protocol)

            driver = AsyncDriver(client, workers=workers, connect_worker=more, **options)
            try:
                value = await driver.run(make())
                if after is not None:
                    after()
                return value
            finally:
                await driver.close()
                await client.aclose()
                left = asyncio.all_tasks() - {asyncio.current_task()}
                assert not left, f"tasks outlived close(): {left}"

        return asyncio.run(go())


@pytest.fixture(params=["sync-resp2", "sync-resp3", "async-resp2", "async-resp3"])
def drive(request: pytest.FixtureRequest, redis_url: str, r: redis.Redis) -> Iterator[Drive]:
    """Each driver in turn, under each client protocol, on a flushed server; no tracking
    connection is left behind by the test."""
    kind, resp = request.param.split("-")
    yield Drive(kind, int(resp[-1]), redis_url)
    assert tracking_clients(r) == []


def _take() -> Step[Captured]:
    captured = yield TakeCaptured()
    assert isinstance(captured, Captured)
    return captured


def _until_not_lost(deadline: float = 15.0) -> Step[Captured]:
    """Takes until one reports no loss (the tracking connection is back)."""
    end = time.monotonic() + deadline
    while True:
        captured = yield from _take()
        if not captured.lost:
            return captured
        assert time.monotonic() < end, "capture did not recover"
        yield Sleep(0.05)


def test_writes_under_the_prefixes_are_named_once_in_the_next_take(
    drive: Drive, r: redis.Redis
) -> None:
    """HSET, DEL, RENAME (both names), keys with NUL bytes and JSON.SET under a tracked
    prefix appear in the next take, each once; writes under other prefixes do not. The first
    take after the start reports lost, later ones do not; a take with nothing new is empty."""
    r.hset("cap:old", "f", "1")

    def step() -> Step[list[Captured]]:
        yield StartCapture(["cap:", b"bin\x00:"])
        first = yield from _take()
        r.hset("cap:a", "f", "1")
        r.hset("cap:a", "f", "2")
        r.delete("cap:a")
        r.hset(b"cap:\x00nul\xff", "f", b"\x00")
        r.hset(b"bin\x00:x", "f", "1")
        r.rename("cap:old", "cap:new")
        r.execute_command("JSON.SET", "cap:json", "$", '{"a": 1}')
        r.hset("other:a", "f", "1")
        r.set("ca", "1")
        second = yield from _take()
        third = yield from _take()
        yield StopCapture()
        return [first, second, third]

    first, second, third = drive.run(step)
    assert first.lost
    assert not second.lost
    assert sorted(second.keys) == sorted(
        [b"cap:a", b"cap:\x00nul\xff", b"bin\x00:x", b"cap:old", b"cap:new", b"cap:json"]
    )
    assert third == Captured([], lost=False)


def test_a_take_is_a_fence_for_acknowledged_writes(drive: Drive, r: redis.Redis) -> None:
    """A write the server acknowledged just before the take is in that take, every time:
    no write is left in flight for a later take."""

    def step() -> Step[list[Captured]]:
        yield StartCapture(["fence:"])
        yield from _take()
        takes = []
        for n in range(30):
            r.set(f"fence:{n}", n)
            takes.append((yield from _take()))
        yield StopCapture()
        return takes

    takes = drive.run(step)
    assert [t.keys for t in takes] == [[f"fence:{n}".encode()] for n in range(30)]
    assert not any(t.lost for t in takes)


def test_a_killed_tracking_connection_is_reported_lost_and_capture_goes_on(
    drive: Drive, r: redis.Redis
) -> None:
    """CLIENT KILL of the tracking connection makes the next take report lost; the driver
    reopens it with tracking on, and later writes are named again."""

    def step() -> Step[tuple[Captured, Captured, str, str]]:
        yield StartCapture(["kill:"])
        yield from _take()
        (before,) = tracking_clients(r)
        r.set("kill:early", 1)
        r.client_kill_filter(_id=before["id"])
        after_kill = yield from _take()
        yield from _until_not_lost()
        r.set("kill:late", 1)
        later = yield from _take()
        (reopened,) = tracking_clients(r)
        yield StopCapture()
        return after_kill, later, before["id"], reopened["id"]

    after_kill, later, killed_id, reopened_id = drive.run(step)
    assert after_kill.lost
    assert later == Captured([b"kill:late"], lost=False)
    assert reopened_id != killed_id


def test_stop_closes_the_tracking_connection(drive: Drive, r: redis.Redis) -> None:
    """StopCapture closes the tracking connection (CLIENT LIST no longer shows it); a take
    after it reports lost with no keys; a second stop is harmless."""

    def step() -> Step[tuple[int, int, Captured]]:
        yield StartCapture(["stop:"])
        capturing = len(tracking_clients(r))
        yield StopCapture()
        stopped = len(tracking_clients(r))
        r.set("stop:x", 1)
        after = yield from _take()
        yield StopCapture()
        return capturing, stopped, after

    assert drive.run(step) == (1, 0, Captured([], lost=True))


def test_closing_the_driver_stops_the_capture(drive: Drive, r: redis.Redis) -> None:
    """A step that never stops its capture leaves nothing behind once the driver is closed:
    no tracking connection, no thread, no task (the fixture and Drive.run assert it)."""
    seen: list[int] = []

    def step() -> Step[None]:
        yield StartCapture(["close:"])

    drive.run(step, after=lambda: seen.append(len(tracking_clients(r))))
    assert seen == [1]
    assert tracking_clients(r) == []


def test_starting_again_replaces_the_prefixes(drive: Drive, r: redis.Redis) -> None:
    """A second StartCapture tracks the new prefixes only, on one tracking connection; its
    first take reports lost."""

    def step() -> Step[tuple[Captured, Captured, int]]:
        yield StartCapture(["one:"])
        yield from _take()
        yield StartCapture(["two:"])
        restarted = yield from _take()
        r.set("one:a", 1)
        r.set("two:a", 1)
        later = yield from _take()
        count = len(tracking_clients(r))
        yield StopCapture()
        return restarted, later, count

    restarted, later, count = drive.run(step)
    assert restarted.lost
    assert later == Captured([b"two:a"], lost=False)
    assert count == 1


def test_an_empty_prefix_captures_every_key_and_a_flush_is_a_loss(
    drive: Drive, r: redis.Redis
) -> None:
    """The empty prefix tracks the whole keyspace; FLUSHALL names no key, so the take after
    it reports lost."""

    def step() -> Step[tuple[Captured, Captured]]:
        yield StartCapture([""])
        yield from _take()
        r.set("anything", 1)
        r.set(b"\x00", 1)
        everything = yield from _take()
        r.flushall()
        flushed = yield from _take()
        yield StopCapture()
        return everything, flushed

    everything, flushed = drive.run(step)
    assert sorted(everything.keys) == [b"\x00", b"anything"]
    assert not everything.lost
    assert flushed.lost


def test_too_many_keys_between_takes_are_dropped_and_reported_lost(
    drive: Drive, r: redis.Redis
) -> None:
    """Past ``capture_limit`` distinct keys the capture keeps none and reports lost; the
    take after that counts afresh."""

    def step() -> Step[tuple[Captured, Captured]]:
        yield StartCapture(["many:"])
        yield from _take()
        for n in range(5):
            r.set(f"many:{n}", n)
        overflowed = yield from _take()
        r.set("many:again", 1)
        after = yield from _take()
        yield StopCapture()
        return overflowed, after

    overflowed, after = drive.run(step, capture_limit=3)
    assert overflowed == Captured([], lost=True)
    assert after == Captured([b"many:again"], lost=False)


def _writes_and_takes(n: int) -> Step[list[bytes]]:
    yield Commands([("SET", f"par:{n}", n)])
    captured = yield from _take()
    assert not captured.lost
    return captured.keys


def test_worker_drivers_share_the_capture(drive: Drive) -> None:
    """Sub-steps of a Parallel run by worker drivers take from the one capture: together
    with the parent's last take they see every write, each key once, and no loss."""

    def step() -> Step[list[bytes]]:
        yield StartCapture(["par:"])
        yield from _take()
        parts = yield Parallel([_writes_and_takes(n) for n in range(8)])
        last = yield from _take()
        yield StopCapture()
        return [key for part in [*parts, last.keys] for key in part]

    keys = drive.run(step, workers=3)
    assert sorted(keys) == sorted(f"par:{n}".encode() for n in range(8))


def test_the_tracking_connection_uses_the_clients_credentials_and_name(
    drive: Drive, r: redis.Redis
) -> None:
    """The capture connects as the client does (user, password, client name), whatever the
    client's protocol."""
    r.execute_command("ACL", "SETUSER", "capuser", "on", ">s3cret", "~*", "+@all")
    parts = urlsplit(drive.url)
    url = f"redis://capuser:s3cret@{parts.netloc}/0?client_name=ftctl-test"
    try:

        def step() -> Step[list[dict[str, str]]]:
            yield StartCapture(["cred:"])
            clients = tracking_clients(r)
            yield StopCapture()
            return clients

        (client,) = drive.run(step, url=url)
    finally:
        r.execute_command("ACL", "DELUSER", "capuser")
    assert (client["user"], client["name"], client["resp"]) == ("capuser", "ftctl-test", "3")


def test_a_user_refused_client_tracking_gets_one_ftctl_error(drive: Drive, r: redis.Redis) -> None:
    """When the server refuses CLIENT TRACKING the start raises RedisCommandError, and no
    connection, thread or task is left behind."""
    r.execute_command("ACL", "SETUSER", "notrack", "on", ">pw", "~*", "+@all", "-client|tracking")
    parts = urlsplit(drive.url)
    try:

        def step() -> Step[None]:
            yield StartCapture(["x:"])

        with pytest.raises(RedisCommandError, match="CLIENT TRACKING"):
            drive.run(step, url=f"redis://notrack:pw@{parts.netloc}")
    finally:
        r.execute_command("ACL", "DELUSER", "notrack")


def test_a_fence_that_does_not_come_back_in_time_is_a_loss(drive: Drive, r: redis.Redis) -> None:
    """A take waits for its fence no longer than the client's socket timeout: a stalled
    server makes it report lost; the tracking connection is reopened and capture goes on."""

    def step() -> Step[tuple[Captured, Captured]]:
        yield StartCapture(["stall:"])
        yield from _take()
        r.execute_command("CLIENT", "PAUSE", 1500, "ALL")
        started = time.monotonic()
        stalled = yield from _take()
        assert time.monotonic() - started < 1.4
        yield from _until_not_lost()
        r.set("stall:after", 1)
        later = yield from _take()
        yield StopCapture()
        return stalled, later

    stalled, later = drive.run(step, client_options={"socket_timeout": 0.5})
    assert stalled.lost
    assert later == Captured([b"stall:after"], lost=False)


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_capture_works_with_redis_pys_own_parser(kind: str, redis_url: str, r: redis.Redis) -> None:
    """Without hiredis (redis-py's pure-Python parsers, chosen by the client) the capture
    names the same keys, NUL bytes included."""
    from redis._parsers import _AsyncRESP2Parser, _RESP2Parser

    parser = _RESP2Parser if kind == "sync" else _AsyncRESP2Parser

    def step() -> Step[Captured]:
        yield StartCapture(["py:"])
        yield from _take()
        r.set(b"py:\x00", 1)
        r.hset("py:h", "f", 1)
        captured = yield from _take()
        yield StopCapture()
        return captured

    captured = Drive(kind, 2, redis_url).run(step, client_options={"parser_class": parser})
    assert sorted(captured.keys) == [b"py:\x00", b"py:h"]
    assert not captured.lost
    assert tracking_clients(r) == []


def _start_only() -> Step[None]:
    yield StartCapture(["alive:"])


def test_an_unclosed_capture_does_not_keep_the_process_alive(redis_url: str) -> None:
    """A script that starts a capture and never closes its driver still exits at once."""
    script = (
        "import redis, sys\n"
        "from ftctl.drivers import SyncDriver\n"
        "from ftctl.steps.effects import StartCapture\n"
        "def step():\n"
        "    yield StartCapture(['alive:'])\n"
        "driver = SyncDriver(redis.Redis.from_url(sys.argv[1]))\n"
        "driver.run(step())\n"
        "print('started', flush=True)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, redis_url],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        check=False,
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "started\n", "")


def test_a_collected_sync_driver_stops_its_capture(redis_url: str, r: redis.Redis) -> None:
    """A sync driver dropped without close() stops its capture when it is collected: the
    tracking connection is closed and the reader thread ends."""
    threads = threading.active_count()
    client = redis.Redis.from_url(redis_url)
    driver = SyncDriver(client)
    driver.run(_start_only())
    assert len(tracking_clients(r)) == 1
    del driver
    gc.collect()
    assert tracking_clients(r) == []
    assert threading.active_count() == threads
    client.close()
