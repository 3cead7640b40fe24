"""enumerate: stream the source index's keys into key segments, one event per batch.

FT.AGGREGATE WITHCURSOR (``LOAD 1 @__key``) lists exactly what the index holds. When the
index has indexing failures or is still building, that list misses documents, so the keys
come from a SCAN scoped to each prefix (never an unscoped SCAN) and of the index's key type.
Keys are written out in batches as they come: memory does not grow with the key count.
"""

from __future__ import annotations

import hashlib

from ftctl.journal.events import KeysEnumerated, Note
from ftctl.journal.segments import SegmentPayload
from ftctl.schema.ftinfo import parse_ft_info
from ftctl.steps.effects import Commands, Record, Step, WriteSegment
from ftctl.steps.replies import aggregate_keys, ok
from ftctl.steps.spec import RunSpec

CURSOR_MAX_IDLE_MS = 300_000
SCAN_COUNT = 1000
SEGMENTS_PER_RECORD = 32
"""Key segments synced and journaled together (progress is reported per group)."""
PAGE_SIZE = 5000
"""Keys per FT.AGGREGATE cursor read: fewer round trips than one page per batch."""
READS_AHEAD = 2
"""FT.CURSOR READs per round trip (a cursor keeps its id): the server computes the next page
while the client parses this one. A read past the end is an error, ignored."""


def glob_escape(prefix: str) -> str:
    """``prefix`` with the glob metacharacters of SCAN MATCH escaped."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in prefix)


def count_keys(prefix: str, *, limit: int | None = None) -> Step[int]:
    """Keys whose names start with ``prefix`` (prefix-scoped SCAN), stopping once ``limit``
    are found (``None``: count them all)."""
    cursor, found = 0, 0
    while True:
        (reply,) = yield Commands(
            [("SCAN", str(cursor), "MATCH", glob_escape(prefix) + "*", "COUNT", str(SCAN_COUNT))]
        )
        page = ok(reply, "SCAN")
        assert isinstance(page, list | tuple)
        cursor = int(page[0])
        found += len(page[1])
        if cursor == 0 or (limit is not None and found >= limit):
            return found


class _KeyBatches:
    """Collects keys into batch-sized segments and journals them in groups.

    An interrupted enumeration starts over (a cursor cannot resume), so its segments need
    not be durable one by one: each group of segments is synced once, by the Record that
    names them.
    """

    def __init__(self, batch_size: int) -> None:
        self.batch_size = batch_size
        self.pending: list[bytes] = []
        self.unrecorded: list[KeysEnumerated] = []
        self.batch = 0
        self.total = 0

    def add(self, keys: list[bytes]) -> Step[None]:
        self.pending.extend(keys)
        while len(self.pending) >= self.batch_size:
            yield from self._write(self.pending[: self.batch_size])
            del self.pending[: self.batch_size]

    def flush(self) -> Step[None]:
        if self.pending:
            yield from self._write(self.pending)
            self.pending = []
        if self.unrecorded:
            yield Record(self.unrecorded)
            self.unrecorded = []

    def _write(self, keys: list[bytes]) -> Step[None]:
        ref = yield WriteSegment(SegmentPayload(keys=list(keys)), durable=False)
        self.unrecorded.append(KeysEnumerated(segment=ref, batch=self.batch, keys=len(keys)))
        self.batch += 1
        self.total += len(keys)
        if len(self.unrecorded) >= SEGMENTS_PER_RECORD:
            yield Record(self.unrecorded)
            self.unrecorded = []


def enumerate_keys(spec: RunSpec) -> Step[int]:
    """Enumerate the source's keys into segments; returns how many keys were found."""
    (info_reply,) = yield Commands([("FT.INFO", spec.source_index)])
    stats = parse_ft_info(ok(info_reply, f"FT.INFO {spec.source_index}")).stats
    batches = _KeyBatches(spec.segment_size)
    if stats.hash_indexing_failures == 0 and not stats.indexing:
        yield from _by_aggregate(spec, batches)
    else:
        yield Record(
            [
                Note(
                    message="the index has indexing failures or is still building: keys "
                    "come from a prefix-scoped SCAN",
                    data={
                        "hash_indexing_failures": stats.hash_indexing_failures,
                        "indexing": stats.indexing,
                    },
                )
            ]
        )
        yield from _by_scan(spec, batches)
    yield from batches.flush()
    return batches.total


def _by_aggregate(spec: RunSpec, batches: _KeyBatches) -> Step[None]:
    count = str(max(spec.batch_size, PAGE_SIZE))
    (reply,) = yield Commands(
        [
            (
                "FT.AGGREGATE",
                spec.source_index,
                "*",
                "LOAD",
                "1",
                "@__key",
                "WITHCURSOR",
                "COUNT",
                count,
                "MAXIDLE",
                str(CURSOR_MAX_IDLE_MS),
            )
        ]
    )
    keys, cursor = aggregate_keys(ok(reply, "FT.AGGREGATE"))
    yield from batches.add(keys)
    while cursor:
        read = ("FT.CURSOR", "READ", spec.source_index, str(cursor), "COUNT", count)
        for page in (yield Commands([read] * READS_AHEAD)):
            if not cursor:
                break
            keys, cursor = aggregate_keys(ok(page, "FT.CURSOR READ"))
            yield from batches.add(keys)


def _by_scan(spec: RunSpec, batches: _KeyBatches) -> Step[None]:
    key_type = "ReJSON-RL" if spec.storage_type == "json" else "hash"
    # SCAN may return a key twice (and prefixes may overlap): remember 8-byte digests.
    seen: set[bytes] = set()
    for prefix in spec.source_schema.prefixes or [""]:
        cursor = 0
        while True:
            (reply,) = yield Commands(
                [
                    (
                        "SCAN",
                        str(cursor),
                        "MATCH",
                        glob_escape(prefix) + "*",
                        "COUNT",
                        str(SCAN_COUNT),
                        "TYPE",
                        key_type,
                    )
                ]
            )
            page = ok(reply, "SCAN")
            assert isinstance(page, list | tuple)
            cursor = int(page[0])
            fresh = []
            for key in page[1]:
                digest = hashlib.blake2b(key, digest_size=8).digest()
                if digest not in seen:
                    seen.add(digest)
                    fresh.append(key)
            yield from batches.add(fresh)
            if cursor == 0:
                break
