"""The journal's events: msgspec Structs in one tagged union with explicit, stable tags.

Rules that keep old journals readable (msgspec's schema evolution):

- every concrete event has an explicit ``tag="snake_name"``; renaming the class is free,
  changing the tag is not;
- fields added later always have a default;
- adding an event is one class here plus one entry in :data:`AnyEvent`.

``seq`` and ``at`` are stamped by :meth:`ftctl.journal.Journal.append`; callers leave them at
their defaults.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeAlias

import msgspec

Scalar: TypeAlias = str | int | float | bool


class SegmentRef(msgspec.Struct, frozen=True, kw_only=True):
    """A backup segment as the journal knows it: number, and size + crc32 of the file."""

    number: int
    size: int
    crc32: int

    @property
    def filename(self) -> str:
        """The segment's file name inside ``segments/`` (``000012.zst``)."""
        return f"{self.number:06d}.zst"


class Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    """Base of every journal event; never appended itself (it has no stable tag)."""

    seq: int = 0
    at: datetime | None = None


class RunStarted(Event, frozen=True, kw_only=True, tag="run_started"):
    """First event of a journal (and of every later run on it): the whole plan and its digest."""

    run_id: str
    kind: str
    """``apply`` | ``rollback`` | ``batch``."""
    index_name: str
    plan_yaml: str
    plan_sha256: str
    mode: str
    options: dict[str, Scalar] = msgspec.field(default_factory=dict)
    redis_url: str = ""
    """Already masked: never holds a password."""
    ftctl_version: str = ""


class StepStarted(Event, frozen=True, kw_only=True, tag="step_started"):
    """A step began (or resumed)."""

    step: str


class StepFinished(Event, frozen=True, kw_only=True, tag="step_finished"):
    """A step completed; ``counts`` are its totals."""

    step: str
    counts: dict[str, int] = msgspec.field(default_factory=dict)


class StepSkipped(Event, frozen=True, kw_only=True, tag="step_skipped"):
    """A step was not needed by the plan."""

    step: str
    reason: str


class BatchDone(Event, frozen=True, kw_only=True, tag="batch_done"):
    """One batch of a step is durably done (its segment, if any, is written and verified)."""

    step: str
    batch: int
    keys: int
    segment: SegmentRef | None = None
    counts: dict[str, int] = msgspec.field(default_factory=dict)


class KeysEnumerated(Event, frozen=True, kw_only=True, tag="keys_enumerated"):
    """A batch of the source index's keys was streamed into a segment."""

    segment: SegmentRef
    batch: int
    keys: int


class CheckPassed(Event, frozen=True, kw_only=True, tag="check_passed"):
    """A validation or preflight check held."""

    check: str
    detail: str = ""


class CheckFailed(Event, frozen=True, kw_only=True, tag="check_failed"):
    """A validation or preflight check failed; ``count`` is how many items failed it."""

    check: str
    detail: str
    count: int = 0


class ConflictRecorded(Event, frozen=True, kw_only=True, tag="conflict_recorded"):
    """Keys written concurrently during the migration that were deliberately not overwritten."""

    step: str
    keys: list[bytes]
    reason: str


class Note(Event, frozen=True, kw_only=True, tag="note"):
    """Free-form information for the report (a warning, a server fact)."""

    message: str
    data: dict[str, Scalar] = msgspec.field(default_factory=dict)


class Interrupted(Event, frozen=True, kw_only=True, tag="interrupted"):
    """The run stopped at a batch boundary (Ctrl+C or a signal); resume continues from here."""

    step: str
    batch: int | None = None


class RunFinished(Event, frozen=True, kw_only=True, tag="run_finished"):
    """The run ended: ``succeeded`` | ``failed`` | ``rolled_back``."""

    result: str
    error: str = ""


# Batch events live with their projections; imported here, after the classes they build on.
from ftctl.journal.batch import (  # noqa: E402
    BatchIndexFinished,
    BatchIndexInterrupted,
    BatchIndexStarted,
    BatchStarted,
)
from ftctl.journal.online import (  # noqa: E402
    CutoverApproved,
    CutoverDone,
    ShadowCreated,
    ShadowReady,
)

AnyEvent: TypeAlias = (
    RunStarted
    | StepStarted
    | StepFinished
    | StepSkipped
    | BatchDone
    | KeysEnumerated
    | CheckPassed
    | CheckFailed
    | ConflictRecorded
    | Note
    | Interrupted
    | RunFinished
    | BatchStarted
    | BatchIndexStarted
    | BatchIndexFinished
    | BatchIndexInterrupted
    | ShadowCreated
    | ShadowReady
    | CutoverApproved
    | CutoverDone
)

EVENT_TYPES: tuple[type[Event], ...] = AnyEvent.__args__
"""Every concrete event class, in union order."""

_encoder = msgspec.msgpack.Encoder()
_decoder: msgspec.msgpack.Decoder[AnyEvent] = msgspec.msgpack.Decoder(AnyEvent)


def encode_event(event: Event) -> bytes:
    """The msgpack bytes of one concrete event (its tag included)."""
    if type(event) not in EVENT_TYPES:
        raise TypeError(f"{type(event).__name__} is not a journal event in AnyEvent")
    return _encoder.encode(event)


def decode_event(data: bytes | memoryview) -> AnyEvent:
    """Decode one event; raises ``msgspec.DecodeError`` / ``ValidationError`` on bad input."""
    return _decoder.decode(data)


def segment_refs(event: Event) -> list[SegmentRef]:
    """Every segment an event references (found by type, so new events need no change here)."""
    refs: list[SegmentRef] = []
    for name in event.__struct_fields__:
        value: Any = getattr(event, name)
        if isinstance(value, SegmentRef):
            refs.append(value)
        elif isinstance(value, list | tuple):
            refs.extend(item for item in value if isinstance(item, SegmentRef))
    return refs
