"""Backup segments: typed msgpack in one zstd frame, field blocks packed per batch."""

from __future__ import annotations

import io
import os
import zlib
from pathlib import Path

import msgspec
import numpy as np
import pytest
import zstandard
from hypothesis import given
from hypothesis import strategies as st

from ftctl.errors import JournalCorruptError
from ftctl.journal import (
    SegmentPayload,
    SegmentRef,
    pack_field,
    present_mask,
    segments,
    unpack_field,
)
from ftctl.journal.segments import (
    LEGACY_MAX_RAW_SIZE,
    decode_segment,
    encode_segment,
    read_segment_file,
    write_segment_file,
)

VALUES: list[bytes | None] = [
    b"\x00" * 8,
    None,
    b"\x01" * 8,
    None,
    None,
    b"\x02" * 8,
    b"\x03" * 8,
    None,
    b"\x04" * 8,
]


def test_pack_field_stores_bitmap_and_concatenated_present_values() -> None:
    """Present values are concatenated in key order; absent keys are cleared bits."""
    block = pack_field(VALUES, dtype="float32", dims=2)
    assert block.data == b"".join(v for v in VALUES if v is not None)
    assert block.sizes == b""  # uniform width needs no per-value sizes
    assert present_mask(block, len(VALUES)).tolist() == [v is not None for v in VALUES]
    assert unpack_field(block, len(VALUES)) == VALUES


@given(st.lists(st.one_of(st.none(), st.binary(max_size=24)), max_size=40))
def test_pack_unpack_round_trips_any_values(values: list[bytes | None]) -> None:
    """Any mix of absent, empty and odd-length values comes back byte for byte."""
    block = pack_field(values, dtype="float32", dims=3)
    assert unpack_field(block, len(values)) == values


def test_unpack_refuses_block_inconsistent_with_bitmap() -> None:
    """A block whose data does not fit its bitmap is reported as corrupt, not misread."""
    block = pack_field([b"abcd", b"efgh"], dtype="float32", dims=1)
    broken = msgspec.structs.replace(block, sizes=np.array([4, 5], dtype="<u4").tobytes())
    with pytest.raises(JournalCorruptError, match="does not match its presence bitmap"):
        unpack_field(broken, 2)


def test_segment_is_one_zstd_frame_of_plain_msgpack() -> None:
    """The file is a single zstd frame with its content size; inside is msgpack, not pickle."""
    payload = SegmentPayload(
        keys=[b"a", b"b"], fields={"v": pack_field([b"12", None], dtype="int8", dims=2)}
    )
    blob = encode_segment(payload, level=1)
    params = zstandard.get_frame_parameters(blob)
    inner = zstandard.ZstdDecompressor().decompress(blob)
    assert params.content_size == len(inner)
    raw = msgspec.msgpack.decode(inner)
    assert raw["keys"] == [b"a", b"b"]
    assert raw["fields"]["v"]["dtype"] == "int8"
    assert decode_segment(blob) == payload


def test_garbage_segment_is_refused() -> None:
    """Bytes that are not a segment raise JournalCorruptError with the segment's name."""
    with pytest.raises(JournalCorruptError, match=r"000003\.zst is not a zstd frame"):
        decode_segment(b"not zstd at all", name="segment 000003.zst")


def test_segment_file_round_trip_and_mode(tmp_path: Path) -> None:
    """A written segment reads back equal, is 0600, and its ref matches the file."""
    payload = SegmentPayload(keys=[f"doc:{i}".encode() for i in range(1000)])
    ref = write_segment_file(tmp_path, 12, payload)
    path = tmp_path / "000012.zst"
    blob = path.read_bytes()
    raw = len(zstandard.ZstdDecompressor().decompress(blob))
    assert ref == SegmentRef(number=12, size=len(blob), crc32=zlib.crc32(blob), raw_size=raw)
    assert path.stat().st_mode & 0o777 == 0o600
    assert not (tmp_path / "000012.zst.tmp").exists()
    assert read_segment_file(tmp_path, ref) == payload


def test_segment_with_wrong_crc_is_refused_with_clear_message(tmp_path: Path) -> None:
    """A segment whose bytes changed is refused before decoding, naming file, size and crc."""
    ref = write_segment_file(tmp_path, 12, SegmentPayload(keys=[b"a", b"b", b"c"]))
    path = tmp_path / ref.filename
    blob = bytearray(path.read_bytes())
    blob[-1] ^= 0xFF
    path.write_bytes(bytes(blob))
    with pytest.raises(JournalCorruptError) as caught:
        read_segment_file(tmp_path, ref)
    message = caught.value.message
    assert message.startswith(f"segment {path} does not match the journal")
    assert f"expected {ref.crc32:08x}" in message
    assert caught.value.hint


