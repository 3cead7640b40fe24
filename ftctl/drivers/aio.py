"""The asyncio driver: runs the same steps with redis.asyncio.

CPU-heavy ``Offload`` work, journal fsyncs and segment I/O run in worker threads, so the
event loop is never blocked by a conversion or a disk flush.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import threading
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeVar

import redis
import redis.asyncio

from ftctl.drivers import wire
from ftctl.drivers.capture import DEFAULT_CAPTURE_LIMIT, AsyncCaptures
from ftctl.drivers.gil import responsive_threads
from ftctl.drivers.replies import translate_connection_error, wrap_replies
from ftctl.drivers.sync import EventSink, ProgressSink
from ftctl.errors import Interrupted
from ftctl.steps.effects import (
    Commands,
    Effect,
    Offload,
    Packed,
    Parallel,
    Progress,
    ReadSegment,
    Record,
    Session,
    Sleep,
    StartCapture,
    Step,
    StopCapture,
    TakeCaptured,
    VerifySegments,
    WriteSegment,
    on_wire,
    pack,
)

R = TypeVar("R")


class AsyncDriver:
    """Executes effects against redis.asyncio clients; ``workers`` tasks run Parallel steps.

    :class:`Progress` effects go to ``progress`` (dropped without one).
    A change capture (:class:`StartCapture`) runs a task reading a connection of its own,
    made with ``client``'s settings; it holds at most ``capture_limit`` keys between takes,
    is shared with the worker drivers and is stopped by ``close``.
    """

    def __init__(
        self,
        client: redis.asyncio.Redis,
        journal: EventSink | None = None,
        *,
        workers: int = 1,
        connect_worker: Callable[[], Coroutine[Any, Any, redis.asyncio.Redis]] | None = None,
        stop: threading.Event | None = None,
        progress: ProgressSink | None = None,
        capture_limit: int = DEFAULT_CAPTURE_LIMIT,
    ) -> None:
        self.client = client
        self.journal = journal
        self.workers = max(1, workers)
        self.stop = stop
        self.progress = progress
        self._wire = asyncio.Lock()
        """Held while a batch (or a whole Session) is on the connection: at most one in
        flight per driver."""
        self._session: contextvars.ContextVar[Any] = contextvars.ContextVar(
            "ftctl_session", default=None
        )
        """The connection the current task's Session holds, if any (the lock is held)."""
        self._connect_worker = connect_worker
        self._helpers: list[AsyncDriver] = []
        self._captures = AsyncCaptures(client, capture_limit)
        """Shared with the worker drivers; stopped when this driver is closed."""
        self._owns_captures = True

    async def run(self, step: Step[R]) -> R:
        """Drive ``step`` to completion and return its value."""
        reply: object = None
        while True:
            try:
                effect = step.send(reply)
            except StopIteration as done:
                value: R = done.value
                return value
            try:
                reply = await self.execute(effect)
            except BaseException:
                step.close()
                raise

    async def execute(self, effect: Effect) -> object:
        match effect:
            case Commands(commands=commands, transaction=False):
                return await self._exchange(pack(commands), len(commands))
            case Packed(payload=payload, count=count):
                return await self._exchange(payload, count)
            case Commands(commands=commands):  # transaction=True
                pipe = self.client.pipeline(transaction=True)
                for command in commands:
                    pipe.execute_command(*on_wire(command))
                try:
                    async with self._wire:
                        replies = await pipe.execute(raise_on_error=False)
                except (redis.ConnectionError, redis.TimeoutError) as exc:
                    raise translate_connection_error(exc) from None
                return wrap_replies(replies)
            case Record(events=events):
                return await asyncio.to_thread(self._journal().append, events)
            case Sleep(seconds=seconds):
                # A poll (wait for the index) may last hours: Ctrl+C must not wait for it.
                if self.stop is not None and self.stop.is_set():
                    raise Interrupted("interrupted while waiting")
                await asyncio.sleep(seconds)
                return None
            case Offload(fn=fn):
                return await asyncio.to_thread(fn)
            case Progress():
                if self.progress is not None:
                    self.progress(effect)
                return None
            case WriteSegment(payload=payload, durable=durable):
                return await asyncio.to_thread(
                    functools.partial(self._journal().write_segment, payload, durable=durable)
                )
            case ReadSegment(ref=ref):
                return await asyncio.to_thread(self._journal().read_segment, ref)
            case VerifySegments(refs=refs):
                return await asyncio.to_thread(self._journal().verify_segments, refs)
            case Parallel(steps=steps):
                return await self._parallel(steps)
            case StartCapture(prefixes=prefixes):
                await self._captures.start(prefixes)
                return None
            case TakeCaptured():
                return await self._captures.take()
            case StopCapture():
                await self._captures.stop()
                return None
            case Session(step=sub):
                async with self._wire:
                    connection = await self._session_connection()
                    token = self._session.set(connection)
                    clean = False
                    try:
                        value = await self.run(sub)
                        clean = True
                        return value
                    finally:
                        self._session.reset(token)
                        await self._checkin(connection, clean=clean)

    async def _exchange(self, payload: bytes, count: int) -> list[object]:
        """Send encoded commands and read one raw reply each (no pipeline bookkeeping)."""
        if not count:
            return []
        held = self._session.get()
        if held is not None:
            return await self._on(held, payload, count)
        async with self._wire:
            connection = None
            clean = False
            try:
                connection = await self._checkout()
                replies = await self._on(connection, payload, count)
                clean = True
                return replies
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                raise translate_connection_error(exc) from None
            finally:
                if connection is not None:
                    await self._checkin(connection, clean=clean)

    @staticmethod
    async def _on(connection: Any, payload: bytes, count: int) -> list[object]:
        try:
            await connection.send_packed_command([payload], False)
            return await wire.read_replies_async(connection, count)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise translate_connection_error(exc) from None

    async def _session_connection(self) -> Any:
        try:
            return await self._checkout()
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise translate_connection_error(exc) from None

    async def _checkout(self) -> Any:
        single = self.client.connection
        if single is not None:
            return single
        return await self.client.connection_pool.get_connection()

    async def _checkin(self, connection: Any, *, clean: bool) -> None:
        """Give the connection back; one left mid-exchange (unread replies, WATCH/MULTI
        state) is closed first, so the next user starts afresh."""
        if not clean:
            await connection.disconnect()
        if connection is not self.client.connection:
            await self.client.connection_pool.release(connection)

    def _journal(self) -> EventSink:
        if self.journal is None:
            raise RuntimeError("this step uses the journal but the driver has none")
        return self.journal

    async def _drivers(self) -> list[AsyncDriver]:
        if self._connect_worker is None or self.workers == 1:
            return [self]
        while len(self._helpers) < self.workers - 1:
            helper = AsyncDriver(
                await self._connect_worker(), self.journal, stop=self.stop, progress=self.progress
            )
            helper._captures, helper._owns_captures = self._captures, False
            self._helpers.append(helper)
        return [self, *self._helpers]

    async def _parallel(self, steps: Sequence[Step[Any]]) -> list[Any]:
        drivers = await self._drivers()
        if len(drivers) == 1 and len(steps) > 1:
            # One connection, two tasks: one batch's offloaded conversion and fsync overlap
            # the other's round trip; the connection itself is used by one at a time.
            drivers = [self, self]
        results: list[Any] = [None] * len(steps)
        position = iter(range(len(steps)))
        failed = asyncio.Event()

        async def work(driver: AsyncDriver) -> None:
            while not failed.is_set():
                index = next(position, None)
                if index is None:
                    return
                try:
                    results[index] = await driver.run(steps[index])
                except BaseException:
                    failed.set()
                    raise

        with responsive_threads():
            outcomes = await asyncio.gather(*(work(d) for d in drivers), return_exceptions=True)
        for step in steps:
            step.close()
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        return results

    async def close(self) -> None:
        """Stop the change capture and close the extra worker connections (not the
        caller's client)."""
        if self._owns_captures:
            await self._captures.stop()
        for helper in self._helpers:
            await helper.client.aclose()
        self._helpers.clear()
