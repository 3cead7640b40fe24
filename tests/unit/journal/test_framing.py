"""Record framing: torn tails are cut and reported, damaged records are refused anywhere."""

from __future__ import annotations

import struct
import zlib

import pytest

from ftctl.errors import JournalCorruptError
from ftctl.journal import MAX_RECORD_SIZE, frame, scan

PAYLOADS = [b"first record", b"\x82\xa4type\xa4note" + bytes(range(40)), b"third", b"last one!"]


def _log() -> tuple[bytes, list[int]]:
    offsets: list[int] = []
    data = b""
    for payload in PAYLOADS:
        offsets.append(len(data))
        data += frame(payload)
    return data, offsets


def test_frame_layout_is_length_crc_payload() -> None:
    """A frame is u32 length, u32 crc32 (little-endian), then the payload."""
    framed = frame(b"abc")
    assert framed[:8] == struct.pack("<II", 3, zlib.crc32(b"abc"))
    assert framed[8:] == b"abc"


def test_frame_refuses_empty_and_oversized_payloads() -> None:
    """Empty records (indistinguishable from zero fill) and huge ones are never written."""
    with pytest.raises(ValueError):
        frame(b"")
    with pytest.raises(ValueError):
        frame(b"x" * (MAX_RECORD_SIZE + 1))


def test_clean_log_scans_completely() -> None:
    """An intact log yields every record, its offsets, and no tail problem."""
    data, offsets = _log()
    result = scan(data)
    assert result.records == PAYLOADS
    assert result.offsets == offsets
    assert result.good_length == len(data)
    assert result.tail_problem is None


def test_empty_log_is_clean() -> None:
    """No bytes means no records and nothing to report."""
    result = scan(b"")
    assert result.records == [] and result.good_length == 0 and result.tail_problem is None


def test_torn_tail_at_every_byte_offset_of_last_record() -> None:
    """Cutting the last record anywhere keeps all earlier records and reports the cut."""
    data, offsets = _log()
    last = offsets[-1]
    for cut in range(last + 1, len(data)):
        result = scan(data[:cut])
        assert result.records == PAYLOADS[:-1], cut
        assert result.good_length == last, cut
        assert result.tail_problem is not None and f"byte {last}" in result.tail_problem, cut


def test_flipped_byte_in_last_record_is_corruption_not_a_torn_tail() -> None:
    """A complete last record that fails its checks is damage (no crash leaves one): every
    flipped byte in it raises, naming the file, the record and its offset."""
    data, offsets = _log()
    for position in range(offsets[-1], len(data)):
        damaged = bytearray(data)
        damaged[position] ^= 0x5A
        with pytest.raises(JournalCorruptError) as caught:
            scan(bytes(damaged), source="/tmp/x/journal.log")
        message = caught.value.message
        assert f"/tmp/x/journal.log is damaged at byte {offsets[-1]}" in message, position
        assert f"record {len(PAYLOADS)}, the last" in message, position


def test_damaged_length_of_last_record_is_told_from_a_torn_one() -> None:
    """A last record whose length field grew past the end of the file looks incomplete, but
    its bytes are all there (their checksum matches): damage, said so."""
    data, offsets = _log()
    damaged = bytearray(data)
    damaged[offsets[-1] : offsets[-1] + 4] = struct.pack("<I", len(PAYLOADS[-1]) + 100)
    with pytest.raises(JournalCorruptError, match="their checksum matches"):
        scan(bytes(damaged))


def test_damaged_only_record_is_corruption() -> None:
    """A journal of one complete record with a bad checksum is damage, never "no journal"."""
    damaged = bytearray(frame(PAYLOADS[0]))
    damaged[-1] ^= 0x01
    with pytest.raises(JournalCorruptError, match=r"at byte 0 \(record 1, the last\)"):
        scan(bytes(damaged))


def test_append_cut_at_a_sector_boundary_is_torn() -> None:
    """An append whose later sectors never reached the disk reads back complete but zeroed
    from a 512-byte boundary: that is a crash, cut as the torn tail."""
    data, _ = _log()
    payload = bytes(range(256)) * 8  # 2 KiB: the record spans several sectors
    record = bytearray(frame(payload))
    start = len(data)
    boundary = (start // 512 + 2) * 512
    record[boundary - start :] = bytes(len(record) - (boundary - start))
    result = scan(data + bytes(record))
    assert result.records == PAYLOADS
    assert result.tail_problem is not None and "bad checksum" in result.tail_problem


def test_flipped_byte_in_the_middle_refuses() -> None:
    """Any byte flipped before the last record raises JournalCorruptError naming the offset."""
    data, offsets = _log()
    for position in range(offsets[-1]):
        damaged = bytearray(data)
        damaged[position] ^= 0x5A
        with pytest.raises(JournalCorruptError) as caught:
            scan(bytes(damaged), source="/tmp/x/journal.log")
        record_start = max(o for o in offsets if o <= position)
        assert f"at byte {record_start}" in caught.value.message, position
        assert "/tmp/x/journal.log" in caught.value.message
        assert caught.value.hint


def test_zero_filled_tail_is_torn_not_corrupt() -> None:
    """Zeros after the last record (left by some filesystems after a crash) are cut."""
    data, _ = _log()
    result = scan(data + bytes(100))
    assert result.records == PAYLOADS
    assert result.good_length == len(data)
    assert result.tail_problem is not None


def test_impossible_length_at_tail_is_corruption() -> None:
    """A last header whose length exceeds the sanity bound is damage (no append writes it)."""
    data, _ = _log()
    bogus = struct.pack("<II", MAX_RECORD_SIZE + 1, 0) + b"junk"
    with pytest.raises(JournalCorruptError, match="impossible record length"):
        scan(data + bogus)


def test_incomplete_header_at_tail_is_torn() -> None:
    """Fewer than eight bytes after the last record are an append cut short: cut, reported."""
    data, _ = _log()
    for extra in range(1, 8):
        result = scan(data + b"\x07" * extra)
        assert result.records == PAYLOADS
        assert result.tail_problem is not None and "incomplete record header" in result.tail_problem


def test_damaged_length_field_in_middle_refuses() -> None:
    """A middle record whose length was overwritten with a huge value is still caught."""
    data, offsets = _log()
    damaged = bytearray(data)
    damaged[offsets[1] : offsets[1] + 4] = struct.pack("<I", 0xFFFFFFFF)
    with pytest.raises(JournalCorruptError, match=f"damaged at byte {offsets[1]}"):
        scan(bytes(damaged))
