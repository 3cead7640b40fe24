"""The asyncio driver: runs the same steps with redis.asyncio.

CPU-heavy ``Offload`` work and journal fsyncs run in worker threads, so the event loop is
never blocked by a conversion or a disk flush.
"""

from __future__ import annotations

import asyncio
from typing import TypeVar

import redis
import redis.asyncio

from ftctl.drivers.replies import translate_connection_error, wrap_replies
from ftctl.drivers.sync import EventSink
from ftctl.steps.effects import (
    Commands,
    Effect,
    Offload,
    ReadSegment,
    Record,
    Sleep,
    Step,
    WriteSegment,
)

R = TypeVar("R")


class AsyncDriver:
    """Executes effects against one redis.asyncio client (and one journal)."""

    def __init__(self, client: redis.asyncio.Redis, journal: EventSink | None = None) -> None:
        self.client = client
        self.journal = journal

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
                    replies = await pipe.execute(raise_on_error=False)
                except (redis.ConnectionError, redis.TimeoutError) as exc:
                    raise translate_connection_error(exc) from None
                return wrap_replies(replies)
            case Record(events=events):
                return await asyncio.to_thread(self._journal().append, events)
            case Sleep(seconds=seconds):
                await asyncio.sleep(seconds)
                return None
            case Offload(fn=fn):
                return await asyncio.to_thread(fn)
            case WriteSegment(payload=payload):
                return await asyncio.to_thread(self._journal().write_segment, payload)
            case ReadSegment(ref=ref):
                return await asyncio.to_thread(self._journal().read_segment, ref)

    def _journal(self) -> EventSink:
        if self.journal is None:
            raise RuntimeError("this step uses the journal but the driver has none")
        return self.journal
