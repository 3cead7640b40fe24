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


def glob_escape(prefix: str) -> str:
    """``prefix`` with the glob metacharacters of SCAN MATCH escaped."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in prefix)


class _KeyBatches:
    """Collects keys and writes a segment + event each time a batch is full."""

    def __init__(self, batch_size: int) -> None:
        self.batch_size = batch_size
        self.pending: list[bytes] = []
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

    def _write(self, keys: list[bytes]) -> Step[None]:
        ref = yield WriteSegment(SegmentPayload(keys=list(keys)))
        yield Record([KeysEnumerated(segment=ref, batch=self.batch, keys=len(keys))])
        self.batch += 1
        self.total += len(keys)


def enumerate_keys(spec: RunSpec) -> Step[int]:
    """Enumerate the source's keys into segments; returns how many keys were found."""
    (info_reply,) = yield Commands([("FT.INFO", spec.source_index)])
    stats = parse_ft_info(ok(info_reply, f"FT.INFO {spec.source_index}")).stats
    batches = _KeyBatches(spec.batch_size)
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
    count = str(spec.batch_size)
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
        (reply,) = yield Commands(
            [("FT.CURSOR", "READ", spec.source_index, str(cursor), "COUNT", count)]
        )
        keys, cursor = aggregate_keys(ok(reply, "FT.CURSOR READ"))
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
