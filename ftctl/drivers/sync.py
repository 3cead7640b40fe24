"""The sync driver: runs a step's effects with redis-py."""

from __future__ import annotations

import time
from typing import Any, Protocol, TypeVar

import redis

from ftctl.drivers.replies import translate_connection_error, wrap_replies
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


class EventSink(Protocol):
    """What a driver needs of a journal: append events, fsync, return them stamped."""

    def append(self, events: Any) -> list[Any]: ...

    def write_segment(self, payload: Any) -> Any: ...

    def read_segment(self, ref: Any) -> Any: ...


class SyncDriver:
    """Executes effects against one redis-py client (and one journal, when the step records)."""

    def __init__(self, client: redis.Redis, journal: EventSink | None = None) -> None:
        self.client = client
        self.journal = journal

    def run(self, step: Step[R]) -> R:
        """Drive ``step`` to completion and return its value."""
        reply: object = None
        while True:
            try:
                effect = step.send(reply)
            except StopIteration as done:
                value: R = done.value
                return value
            try:
                reply = self.execute(effect)
            except BaseException:
                step.close()
                raise

    def execute(self, effect: Effect) -> object:
        match effect:
            case Commands(commands=commands, transaction=transaction):
                pipe = self.client.pipeline(transaction=transaction)
                for command in commands:
                    pipe.execute_command(*command)
                try:
                    replies = pipe.execute(raise_on_error=False)
                except (redis.ConnectionError, redis.TimeoutError) as exc:
                    raise translate_connection_error(exc) from None
                return wrap_replies(replies)
            case Record(events=events):
                return self._journal().append(events)
            case Sleep(seconds=seconds):
                time.sleep(seconds)
                return None
            case Offload(fn=fn):
                return fn()
            case WriteSegment(payload=payload):
                return self._journal().write_segment(payload)
            case ReadSegment(ref=ref):
                return self._journal().read_segment(ref)

    def _journal(self) -> EventSink:
        if self.journal is None:
            raise RuntimeError("this step uses the journal but the driver has none")
        return self.journal
