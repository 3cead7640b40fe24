"""The asyncio driver: runs the same steps with redis.asyncio.

CPU-heavy ``Offload`` work, journal fsyncs and segment I/O run in worker threads, so the
event loop is never blocked by a conversion or a disk flush.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeVar

import redis
import redis.asyncio

from ftctl.drivers.replies import translate_connection_error, wrap_replies
from ftctl.drivers.sync import EventSink
from ftctl.errors import Interrupted
from ftctl.steps.effects import (
    Commands,
    Effect,
    Offload,
    Parallel,
    ReadSegment,
    Record,
    Sleep,
    Step,
    WriteSegment,
)

R = TypeVar("R")


class AsyncDriver:
    """Executes effects against redis.asyncio clients; ``workers`` tasks run Parallel steps."""

    def __init__(
        self,
        client: redis.asyncio.Redis,
        journal: EventSink | None = None,
        *,
        workers: int = 1,
        connect_worker: Callable[[], Coroutine[Any, Any, redis.asyncio.Redis]] | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.client = client
        self.journal = journal
        self.workers = max(1, workers)
        self.stop = stop
        self._wire = asyncio.Lock()
        """Held while a batch is on the connection: at most one in flight per driver."""
        self._connect_worker = connect_worker
        self._helpers: list[AsyncDriver] = []

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
            case Commands(commands=commands, transaction=transaction):
                pipe = self.client.pipeline(transaction=transaction)
                for command in commands:
                    pipe.execute_command(*command)
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
            case WriteSegment(payload=payload, durable=durable):
                return await asyncio.to_thread(
                    functools.partial(self._journal().write_segment, payload, durable=durable)
                )
            case ReadSegment(ref=ref):
                return await asyncio.to_thread(self._journal().read_segment, ref)
            case Parallel(steps=steps):
                return await self._parallel(steps)

    def _journal(self) -> EventSink:
        if self.journal is None:
            raise RuntimeError("this step uses the journal but the driver has none")
        return self.journal

    async def _drivers(self) -> list[AsyncDriver]:
        if self._connect_worker is None or self.workers == 1:
            return [self]
        while len(self._helpers) < self.workers - 1:
            self._helpers.append(
                AsyncDriver(await self._connect_worker(), self.journal, stop=self.stop)
            )
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

        outcomes = await asyncio.gather(*(work(d) for d in drivers), return_exceptions=True)
        for step in steps:
            step.close()
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        return results

    async def close(self) -> None:
        """Close the extra worker connections (not the caller's client)."""
        for helper in self._helpers:
            await helper.client.aclose()
        self._helpers.clear()
