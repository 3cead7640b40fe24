"""Change capture for both drivers: key names pushed by ``CLIENT TRACKING … BCAST``.

A capture owns one RESP3 connection, made with the client's own settings (host, TLS,
credentials, name), on which tracking is switched on in the connection's connect hook: any
(re)connect, including one redis-py makes by itself, tracks before it is used, and counts
as a possible loss. One reader (a daemon thread, or an asyncio task) owns the reads and
folds the ``invalidate`` pushes into a :class:`CaptureBuffer`; a connection error marks the
buffer lost and the reader reconnects, backing off.

A take is a fence: ``PING <n>`` goes out on the tracking connection and the take waits for
its reply. Redis queues BCAST invalidations at the end of the event-loop round that made the
writes, before it sends that round's replies (``beforeSleep``), so the push for any write
acknowledged before the take was sent precedes the PING's reply on the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import select
import socket
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import redis
import redis.asyncio
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.retry import Retry

from ftctl.drivers.replies import translate_connection_error
from ftctl.errors import FtctlError, RedisCommandError
from ftctl.steps.effects import Captured, pack

DEFAULT_CAPTURE_LIMIT = 1_000_000
"""Distinct keys a capture holds between takes; past it they are dropped and the next take
reports ``lost`` (the caller reconciles fully instead)."""

POLL_SECONDS = 0.05
"""How often the sync reader looks for a take's fence request (and for stop) while idle,
where it cannot wait on its socket and a wake-up pipe at once."""

IDLE_SECONDS = 1.0
"""The longest the sync reader waits on its socket and wake-up pipe before it looks again."""

BACKOFF_FIRST = 0.1
BACKOFF_MAX = 5.0
FENCE_TIMEOUT_DEFAULT = 30.0
"""How long a take waits for its fence when the client sets no socket timeout; a fence that
does not come back reports ``lost`` and makes the reader reconnect."""

_INVALIDATE = b"invalidate"


def tracking_prefixes(prefixes: Sequence[bytes | str]) -> list[bytes]:
    """The prefixes to track: bytes, deduplicated, none covered by another (the server
    refuses overlapping prefixes); empty when every key is to be tracked."""
    wanted = sorted({p.encode() if isinstance(p, str) else bytes(p) for p in prefixes})
    if not wanted or b"" in wanted:
        return []
    kept: list[bytes] = []
    for prefix in wanted:  # sorted: a prefix comes right after any prefix covering it
        if not kept or not prefix.startswith(kept[-1]):
            kept.append(prefix)
    return kept


def tracking_command(prefixes: Sequence[bytes]) -> tuple[bytes, ...]:
    """``CLIENT TRACKING ON BCAST [PREFIX p …]`` for prefixes from :func:`tracking_prefixes`."""
    args: list[bytes] = [b"CLIENT", b"TRACKING", b"ON", b"BCAST"]
    for prefix in prefixes:
        args += [b"PREFIX", prefix]
    return tuple(args)


class CaptureBuffer:
    """Keys captured since the last take, and whether some may have been missed.

    Holds at most ``limit`` distinct keys: past that it drops them all, reports ``lost`` and
    ignores further keys until the next take (the caller reconciles everything then).
    Thread-safe.
    """

    def __init__(self, limit: int = DEFAULT_CAPTURE_LIMIT) -> None:
        if limit < 1:
            raise ValueError("the capture limit must be at least 1")
        self.limit = limit
        self._lock = threading.Lock()
        self._keys: set[bytes] = set()
        self._lost = True  # writes before tracking began are unknown
        self._overflowed = False

    def add(self, keys: Iterable[bytes]) -> None:
        with self._lock:
            if self._overflowed:
                return
            self._keys.update(keys)
            if len(self._keys) > self.limit:
                self._keys = set()
                self._lost = self._overflowed = True

    def lose(self) -> None:
        """Writes may have gone unseen (connection lost, keys flushed, …)."""
        with self._lock:
            self._lost = True

    def take(self) -> Captured:
        with self._lock:
            keys, lost = self._keys, self._lost
            self._keys, self._lost, self._overflowed = set(), False, False
        return Captured(list(keys), lost=lost)


@dataclass(frozen=True, slots=True)
class _Invalidation:
    """An ``invalidate`` push; ``keys`` is None when the server flushed its keyspace."""

    keys: list[bytes] | None


def _on_invalidation(push: Any) -> _Invalidation:
    return _Invalidation(push[1] if len(push) > 1 else None)


async def _on_invalidation_async(push: Any) -> _Invalidation:
    return _on_invalidation(push)


def _as_invalidation(reply: object) -> _Invalidation | None:
    """The invalidation a reply carries: through the push handler, or as a plain array where
    the parser does not tell pushes apart (older redis-py or hiredis)."""
    if isinstance(reply, _Invalidation):
        return reply
    if isinstance(reply, list) and reply and reply[0] == _INVALIDATE:
        return _on_invalidation(reply)
    return None


def _fence_number(reply: object) -> int | None:
    if isinstance(reply, bytes) and reply.isdigit():
        return int(reply)
    return None


def _connection_settings(
    pool: Any, connect_hook: Callable[[Any], Any], retry: Retry | AsyncRetry
) -> dict[str, Any]:
    """The client's connection settings for a tracking connection: RESP3, raw bytes, no
    health-check PING (its reply would be read as a push), no retries inside redis-py (the
    reader backs off itself), tracking switched on by ``connect_hook`` on every connect."""
    kwargs = dict(pool.connection_kwargs)
    kwargs.update(
        protocol=3,
        decode_responses=False,
        health_check_interval=0,
        retry=retry,
        redis_connect_func=connect_hook,
    )
    for name in ("retry_on_timeout", "retry_on_error"):
        kwargs.pop(name, None)
    return kwargs


def _fence_timeout(pool: Any) -> float:
    timeout = pool.connection_kwargs.get("socket_timeout")
    return float(timeout) if timeout else FENCE_TIMEOUT_DEFAULT


def _start_failed(exc: BaseException) -> FtctlError:
    if isinstance(exc, redis.ResponseError):
        return RedisCommandError(
            "CLIENT TRACKING",
            str(exc),
            "change capture needs Redis 6+ and a user allowed CLIENT TRACKING and HELLO 3",
        )
    return translate_connection_error(exc)


_BROKEN = (redis.RedisError, OSError)
"""What the reader treats as a lost connection (reconnect, report lost); OSError includes
the TimeoutError of ``asyncio.wait_for``."""


class SyncCapture:
    """One capture for the sync driver: a daemon reader thread on its own connection."""

    def __init__(self, client: redis.Redis, prefixes: Sequence[bytes], buffer: CaptureBuffer):
        pool = client.connection_pool
        self.buffer = buffer
        self._command = tracking_command(prefixes)
        self._user_hook = pool.connection_kwargs.get("redis_connect_func")
        self._connection: Any = pool.connection_class(
            **_connection_settings(pool, self._on_connect, Retry(NoBackoff(), 0))
        )
        self._fence_timeout = _fence_timeout(pool)
        self._stopping = threading.Event()
        self._started = threading.Event()
        self._start_error: BaseException | None = None
        self._failure: BaseException | None = None
        self._ready = False
        self._cond = threading.Condition()
        self._wanted = 0  # fences asked for (the latest number)
        self._sent = 0  # fences sent on the connection
        self._done = 0  # fences answered, or given up
        self._kick = False  # a take gave up on its fence: reconnect
        self._wake_reader, self._wake_writer = socket.socketpair()
        """Takes and stop write a byte here, so the idle reader sends a fence at once."""
        self._wake_reader.setblocking(False)
        self._wake_writer.setblocking(False)
        self._thread = threading.Thread(target=self._read, name="ftctl-capture", daemon=True)

    def _on_connect(self, connection: Any) -> None:
        """Runs inside every connect, before the connection is used: tracking on."""
        if self._user_hook is not None:
            self._user_hook(connection)
        else:
            connection.on_connect()
        parser = connection._parser  # redis-py keeps its push handlers on the parser
        if hasattr(parser, "set_invalidation_push_handler"):
            parser.set_invalidation_push_handler(_on_invalidation)
        self.buffer.lose()
        connection.send_command(*self._command, check_health=False)
        connection.read_response()

    def start(self) -> None:
        """Connect with tracking on (in the reader thread); raises if that fails."""
        self._thread.start()
        try:
            self._started.wait()
        except BaseException:  # Ctrl+C while connecting: leave no reader behind
            self.stop()
            raise
        if self._start_error is not None or self._failure is not None:
            self._thread.join()
            self._close_wake()
            if self._start_error is None:
                raise RuntimeError("the capture reader failed") from self._failure
            raise _start_failed(self._start_error) from None

    def take(self) -> Captured:
        with self._cond:
            if self._failure is not None:
                raise self._failure
            if not self._ready:
                self.buffer.lose()
                return self.buffer.take()
            self._wanted += 1
            number = self._wanted
            self._wake()
            answered = self._cond.wait_for(lambda: self._done >= number, self._fence_timeout)
            if not answered:
                self._kick = True
                self._wake()
                self.buffer.lose()
            return self.buffer.take()

    def _wake(self) -> None:
        with contextlib.suppress(OSError):  # full (a wake-up is pending anyway) or closed
            self._wake_writer.send(b"!")

    def stop(self) -> None:
        """Stop the reader and close the connection; waits for the thread unless called
        from it (a garbage collection may run there)."""
        self._stopping.set()
        self._wake()
        if self._thread is threading.current_thread():
            return
        if self._thread.is_alive():
            self._thread.join(IDLE_SECONDS)
        if self._thread.is_alive():  # blocked in a read or a connect: cut it short
            with contextlib.suppress(*_BROKEN):
                self._connection.disconnect()
            self._thread.join()
        self._close_wake()

    def _close_wake(self) -> None:
        self._wake_writer.close()
        self._wake_reader.close()

    def _read(self) -> None:
        backoff = BACKOFF_FIRST
        connection = self._connection
        try:
            while not self._stopping.is_set():
                try:
                    if not self._ready:
                        connection.connect()
                        with self._cond:
                            self._ready = True
                        self._started.set()
                        backoff = BACKOFF_FIRST
                    self._serve_fences(connection)
                    if connection.can_read(0):
                        self._handle(connection.read_response(push_request=True))
                    else:
                        self._idle(connection)
                except _BROKEN as exc:
                    if not self._started.is_set():
                        self._start_error = exc
                        return
                    self._broken()
                    with contextlib.suppress(*_BROKEN):
                        connection.disconnect()
                    self._stopping.wait(backoff)
                    backoff = min(backoff * 2, BACKOFF_MAX)
        except BaseException as exc:  # a bug: takes raise it rather than report forever
            self._failure = exc
        finally:
            self._broken()
            self._started.set()
            with contextlib.suppress(*_BROKEN):
                connection.disconnect()

    def _idle(self, connection: Any) -> None:
        """Wait until the socket has data or a take (or stop) wakes the reader."""
        sock = getattr(connection, "_sock", None)  # redis-py's socket, once connected
        if sock is None or not hasattr(select, "poll"):
            connection.can_read(POLL_SECONDS)
            return
        poll = select.poll()
        try:
            poll.register(sock, select.POLLIN)
            poll.register(self._wake_reader, select.POLLIN)
        except ValueError as exc:  # closed under us
            raise redis.ConnectionError(str(exc)) from exc
        poll.poll(IDLE_SECONDS * 1000)
        with contextlib.suppress(BlockingIOError):
            self._wake_reader.recv(4096)

    def _serve_fences(self, connection: Any) -> None:
        with self._cond:
            if self._kick:
                self._kick = False
                raise redis.ConnectionError("a take's fence was not answered in time")
            wanted = self._wanted
        if wanted > self._sent:
            connection.send_packed_command([pack([(b"PING", wanted)])], check_health=False)
            self._sent = wanted

    def _handle(self, reply: object) -> None:
        invalidation = _as_invalidation(reply)
        if invalidation is not None:
            if invalidation.keys is None:
                self.buffer.lose()  # FLUSHALL/FLUSHDB: every key changed, none named
            else:
                self.buffer.add(invalidation.keys)
            return
        number = _fence_number(reply)
        if number is None:
            raise redis.ConnectionError(f"unexpected reply on the tracking connection: {reply!r}")
        with self._cond:
            self._done = max(self._done, number)
            self._cond.notify_all()

    def _broken(self) -> None:
        """The connection is gone: anything may have been missed; release waiting takes."""
        self.buffer.lose()
        with self._cond:
            self._ready = False
            self._kick = False
            self._sent = self._done = self._wanted
            self._cond.notify_all()


class SyncCaptures:
    """The sync driver's capture slot, shared with its worker drivers."""

    def __init__(self, client: redis.Redis, limit: int = DEFAULT_CAPTURE_LIMIT) -> None:
        self.client = client
        self.limit = limit
        self._lock = threading.Lock()
        self._capture: SyncCapture | None = None

    @property
    def capturing(self) -> bool:
        return self._capture is not None

    def start(self, prefixes: Sequence[bytes | str]) -> None:
        with self._lock:
            old = self._capture
            buffer = old.buffer if old is not None else CaptureBuffer(self.limit)
            new = SyncCapture(self.client, tracking_prefixes(prefixes), buffer)
            new.start()  # tracking on the new prefixes before the old ones stop
            self._capture = new
        if old is not None:
            old.stop()

    def take(self) -> Captured:
        capture = self._capture
        if capture is None:
            return Captured([], lost=True)
        return capture.take()

    def stop(self) -> None:
        with self._lock:
            capture, self._capture = self._capture, None
        if capture is not None:
            capture.stop()


