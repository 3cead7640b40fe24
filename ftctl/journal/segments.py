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
from ftctl.journal.safefs import (
    check_regular,
    fsync_dir,
    is_symlink,
    open_in,
    os_error,
    read_all,
    symlink_error,
)

DEFAULT_LEVEL = 1
"""zstd's fastest level: vectors barely compress, key lists compress well at any level."""
FILE_MODE = 0o600
LEGACY_MAX_RAW_SIZE = 1 << 30
"""Largest decompressed size accepted for a segment whose ref does not record one (journals
of ftctl 0.1): a frame declaring more is refused before anything is inflated."""

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


def decode_segment(blob: bytes, *, name: str = "segment", raw_size: int = 0) -> SegmentPayload:
    """Decompress and decode a segment whose size and crc were already verified.

    The frame must declare its content size, and that size must be ``raw_size`` (what the
    journal recorded) or, when the journal recorded none, at most
    :data:`LEGACY_MAX_RAW_SIZE`: a frame that would inflate beyond it is refused before
    anything is decompressed. The payload is then checked against itself (one presence
    bit per key in every field block).
    """
    try:
        declared = zstandard.get_frame_parameters(blob).content_size
    except zstandard.ZstdError as exc:
        raise JournalCorruptError(f"{name} is not a zstd frame: {exc}", SEGMENT_HINT) from None
    if declared == zstandard.CONTENTSIZE_UNKNOWN or declared == zstandard.CONTENTSIZE_ERROR:
        raise JournalCorruptError(
            f"{name} does not declare its decompressed size (ftctl always writes it)",
            SEGMENT_HINT,
        )
    if raw_size and declared != raw_size:
        raise JournalCorruptError(
            f"{name} would decompress to {declared} bytes, the journal says {raw_size}",
            SEGMENT_HINT,
        )
    if not raw_size and declared > LEGACY_MAX_RAW_SIZE:
        raise JournalCorruptError(
            f"{name} would decompress to {declared} bytes, more than the "
            f"{LEGACY_MAX_RAW_SIZE} a segment of this journal can hold",
            SEGMENT_HINT,
        )
    try:
        raw = _decompressor().decompress(blob, max_output_size=declared)
        payload = _decoder.decode(raw)
    except (zstandard.ZstdError, msgspec.DecodeError) as exc:
        raise JournalCorruptError(f"{name} cannot be decoded: {exc}", SEGMENT_HINT) from None
    if len(raw) != declared:
        raise JournalCorruptError(
            f"{name} decompressed to {len(raw)} bytes, its frame says {declared}", SEGMENT_HINT
        )
    bitmap = (len(payload.keys) + 7) // 8
    for field_name, block in payload.fields.items():
        if len(block.present) != bitmap or len(block.sizes) % 4:
            raise JournalCorruptError(
                f"{name}: field block '{field_name}' does not fit its {len(payload.keys)} keys",
                SEGMENT_HINT,
            )
    return payload


def _create(directory: Path, name: str) -> int:
    """Create ``directory/name`` for writing, replacing a regular file left there by a crash
    (unlinked first, so a hard link elsewhere is never truncated) but never a link."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    try:
        return open_in(directory, name, flags, FILE_MODE, action="create")
    except FileExistsError:
        pass
    if is_symlink(directory / name):
        raise symlink_error(directory / name)
    os.unlink(directory / name)
    return open_in(directory, name, flags, FILE_MODE, action="create")


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
    regular file of that number (a crash after the write, before its event) is replaced; a
    symbolic link is refused. ``OSError`` (no space…) passes to the caller, which knows
    what the failure means for its run.
    """
    raw = _encoder.encode(payload)
    blob = _compressor(level).compress(raw)
    ref = SegmentRef(number=number, size=len(blob), crc32=zlib.crc32(blob), raw_size=len(raw))
    name = ref.filename + ".tmp" if durable else ref.filename
    if durable and is_symlink(directory / ref.filename):
        raise symlink_error(directory / ref.filename)
    fd = _create(directory, name)
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
        os.replace(directory / name, directory / ref.filename)
        fsync_dir(directory)
    return ref


def sync_segment_files(directory: Path, numbers: Sequence[int]) -> None:
    """fsync segments written with ``durable=False``, then their directory, once."""
    for number in numbers:
        fd = open_in(directory, f"{number:06d}.zst", os.O_RDONLY, action="sync")
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    fsync_dir(directory)


def read_segment_file(directory: Path, ref: SegmentRef) -> SegmentPayload:
    """Read a segment, verifying its size and crc32 against ``ref`` before decoding it.

    Neither ``directory`` nor the file may be a symbolic link; the file is read only up to
    the size the journal recorded (one byte more tells a longer file).
    """
    path = directory / ref.filename
    if ref.number < 0 or ref.size < 0 or ref.raw_size < 0:
        raise JournalCorruptError(
            f"the journal references segment {ref.number} with an impossible size", SEGMENT_HINT
        )
    try:
        fd = open_in(
            directory, ref.filename, os.O_RDONLY | os.O_NONBLOCK, action="read the backup segment"
        )
    except FileNotFoundError:
        raise JournalCorruptError(
            f"segment {ref.filename} referenced by the journal is missing from {directory}",
            SEGMENT_HINT,
        ) from None
    try:
        check_regular(fd, path)
        blob = read_all(fd, limit=ref.size + 1)
    except OSError as exc:
        raise os_error(exc, "read the backup segment", path) from None
    finally:
        os.close(fd)
    crc = zlib.crc32(blob)
    if len(blob) != ref.size or crc != ref.crc32:
        size = f"{len(blob)}" if len(blob) <= ref.size else f"more than {ref.size}"
        raise JournalCorruptError(
            f"segment {path} does not match the journal: "
            f"size {size} (expected {ref.size}), crc32 {crc:08x} (expected {ref.crc32:08x})",
            SEGMENT_HINT,
        )
    return decode_segment(blob, name=f"segment {path}", raw_size=ref.raw_size)
