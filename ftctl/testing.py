"""Drive steps offline with canned replies: for ftctl's own tests and for users'.

>>> scripted = ScriptedRedis([("PING", b"PONG")])
>>> def step():
...     (pong,) = yield Commands([("PING",)])
...     return pong
>>> scripted.run(step())
b'PONG'
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import hiredis

from ftctl.steps.effects import (
    Captured,
    Command,
    Commands,
    Offload,
    Packed,
    Parallel,
    Paused,
    Progress,
    ReadSegment,
    Record,
    Session,
    Sleep,
    StartCapture,
    Step,
    StopCapture,
    TakeCaptured,
    Timed,
    Timing,
    VerifySegments,
    WriteSegment,
)

R = TypeVar("R")
Reply = object
Responder = Callable[[Command], Reply]


def _text(arg: object) -> str:
    return arg.decode(errors="replace") if isinstance(arg, bytes) else str(arg)


@dataclass
class ScriptedRedis:
    """Answers commands from a script of ``(pattern, reply)`` pairs, in order.

    ``pattern`` is a glob matched against the command joined by spaces (``"FT.INFO *"``);
    ``reply`` is the raw reply, or a callable taking the command. Every command sent and
    every event recorded is kept in ``sent`` and ``recorded`` for assertions (``Progress``
    effects in ``progressed``). A command that does not match the next scripted pattern
    fails the test with both shown.

    Change capture: each ``TakeCaptured`` pops the next :class:`Captured` from ``captured``;
    once that is empty it answers as a quiet keyspace would: no keys, ``lost`` on the first
    take after a ``StartCapture`` (and whenever nothing is capturing), not after. Every
    ``StartCapture`` and ``StopCapture`` is kept in ``captures``, every reply to a take in
    ``taken``.

    Time: a ``Timed`` batch takes the next of ``timings`` seconds (0.0 once they run out)
    on a clock that ``Sleep`` also moves (``clock``, from 0). ``Paused`` pops the next of
    ``pauses`` (False once they run out).
    """

    script: list[tuple[str, Reply | Responder]]
    sent: list[Command] = field(default_factory=list)
    recorded: list[Any] = field(default_factory=list)
    slept: list[float] = field(default_factory=list)
    segments: list[Any] = field(default_factory=list)
    """Segments written by the step; a ``ReadSegment`` ref is an index into this list."""
    progressed: list[Progress] = field(default_factory=list)
    captured: list[Captured] = field(default_factory=list)
    """Replies for the next takes, in order."""
    captures: list[StartCapture | StopCapture] = field(default_factory=list)
    taken: list[Captured] = field(default_factory=list)
    timings: list[float] = field(default_factory=list)
    """Round trips (seconds) of the next ``Timed`` batches, in order."""
    pauses: list[bool] = field(default_factory=list)
    """Replies to the next ``Paused`` effects, in order."""
    clock: float = 0.0
    """The scripted monotonic clock: moved by every ``Sleep`` and ``Timed`` batch."""
    _capturing: bool = field(default=False, init=False, repr=False)
    _taken_since_start: bool = field(default=False, init=False, repr=False)

    def reply_to(self, command: Command) -> Reply:
        self.sent.append(command)
        text = " ".join(_text(a) for a in command)
        if not self.script:
            raise AssertionError(f"unscripted command: {text}")
        pattern, reply = self.script.pop(0)
        if not fnmatch.fnmatchcase(text, pattern):
            raise AssertionError(f"expected a command like {pattern!r}, got {text!r}")
        return reply(command) if callable(reply) else reply

    def run(self, step: Step[R]) -> R:
        """Drive ``step`` to completion against the script and return its value."""
        reply: object = None
        while True:
            try:
                effect = step.send(reply)
            except StopIteration as done:
                value: R = done.value
                return value
            match effect:
                case Commands(commands=commands):
                    reply = [self.reply_to(tuple(c)) for c in commands]
                case Packed(payload=payload, count=count):
                    reply = [self.reply_to(c) for c in unpack(payload, count)]
                case Record(events=events):
                    self.recorded.extend(events)
                    reply = list(events)
                case Sleep(seconds=seconds):
                    self.slept.append(seconds)
                    self.clock += seconds
                    reply = None
                case Timed(commands=Commands(commands=commands)):
                    replies = [self.reply_to(tuple(c)) for c in commands]
                    seconds = self.timings.pop(0) if self.timings else 0.0
                    self.clock += seconds
                    reply = Timing(replies, seconds, self.clock)
                case Paused():
                    reply = self.pauses.pop(0) if self.pauses else False
                case Progress():
                    self.progressed.append(effect)
                    reply = None
                case Offload(fn=fn):
                    reply = fn()
                case WriteSegment(payload=payload):
                    self.segments.append(payload)
                    reply = len(self.segments) - 1
                case ReadSegment(ref=ref):
                    reply = self.segments[ref]
                case VerifySegments(refs=refs):
                    reply = [f"segment {r} is missing" for r in refs if r >= len(self.segments)]
                case Session(step=sub):
                    reply = self.run(sub)
                case Parallel(steps=steps):
                    reply = [self.run(sub) for sub in steps]  # in order: the script is one list
                case StartCapture() | StopCapture():
                    self.captures.append(effect)
                    self._capturing = isinstance(effect, StartCapture)
                    self._taken_since_start = False
                    reply = None
                case TakeCaptured():
                    reply = self.take()

    def take(self) -> Captured:
        """The reply to a ``TakeCaptured``: the next scripted one, else a quiet keyspace's."""
        if self.captured:
            reply = self.captured.pop(0)
        else:
            reply = Captured([], lost=not (self._capturing and self._taken_since_start))
        self._taken_since_start = True
        self.taken.append(reply)
        return reply

    def assert_done(self) -> None:
        """Every scripted reply (and every scripted take) was used."""
        if self.script:
            raise AssertionError(f"scripted replies left unused: {[p for p, _ in self.script]}")
        if self.captured:
            raise AssertionError(f"scripted takes left unused: {self.captured}")


def unpack(payload: bytes, count: int) -> list[Command]:
    """The ``count`` commands a :class:`Packed` payload encodes."""
    reader = hiredis.Reader()
    reader.feed(payload)
    commands: list[Command] = []
    for _ in range(count):
        command = reader.gets()
        if not isinstance(command, list):
            raise AssertionError(f"payload holds fewer than {count} commands")
        commands.append(tuple(command))
    if reader.gets() is not False:
        raise AssertionError(f"payload holds more than {count} commands")
    return commands


def commands_matching(sent: Iterable[Command], pattern: str) -> Sequence[Command]:
    """The sent commands whose space-joined text matches a glob."""
    return [c for c in sent if fnmatch.fnmatchcase(" ".join(_text(a) for a in c), pattern)]