def test_segment_with_wrong_size_is_refused(tmp_path: Path) -> None:
    """A truncated segment is refused (size checked along with the crc)."""
    ref = write_segment_file(tmp_path, 1, SegmentPayload(keys=[b"a"]))
    path = tmp_path / ref.filename
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(JournalCorruptError, match=rf"size {ref.size - 1} \(expected {ref.size}\)"):
        read_segment_file(tmp_path, ref)


def test_missing_segment_is_refused(tmp_path: Path) -> None:
    """A referenced segment that is gone is reported as such."""
    with pytest.raises(
        JournalCorruptError, match=r"000004\.zst referenced by the journal is missing"
    ):
        read_segment_file(tmp_path, SegmentRef(number=4, size=1, crc32=0))


@pytest.fixture(scope="module")
def bomb() -> bytes:
    """A 64 KB zstd frame that inflates to 2 GiB of zeros (content size declared)."""
    out = io.BytesIO()
    compressor = zstandard.ZstdCompressor(level=1, write_content_size=True)
    with compressor.stream_writer(out, size=2 << 30, closefd=False) as writer:
        chunk = bytes(1 << 20)
        for _ in range(2048):
            writer.write(chunk)
    return out.getvalue()


def _never_inflate(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse() -> None:
        raise AssertionError("the segment was decompressed")

    monkeypatch.setattr(segments, "_decompressor", refuse)


@pytest.mark.parametrize("raw_size", [1000, 0], ids=["recorded", "legacy"])
def test_decompression_bomb_is_refused_without_inflating(
    tmp_path: Path, bomb: bytes, monkeypatch: pytest.MonkeyPatch, raw_size: int
) -> None:
    """A segment whose frame would inflate past what the journal says it holds (or past the
    cap for journals that say nothing) is refused before anything is decompressed."""
    assert len(bomb) < 70_000
    (tmp_path / "000001.zst").write_bytes(bomb)
    ref = SegmentRef(number=1, size=len(bomb), crc32=zlib.crc32(bomb), raw_size=raw_size)
    _never_inflate(monkeypatch)
    with pytest.raises(JournalCorruptError) as caught:
        read_segment_file(tmp_path, ref)
    assert caught.value.message.startswith(f"segment {tmp_path / '000001.zst'} would decompress")
    assert "2147483648 bytes" in caught.value.message
    expected = "the journal says 1000" if raw_size else f"more than the {LEGACY_MAX_RAW_SIZE}"
    assert expected in caught.value.message


def test_frame_without_declared_size_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """ftctl always writes the content size; a frame without one is not a segment of ours."""
    blob = zstandard.ZstdCompressor(write_content_size=False).compress(b"\x90")
    _never_inflate(monkeypatch)
    with pytest.raises(JournalCorruptError, match="does not declare its decompressed size"):
        decode_segment(blob, name="segment 000009.zst")


def test_field_block_that_does_not_fit_its_keys_is_refused() -> None:
    """A presence bitmap shorter or longer than one bit per key is damage, not absent keys."""
    block = pack_field([b"\x00" * 4] * 3, dtype="float32", dims=1)
    bad = SegmentPayload(keys=[b"a"] * 20, fields={"v": block})
    with pytest.raises(JournalCorruptError, match="field block 'v' does not fit its 20 keys"):
        decode_segment(encode_segment(bad), name="segment 000002.zst")


def test_longer_segment_file_is_refused_without_reading_it_all(tmp_path: Path) -> None:
    """A segment file longer than the journal says is refused (read to size + 1 only)."""
    ref = write_segment_file(tmp_path, 3, SegmentPayload(keys=[b"a"]))
    with (tmp_path / ref.filename).open("ab") as file:
        file.write(bytes(1 << 20))
    with pytest.raises(JournalCorruptError, match=f"size more than {ref.size}"):
        read_segment_file(tmp_path, ref)


@pytest.mark.parametrize("durable", [True, False])
def test_leftover_file_of_a_crash_is_replaced_not_written_through(
    tmp_path: Path, durable: bool
) -> None:
    """A regular file left where a segment (or its tmp file) goes is replaced by a new file:
    a second hard link to it keeps its old bytes."""
    name = "000005.zst.tmp" if durable else "000005.zst"
    (tmp_path / name).write_bytes(b"left by a crash")
    os.link(tmp_path / name, tmp_path / "other-link")
    ref = write_segment_file(tmp_path, 5, SegmentPayload(keys=[b"k"]), durable=durable)
    assert read_segment_file(tmp_path, ref) == SegmentPayload(keys=[b"k"])
    assert (tmp_path / "other-link").read_bytes() == b"left by a crash"
