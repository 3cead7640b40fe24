"""The effects a step yields, and the reply types a driver sends back.

A step is a generator ``Generator[Effect, object, R]``. For each effect the driver sends back:

- ``Commands`` → ``list[object]``: one reply per command, in order. A Redis error reply is
  delivered as a :class:`ReplyError` value, never raised, so a step decides what it means
  (also inside EXEC's array). Replies are raw (bytes, ints, lists; dicts under RESP3): no
  client-side callbacks.
- ``Packed`` → the same, for commands the step encoded itself (see :func:`pack`).
- ``Record`` → ``list[Event]``: the events as appended (sequence number and time stamped),
  after they were fsync'd.
- ``Sleep`` → ``None`` after the pause.
- ``Offload`` → the callable's return value; the async driver runs it in a worker thread so
  CPU-heavy conversion or file I/O never blocks its event loop.
- ``Parallel`` → the sub-steps' return values, in order (see :class:`Parallel`).
- ``Session`` → the sub-step's return value; its ``Commands`` had one connection to
  themselves (see :class:`Session`).
- ``WriteSegment`` → the ``SegmentRef`` of the fsync'd, compressed segment (the driver's
  journal writes it); ``ReadSegment`` → the verified, decoded segment payload;
  ``VerifySegments`` → one line per segment that is missing or damaged.
- ``Progress`` → ``None``; the driver hands it to whoever shows the run's progress.
- ``StartCapture`` / ``StopCapture`` → ``None``; ``TakeCaptured`` → a :class:`Captured`
  (change capture, for online migrations that copy while applications write).
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeAlias, TypeVar

import hiredis

from ftctl.text import wire

Arg: TypeAlias = bytes | str | int | float
Command: TypeAlias = tuple[Arg, ...]

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class ReplyError:
    """An error reply from Redis, delivered to the step as a value."""

    message: str

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True, slots=True)
class Commands:
    """A batch of commands sent as one pipeline (``transaction`` wraps it in MULTI/EXEC)."""

    commands: Sequence[Command]
    transaction: bool = False


@dataclass(frozen=True, slots=True)
class Packed:
    """``count`` commands already encoded by :func:`pack`, sent as they are.

    For hot loops: the encoding happens where it costs nothing (in an ``Offload``, while
    another batch is on the wire), not while the connection waits. Replies as for
    ``Commands``, with error replies inside any array also delivered as values.
    """

    payload: bytes
    count: int


def on_wire(command: Command) -> Command:
    """``command`` with every str argument as the bytes Redis knows it by: a name read from
    Redis that is not UTF-8 was decoded with ``surrogateescape`` and goes back unchanged."""
    return tuple(wire(a) if isinstance(a, str) else a for a in command)


def pack(commands: Iterable[Command]) -> bytes:
    """Commands in the Redis protocol (RESP arrays of bulk strings)."""
    pack_command: Any = hiredis.pack_command
    if not isinstance(commands, list | tuple):
        commands = list(commands)
    try:
        return b"".join([pack_command(command) for command in commands])
    except UnicodeEncodeError:  # rare: a name that is not UTF-8; the hot path stays as it is
        return b"".join([pack_command(on_wire(command)) for command in commands])


@dataclass(frozen=True, slots=True)
class Record:
    """Journal events to append and fsync before the step goes on."""

    events: Sequence[Any]


@dataclass(frozen=True, slots=True)
class Sleep:
    """Pause (polling); the async driver awaits instead of blocking."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Offload(Generic[T]):
    """CPU-bound or file work the async driver runs in a thread; the sync driver inline."""

    fn: Callable[[], T]


@dataclass(frozen=True, slots=True)
class WriteSegment:
    """Compress and write a segment in the journal's directory.

    ``durable=False`` defers its fsync to the next ``Record``, which syncs every pending
    segment first: use it when several segments are written before one event names them.
    """

    payload: Any
    durable: bool = True


@dataclass(frozen=True, slots=True)
class ReadSegment:
    """Read a segment back, verified against the size and crc its event recorded."""

    ref: Any


