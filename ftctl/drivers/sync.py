"""The sync driver: runs a step's effects with redis-py (threads for ``workers > 1``)."""

from __future__ import annotations

import contextvars
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, TypeVar

import redis

from ftctl.drivers import wire
from ftctl.drivers.capture import DEFAULT_CAPTURE_LIMIT, SyncCaptures
from ftctl.drivers.gil import responsive_threads
from ftctl.drivers.replies import translate_connection_error, wrap_replies
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

ProgressSink = Callable[[Progress], None]
"""Where a driver hands the :class:`Progress` effects steps yield (the run's tap)."""


class EventSink(Protocol):
    """What a driver needs of a journal: append events (fsync'd), write and read segments."""

    def append(self, events: Any) -> list[Any]: ...

    def write_segment(self, payload: Any, *, durable: bool = True) -> Any: ...

    def read_segment(self, ref: Any) -> Any: ...

    def verify_segments(self, refs: Any) -> list[str]: ...


class SyncDriver:
    """Executes effects against redis-py clients and one journal.

    ``workers`` connections run the sub-steps of a :class:`Parallel` effect in threads; the
    extra connections come from ``connect_worker`` (made on first use, closed by ``close``).
    Once ``stop`` is set, a :class:`Sleep` raises :class:`Interrupted` instead of sleeping.
    :class:`Progress` effects go to ``progress`` (dropped without one).
    A change capture (:class:`StartCapture`) runs a daemon thread on a connection of its own,
    made with ``client``'s settings; it holds at most ``capture_limit`` keys between takes,
    is shared with the worker drivers and is stopped by ``close``.
    """

    def __init__(
        self,
        client: redis.Redis,
        journal: EventSink | None = None,
        *,
        workers: int = 1,
        connect_worker: Callable[[], redis.Redis] | None = None,
        stop: threading.Event | None = None,
        progress: ProgressSink | None = None,
        capture_limit: int = DEFAULT_CAPTURE_LIMIT,
    ) -> None:
        self.client = client
        self.journal = journal
        self.workers = max(1, workers)
        self.stop = stop
        self.progress = progress
        self._connect_worker = connect_worker
        self._helpers: list[SyncDriver] = []
        self._wire = threading.RLock()
        """Held while a batch (or a whole Session) is on the connection: at most one in
        flight per driver."""
        self._session = threading.local()
        """``.connection``: the connection the current thread's Session holds, if any."""
        self._captures = SyncCaptures(client, capture_limit)
        """Shared with the worker drivers; stopped when this driver is closed or collected."""
        self._owns_captures = True
        weakref.finalize(self, self._captures.stop)

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
            case Commands(commands=commands, transaction=False):
                with self._wire:
                    return self._exchange(pack(commands), len(commands))
            case Packed(payload=payload, count=count):
                with self._wire:
                    return self._exchange(payload, count)
            case Commands(commands=commands):  # transaction=True
                pipe = self.client.pipeline(transaction=True)
                for command in commands:
                    pipe.execute_command(*on_wire(command))
                try:
                    with self._wire:
                        replies = pipe.execute(raise_on_error=False)
                except (redis.ConnectionError, redis.TimeoutError) as exc:
                    raise translate_connection_error(exc) from None
                return wrap_replies(replies)
            case Record(events=events):
                return self._journal().append(events)
            case Sleep(seconds=seconds):
                # A poll (wait for the index) may last hours: Ctrl+C must not wait for it.
                if self.stop is None:
                    time.sleep(seconds)
                elif self.stop.is_set() or self.stop.wait(seconds):
                    raise Interrupted("interrupted while waiting")
                return None
            case Offload(fn=fn):
                return fn()
            case Progress():
                if self.progress is not None:
                    self.progress(effect)
                return None
            case WriteSegment(payload=payload, durable=durable):
                return self._journal().write_segment(payload, durable=durable)
            case ReadSegment(ref=ref):
                return self._journal().read_segment(ref)
            case VerifySegments(refs=refs):
                return self._journal().verify_segments(refs)
            case Parallel(steps=steps):
                return self._parallel(steps)
            case StartCapture(prefixes=prefixes):
                self._captures.start(prefixes)
                return None
            case TakeCaptured():
                return self._captures.take()
            case StopCapture():
                self._captures.stop()
                return None
            case Session(step=sub):
                with self._wire:
                    connection = self._session_connection()
                    self._session.connection = connection
                    clean = False
                    try:
                        value = self.run(sub)
                        clean = True
                        return value
                    finally:
                        self._session.connection = None
                        self._checkin(connection, clean=clean)

    def _exchange(self, payload: bytes, count: int) -> list[object]:
        """Send encoded commands and read one raw reply each (no pipeline bookkeeping)."""
        if not count:
            return []
        held = getattr(self._session, "connection", None)
        connection = held
        clean = False
        try:
            if connection is None:
                connection = self._checkout()
            connection.send_packed_command([payload], False)
            replies = wire.read_replies(connection, count)
            clean = True
            return replies
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise translate_connection_error(exc) from None
        finally:
            if held is None and connection is not None:
                self._checkin(connection, clean=clean)

    def _session_connection(self) -> Any:
        try:
            return self._checkout()
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise translate_connection_error(exc) from None

    def _checkout(self) -> Any:
        single = self.client.connection
        return single if single is not None else self.client.connection_pool.get_connection()

    def _checkin(self, connection: Any, *, clean: bool) -> None:
        """Give the connection back; one left mid-exchange (unread replies, WATCH/MULTI
        state) is closed first, so the next user starts afresh."""
        if not clean:
            connection.disconnect()
        if connection is not self.client.connection:
            self.client.connection_pool.release(connection)

    def _journal(self) -> EventSink:
        if self.journal is None:
            raise RuntimeError("this step uses the journal but the driver has none")
        return self.journal

    def _drivers(self) -> list[SyncDriver]:
        if self._connect_worker is None or self.workers == 1:
            return [self]
        while len(self._helpers) < self.workers - 1:
            helper = SyncDriver(
                self._connect_worker(), self.journal, stop=self.stop, progress=self.progress
            )
            helper._captures, helper._owns_captures = self._captures, False
            self._helpers.append(helper)
        return [self, *self._helpers]

    def _parallel(self, steps: Sequence[Step[Any]]) -> list[Any]:
        drivers = self._drivers()
        if len(steps) < 2:
            return [self.run(step) for step in steps]
        if len(drivers) == 1:
            # One connection, two threads: one batch's conversion and journal fsync overlap
            # the other's round trip; the connection itself is used by one at a time.
            drivers = [self, self]
        results: list[Any] = [None] * len(steps)
        lock = threading.Lock()
        position = iter(range(len(steps)))
        failed = threading.Event()

        def work(driver: SyncDriver) -> None:
            while not failed.is_set():
                with lock:
                    index = next(position, None)
                if index is None:
                    return
                try:
                    results[index] = driver.run(steps[index])
                except BaseException:
                    failed.set()
                    raise

        with responsive_threads(), ThreadPoolExecutor(max_workers=len(drivers)) as pool:
            # Each thread runs in a copy of the caller's context: log lines keep the run's
            # bound fields (index, run_id).
            futures = [pool.submit(contextvars.copy_context().run, work, d) for d in drivers]
            errors = [f.exception() for f in futures]
        for step in steps:
            step.close()
        for error in errors:
            if error is not None:
                raise error
        return results

    def close(self) -> None:
        """Stop the change capture and close the extra worker connections (not the
        caller's client)."""
        if self._owns_captures:
            self._captures.stop()
        for helper in self._helpers:
            helper.client.close()
        self._helpers.clear()
