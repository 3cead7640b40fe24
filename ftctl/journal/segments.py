"""Backup segments: one zstd frame of msgpack per batch, checked against the journal.

A segment holds a batch of keys and, for the backup step, the original bytes of each vector
field. Fields are stored per batch, not per key: a presence bitmap (one bit per key, numpy
``packbits`` little bit order) and the concatenated bytes of the keys that have the field.
Never pickle: the payload is a typed msgspec Struct.
"""

from __future__ import annotations

import os
import threading
import zlib
from collections.abc import Sequence
from pathlib import Path

import msgspec
import numpy as np
import zstandard

from ftctl.errors import JournalCorruptError
from ftctl.journal.events import SegmentRef

DEFAULT_LEVEL = 1
"""zstd's fastest level: vectors barely compress, key lists compress well at any level."""
FILE_MODE = 0o600

SEGMENT_HINT = (
    "the backup segment was changed or damaged after it was written; restore the backup "
    "directory from a copy, it is never used unverified"
)


class FieldBlock(msgspec.Struct, frozen=True, kw_only=True):
    """One field's values for every key of a batch.

    ``present`` has one bit per key (little bit order); ``data`` is the values of the present
    keys, concatenated in key order. ``sizes`` is empty when every value has the same length,
    else the little-endian u32 length of each present value (original bytes are kept exactly,
    even a vector of the wrong length).
    """

    dtype: str
    dims: int
    present: bytes
    data: bytes
    sizes: bytes = b""


class SegmentPayload(msgspec.Struct, frozen=True, kw_only=True):
    """A segment's content: the keys of a batch and, optionally, field blocks for them.

    ``digests`` (backup segments): per field, the digest of the bytes the migration will
    write in place of each key's original (fixed-size digests in key order; zero bytes for
    a key left alone), so a rollback recognises what the migration wrote without
    converting again. Segments written before it existed have none.
    """

    keys: list[bytes]
    fields: dict[str, FieldBlock] = msgspec.field(default_factory=dict)
    digests: dict[str, bytes] = msgspec.field(default_factory=dict)


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(SegmentPayload)
_local = threading.local()  # zstd (de)compressors are not thread-safe; reuse one per thread


def _compressor(level: int) -> zstandard.ZstdCompressor:
    cache: dict[int, zstandard.ZstdCompressor] = _local.__dict__.setdefault("compressors", {})
    if level not in cache:
        cache[level] = zstandard.ZstdCompressor(level=level, write_content_size=True)
    return cache[level]


def _decompressor() -> zstandard.ZstdDecompressor:
    found: zstandard.ZstdDecompressor | None = getattr(_local, "decompressor", None)
    if found is None:
        found = zstandard.ZstdDecompressor()
        _local.decompressor = found
    return found


def pack_field(values: Sequence[bytes | None], *, dtype: str, dims: int) -> FieldBlock:
    """A :class:`FieldBlock` from one value per key (``None``: the key lacks the field)."""
    mask = np.fromiter((v is not None for v in values), dtype=bool, count=len(values))
    present_values = [v for v in values if v is not None]
    lengths = {len(v) for v in present_values}
    sizes = b""
    if len(lengths) > 1:
        sizes = np.fromiter(map(len, present_values), dtype="<u4").tobytes()
    return FieldBlock(
        dtype=dtype,
        dims=dims,
        present=np.packbits(mask, bitorder="little").tobytes(),
        data=b"".join(present_values),
        sizes=sizes,
    )


def present_mask(block: FieldBlock, count: int) -> np.ndarray[tuple[int], np.dtype[np.bool_]]:
    """The presence of the field for each of ``count`` keys, as a boolean array."""
    bits = np.frombuffer(block.present, dtype=np.uint8)
    mask: np.ndarray[tuple[int], np.dtype[np.bool_]] = np.unpackbits(
        bits, count=count, bitorder="little"
    ).astype(bool)
    return mask


def unpack_field(block: FieldBlock, count: int) -> list[bytes | None]:
    """The values of a block again, one per key (``None`` where the field was absent)."""
    mask = present_mask(block, count)
    present = int(mask.sum())
    if block.sizes:
        lengths = np.frombuffer(block.sizes, dtype="<u4").tolist()
    else:
        width = len(block.data) // present if present else 0
        lengths = [width] * present
    if len(lengths) != present or sum(lengths) != len(block.data):
        raise JournalCorruptError(
            f"field block ({block.dtype}) does not match its presence bitmap", SEGMENT_HINT
        )
    out: list[bytes | None] = [None] * count
    data = block.data
    pos = 0
    for index, length in zip(np.flatnonzero(mask).tolist(), lengths, strict=True):
        out[index] = data[pos : pos + length]
        pos += length
    return out


def encode_segment(payload: SegmentPayload, *, level: int = DEFAULT_LEVEL) -> bytes:
    """The compressed bytes of a segment: msgpack, then one zstd frame."""
    return _compressor(level).compress(_encoder.encode(payload))


def decode_segment(blob: bytes, *, name: str = "segment") -> SegmentPayload:
    """Decompress and decode a segment whose size and crc were already verified."""
    try:
        return _decoder.decode(_decompressor().decompress(blob))
    except (zstandard.ZstdError, msgspec.DecodeError) as exc:
        raise JournalCorruptError(f"{name} cannot be decoded: {exc}", SEGMENT_HINT) from None


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_segment_file(
    directory: Path,
    number: int,
    payload: SegmentPayload,
    *,
    level: int = DEFAULT_LEVEL,
    durable: bool = True,
) -> SegmentRef:
    """Write segment ``number``; return its ref.

    ``durable``: tmp file, fsync, rename, fsync dir. Otherwise the file is written in place
    and left to :func:`sync_segment_files` (the journal calls it before it appends the event
    that references the segment, so a referenced segment is always on disk). An existing
    file of that number (a crash after the write, before its event) is replaced.
    """
    blob = encode_segment(payload, level=level)
    ref = SegmentRef(number=number, size=len(blob), crc32=zlib.crc32(blob))
    final = directory / ref.filename
    target = directory / (ref.filename + ".tmp") if durable else final
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
        view = memoryview(blob)
        while view:
            view = view[os.write(fd, view) :]
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
    if durable:
        os.replace(target, final)
        _fsync_dir(directory)
    return ref


def sync_segment_files(directory: Path, numbers: Sequence[int]) -> None:
    """fsync segments written with ``durable=False``, then their directory, once."""
    for number in numbers:
        fd = os.open(directory / f"{number:06d}.zst", os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    _fsync_dir(directory)


def read_segment_file(directory: Path, ref: SegmentRef) -> SegmentPayload:
    """Read a segment, verifying its size and crc32 against ``ref`` before decoding it."""
    path = directory / ref.filename
    try:
        blob = path.read_bytes()
    except FileNotFoundError:
        raise JournalCorruptError(
            f"segment {ref.filename} referenced by the journal is missing from {directory}",
            SEGMENT_HINT,
        ) from None
    crc = zlib.crc32(blob)
    if len(blob) != ref.size or crc != ref.crc32:
        raise JournalCorruptError(
            f"segment {ref.filename} does not match the journal: "
            f"size {len(blob)} (expected {ref.size}), crc32 {crc:08x} (expected {ref.crc32:08x})",
            SEGMENT_HINT,
        )
    return decode_segment(blob, name=f"segment {ref.filename}")