class AsyncCapture:
    """One capture for the asyncio driver: a reader task on its own connection."""

    def __init__(
        self, client: redis.asyncio.Redis, prefixes: Sequence[bytes], buffer: CaptureBuffer
    ) -> None:
        pool = client.connection_pool
        self.buffer = buffer
        self._command = tracking_command(prefixes)
        self._user_hook = pool.connection_kwargs.get("redis_connect_func")
        settings = _connection_settings(pool, self._on_connect, AsyncRetry(NoBackoff(), 0))
        # Reads wait as long as the keyspace is quiet; the connect (handshake) and the
        # fences are bounded by the client's own timeout instead.
        self._timeout = _fence_timeout(pool)
        settings["socket_timeout"] = None
        self._connection: Any = pool.connection_class(**settings)
        self._ready = False
        self._fences: dict[int, asyncio.Future[None]] = {}
        self._numbers = itertools.count(1)
        self._task: asyncio.Task[None] | None = None
        self._failure: BaseException | None = None

    async def _on_connect(self, connection: Any) -> None:
        if self._user_hook is None:
            await connection.on_connect()
        elif asyncio.iscoroutinefunction(self._user_hook):
            await self._user_hook(connection)
        else:
            self._user_hook(connection)
        parser = connection._parser  # redis-py keeps its push handlers on the parser
        if hasattr(parser, "set_invalidation_push_handler"):
            parser.set_invalidation_push_handler(_on_invalidation_async)
        self.buffer.lose()
        await connection.send_command(*self._command, check_health=False)
        await connection.read_response()

    async def start(self) -> None:
        """Connect with tracking on, then start the reader; raises if the connect fails."""
        try:
            await asyncio.wait_for(self._connection.connect(), self._timeout)
        except BaseException as exc:  # cancelled too: leave no connection behind
            with contextlib.suppress(*_BROKEN):
                await self._connection.disconnect()
            if isinstance(exc, _BROKEN):
                raise _start_failed(exc) from None
            raise
        self._ready = True
        self._task = asyncio.get_running_loop().create_task(self._read(), name="ftctl-capture")

    async def take(self) -> Captured:
        if self._failure is not None:
            raise self._failure
        connection = self._connection
        # Only the reader connects: a send on a closed connection would make redis-py
        # reconnect here, outside the reader.
        if not self._ready or not connection.is_connected:
            self.buffer.lose()
            return self.buffer.take()
        number = next(self._numbers)
        fence = asyncio.get_running_loop().create_future()
        self._fences[number] = fence
        try:
            await connection.send_packed_command([pack([(b"PING", number)])], check_health=False)
            await asyncio.wait_for(fence, self._timeout)
        except TimeoutError:  # before _BROKEN, which it is part of
            self.buffer.lose()
            self._ready = False
            with contextlib.suppress(*_BROKEN):  # the reader sees it and reconnects
                await connection.disconnect(nowait=True)
        except _BROKEN:
            self.buffer.lose()
        finally:
            self._fences.pop(number, None)
        return self.buffer.take()

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._broken()
        with contextlib.suppress(*_BROKEN):
            await self._connection.disconnect()

    async def _read(self) -> None:
        backoff = BACKOFF_FIRST
        connection = self._connection
        try:
            while True:
                try:
                    if not self._ready:
                        await asyncio.wait_for(connection.connect(), self._timeout)
                        self._ready = True
                        backoff = BACKOFF_FIRST
                    self._handle(await connection.read_response(push_request=True))
                except _BROKEN:
                    self._broken()
                    with contextlib.suppress(*_BROKEN):
                        await connection.disconnect(nowait=True)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, BACKOFF_MAX)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # a bug: takes raise it rather than report forever
            self._failure = exc
            self._broken()

    def _handle(self, reply: object) -> None:
        invalidation = _as_invalidation(reply)
        if invalidation is not None:
            if invalidation.keys is None:
                self.buffer.lose()  # FLUSHALL/FLUSHDB: every key changed, none named
            else:
                self.buffer.add(invalidation.keys)
            return
        number = _fence_number(reply)
        if number is None:
            raise redis.ConnectionError(f"unexpected reply on the tracking connection: {reply!r}")
        # Fences are answered in order: this one answers every earlier one too.
        for waiting, fence in list(self._fences.items()):
            if waiting <= number and not fence.done():
                fence.set_result(None)

    def _broken(self) -> None:
        self.buffer.lose()
        self._ready = False
        for fence in self._fences.values():
            if not fence.done():
                fence.set_result(None)


class AsyncCaptures:
    """The asyncio driver's capture slot, shared with its worker drivers."""

    def __init__(self, client: redis.asyncio.Redis, limit: int = DEFAULT_CAPTURE_LIMIT) -> None:
        self.client = client
        self.limit = limit
        self._lock = asyncio.Lock()
        self._capture: AsyncCapture | None = None

    @property
    def capturing(self) -> bool:
        return self._capture is not None

    async def start(self, prefixes: Sequence[bytes | str]) -> None:
        async with self._lock:
            old = self._capture
            buffer = old.buffer if old is not None else CaptureBuffer(self.limit)
            new = AsyncCapture(self.client, tracking_prefixes(prefixes), buffer)
            await new.start()  # tracking on the new prefixes before the old ones stop
            self._capture = new
            if old is not None:
                await old.stop()

    async def take(self) -> Captured:
        capture = self._capture
        if capture is None:
            return Captured([], lost=True)
        return await capture.take()

    async def stop(self) -> None:
        async with self._lock:
            capture, self._capture = self._capture, None
            if capture is not None:
                await capture.stop()