@dataclass(frozen=True, slots=True)
class VerifySegments:
    """Check that segments are on disk with the size and crc the journal recorded (and that
    they decode); the reply is one line per problem found (empty: all good). Never raises
    for a damaged segment, so a step can refuse before it changes anything."""

    refs: Sequence[Any]


@dataclass(frozen=True, slots=True)
class Parallel:
    """Independent sub-steps (batches over disjoint keys) the driver may run concurrently.

    The driver runs them on up to ``workers`` connections and sends back their results in
    order. If one fails, no further sub-step starts; running ones finish, then it raises.
    """

    steps: Sequence[Generator[Any, Any, Any]]


@dataclass(frozen=True, slots=True)
class Session:
    """A sub-step whose ``Commands`` go out on one connection with nothing in between.

    For connection state that spans round trips (``WATCH`` … ``EXEC``). The sub-step may
    yield ``Packed``, ``Offload`` and ``Commands`` without ``transaction`` only, and must
    leave no state behind (end with ``EXEC``, ``DISCARD`` or ``UNWATCH``); if it fails, the
    driver drops the connection.
    """

    step: Generator[Any, Any, Any]


@dataclass(frozen=True, slots=True)
class Progress:
    """How far the running step has come, for progress lines; nothing is journaled.

    For work that no journal event counts: an index build polled with FT.INFO, checks that
    read documents. ``done`` documents of ``total`` (0: the run's document count);
    ``advance`` instead adds to what the step has done so far, for sub-steps running side
    by side that each know only their share. ``detail``: extra fields for the log line
    (e.g. FT.INFO's ``percent_indexed``). Steps cannot log (they are sans-IO); this is how
    they say they are moving.
    """

    done: int | None = None
    advance: int = 0
    total: int = 0
    detail: Mapping[str, float | int | str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StartCapture:
    """Start capturing the names of keys written under ``prefixes`` (CLIENT TRACKING ON
    BCAST PREFIX … on a connection of the driver's own). Reply: None. Starting again while
    capturing replaces the prefixes.

    Prefixes are bytes or str (UTF-8). An empty prefix, or no prefix at all, captures every
    key; a prefix that another one covers adds nothing. Capture is at most once: writes
    made while the tracking connection is down are not named, only reported through
    :attr:`Captured.lost`. Every writer is seen, the driver's own connections included.
    Sub-steps of a :class:`Parallel` share their driver's capture. When this reply comes
    back the server is tracking: any write it acknowledges later is named by a take.
    """

    prefixes: Sequence[bytes | str]


@dataclass(frozen=True, slots=True)
class TakeCaptured:
    """Reply: a :class:`Captured` with the keys written since the last take (each key once)
    and whether events may have been lost since then.

    A take is a fence: every write the server acknowledged before the take was yielded is
    in this take or an earlier one (or the take reports ``lost``). Taking while not
    capturing replies ``Captured([], lost=True)``.
    """


@dataclass(frozen=True, slots=True)
class Captured:
    """The reply to :class:`TakeCaptured`."""

    keys: list[bytes]
    """Keys written since the last take, each once, in no particular order."""
    lost: bool
    """True when writes may have gone unseen since the last take: the first take after a
    start (writes before tracking began are unknown), after the tracking connection dropped
    (it is reopened and tracking re-enabled), or after the listener fell behind."""


@dataclass(frozen=True, slots=True)
class StopCapture:
    """Stop capturing and close the tracking connection. Reply: None. Harmless when not
    capturing."""


Effect: TypeAlias = (
    Commands
    | Packed
    | Record
    | Sleep
    | Offload[Any]
    | WriteSegment
    | ReadSegment
    | VerifySegments
    | Parallel
    | Session
    | Progress
    | StartCapture
    | TakeCaptured
    | StopCapture
)
Step: TypeAlias = Generator[Effect, Any, R]


def single(step_reply: list[object]) -> object:
    """The only reply of a one-command batch."""
    (reply,) = step_reply
    return reply
