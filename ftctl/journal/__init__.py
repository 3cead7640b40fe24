"""The crash-proof journal: typed events, framed append-only log, zstd backup segments.

Only this package touches a backup directory. It depends on nothing in ftctl but
``ftctl.errors``.
"""

from __future__ import annotations

from ftctl.journal.events import (
    EVENT_TYPES,
    AnyEvent,
    BatchDone,
    CheckFailed,
    CheckPassed,
    ConflictRecorded,
    Event,
    KeysEnumerated,
    Note,
    RunFinished,
    RunInterrupted,
    RunStarted,
    SegmentRef,
    StepFinished,
    StepSkipped,
    StepStarted,
    decode_event,
    encode_event,
    segment_refs,
)
from ftctl.journal.framing import MAX_RECORD_SIZE, ScanResult, frame, scan
from ftctl.journal.log import Journal
from ftctl.journal.projections import FailedCheck, RunState, StepMarks, StepTiming, project_run
from ftctl.journal.segments import (
    FieldBlock,
    SegmentPayload,
    pack_field,
    present_mask,
    unpack_field,
)

__all__ = [
    "EVENT_TYPES",
    "MAX_RECORD_SIZE",
    "AnyEvent",
    "BatchDone",
    "CheckFailed",
    "CheckPassed",
    "ConflictRecorded",
    "Event",
    "FailedCheck",
    "FieldBlock",
    "Journal",
    "KeysEnumerated",
    "Note",
    "RunFinished",
    "RunInterrupted",
    "RunStarted",
    "RunState",
    "ScanResult",
    "SegmentPayload",
    "SegmentRef",
    "StepFinished",
    "StepMarks",
    "StepSkipped",
    "StepStarted",
    "StepTiming",
    "decode_event",
    "encode_event",
    "frame",
    "pack_field",
    "present_mask",
    "project_run",
    "scan",
    "segment_refs",
    "unpack_field",
]
