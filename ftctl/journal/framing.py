"""Record framing of ``journal.log``: ``u32 length | u32 crc32 | payload`` (little-endian).

Pure functions over bytes. :func:`scan` tells a torn tail (a crash in the middle of the last
append: cut it off and go on) from damage (refuse: never auto-repair history). The rules:

- a bad record followed by a valid one is damage, wherever it is (first record included);
- the last record is a *torn tail* only when it is what an interrupted append leaves: an
  incomplete header, a payload that ends before its length says (and whose bytes do not
  match the checksum, so the length field itself is intact), or zeros from a 512-byte
  boundary to the end of the file (blocks allocated but never written);
- a last record that is complete (its length fits the file) but fails its checksum, or has
  an impossible length, is damage: a crash cannot produce it.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from ftctl.errors import JournalCorruptError

HEADER = struct.Struct("<II")
HEADER_SIZE = HEADER.size
MAX_RECORD_SIZE = 64 * 1024 * 1024
"""Sanity bound: a length field above this is damage, not a record."""

SECTOR = 512
"""Granularity at which a crash can leave an append partly written (zeros after it)."""

CORRUPT_HINT = (
    "the journal is damaged and ftctl will not guess what it said; nothing was changed: "
    "restore journal.log from a copy, or start over with a new --backup-dir"
)


@dataclass(frozen=True, slots=True)
class ScanResult:
    """What :func:`scan` found: the intact records and where the intact prefix ends."""

    records: list[bytes]
    offsets: list[int]
    """Byte offset of each record's header."""
    good_length: int
    """Length of the intact prefix; everything after it is the torn tail."""
    tail_problem: str | None
    """Why the tail was cut (``None`` when the data ended cleanly)."""


def frame(payload: bytes) -> bytes:
    """One record: header (length, crc32 of payload) followed by the payload."""
    if not payload:
        raise ValueError("a journal record cannot be empty")
    if len(payload) > MAX_RECORD_SIZE:
        raise ValueError(f"record of {len(payload)} bytes exceeds {MAX_RECORD_SIZE}")
    return HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def _frame_at(view: memoryview, pos: int) -> int | None:
    """End offset of a valid frame starting at ``pos``, or ``None``.

    Empty payloads never count: a zero-filled tail (what some filesystems leave after a
    crash) would otherwise look like a run of valid empty records.
    """
    end_of_header = pos + HEADER_SIZE
    if end_of_header > len(view):
        return None
    length: int
    crc: int
    length, crc = HEADER.unpack_from(view, pos)
    end = end_of_header + length
    if length == 0 or length > MAX_RECORD_SIZE or end > len(view):
        return None
    if zlib.crc32(view[end_of_header:end]) != crc:
        return None
    return end


def _problem_at(view: memoryview, pos: int) -> str:
    """Why the record at ``pos`` is not valid (for the report)."""
    remaining = len(view) - pos
    if remaining < HEADER_SIZE:
        return f"incomplete record header at byte {pos} ({remaining} of {HEADER_SIZE} bytes)"
    length: int = HEADER.unpack_from(view, pos)[0]
    if length == 0 or length > MAX_RECORD_SIZE:
        return f"impossible record length {length} at byte {pos}"
    if pos + HEADER_SIZE + length > len(view):
        present = remaining - HEADER_SIZE
        return f"incomplete record at byte {pos} ({present} of {length} payload bytes)"
    return f"record at byte {pos} has a bad checksum"


def _damage_at_tail(view: memoryview, pos: int) -> str | None:
    """Why the bad last record at ``pos`` cannot be an interrupted append (None: it is one,
    a torn tail to cut)."""
    remaining = len(view) - pos
    if remaining < HEADER_SIZE:
        return None
    # Sectors the file system allocated but the crash never wrote read back as zeros: the
    # record is torn when everything from some sector boundary inside it to the end is zero.
    zeros_start = pos + len(bytes(view[pos:]).rstrip(b"\x00"))
    boundary = max(-(-zeros_start // SECTOR) * SECTOR, pos)
    if zeros_start == pos or boundary < len(view):
        return None
    length: int
    crc: int
    length, crc = HEADER.unpack_from(view, pos)
    if length == 0 or length > MAX_RECORD_SIZE:
        return "no append writes such a length"
    if pos + HEADER_SIZE + length <= len(view):
        return "the record is complete, so no crash left it half-written"
    if zlib.crc32(view[pos + HEADER_SIZE :]) == crc:
        return (
            f"its length field says {length} bytes but the {remaining - HEADER_SIZE} bytes "
            "that follow are the whole record (their checksum matches)"
        )
    return None


def _valid_frame_after(view: memoryview, pos: int) -> int | None:
    """Offset of the first valid frame that starts after ``pos``, or ``None``.

    The damaged record's own length is tried first (a flipped payload byte keeps it right),
    then every later offset (its length field may be what was damaged).
    """
    if len(view) - pos >= HEADER_SIZE:
        length: int = HEADER.unpack_from(view, pos)[0]
        natural = pos + HEADER_SIZE + length
        if length <= MAX_RECORD_SIZE and _frame_at(view, natural) is not None:
            return natural
    for candidate in range(pos + 1, len(view) - HEADER_SIZE):
        if _frame_at(view, candidate) is not None:
            return candidate
    return None


def scan(data: bytes, *, source: str = "journal.log") -> ScanResult:
    """Split ``data`` into records, cutting a torn tail and refusing damage.

    A torn tail (see the module docstring) ends the result, which says why in
    ``tail_problem``. Damage anywhere else raises :class:`JournalCorruptError` naming
    ``source``, the record number and its byte offset, and the problem.
    """
    view = memoryview(data)
    records: list[bytes] = []
    offsets: list[int] = []
    pos = 0
    while pos < len(view):
        end = _frame_at(view, pos)
        if end is None:
            number = len(records) + 1
            problem = _problem_at(view, pos)
            later = _valid_frame_after(view, pos)
            if later is not None:
                raise JournalCorruptError(
                    f"{source} is damaged at byte {pos} (record {number}): {problem}, "
                    f"but a valid record follows at byte {later}",
                    CORRUPT_HINT,
                )
            damage = _damage_at_tail(view, pos)
            if damage is not None:
                raise JournalCorruptError(
                    f"{source} is damaged at byte {pos} (record {number}, the last): "
                    f"{problem}; {damage}",
                    CORRUPT_HINT,
                )
            return ScanResult(
                records,
                offsets,
                pos,
                f"torn last record cut: {problem}; cut {len(view) - pos} bytes",
            )
        records.append(bytes(view[pos + HEADER_SIZE : end]))
        offsets.append(pos)
        pos = end
    return ScanResult(records, offsets, pos, None)
