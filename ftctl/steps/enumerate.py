"""enumerate: stream the source index's keys into key segments, one event per batch.

FT.AGGREGATE WITHCURSOR (``LOAD 1 @__key``) lists exactly what the index holds (the caller
waits until the index is built). Two cases need more:

- a key the server cannot load (it holds a NUL byte) comes back as an empty row: the rows
  are counted, and if any is empty the enumeration starts over with ``FT.SEARCH NOCONTENT``
  pages, whose document ids are binary-safe;
- documents the index failed to index are not in it: the keys then come from a SCAN scoped
  to each prefix (never an unscoped SCAN) and of the index's key type — unless the index has
  a FILTER, whose excluded keys a SCAN would wrongly take in: those failures are counted as
  unlisted instead (a prefix change refuses them at preflight).

Keys are written out in batches as they come: memory does not grow with the key count. The
count is checked against the index's own at the end: fewer keys refuse the run (writers were
not stopped), unless writers are expected (an online run, whose expand pass is a SCAN and
whose enumeration only lists the originals a rollback restores): then a note says so.
"""

from __future__ import annotations

import hashlib
from typing import NamedTuple

from ftctl.errors import RefusedError
from ftctl.journal.events import EnumerationRestarted, KeysEnumerated, Note
from ftctl.journal.segments import SegmentPayload
from ftctl.schema.ftinfo import parse_ft_info
from ftctl.steps.effects import Command, Commands, Record, Step, WriteSegment
from ftctl.steps.replies import aggregate_keys, ok, search_ids
from ftctl.steps.spec import RunSpec

CURSOR_MAX_IDLE_MS = 300_000
SCAN_COUNT = 1000
SEGMENTS_PER_RECORD = 32
"""Key segments synced and journaled together (progress is reported per group)."""
PAGE_SIZE = 5000
"""Keys per FT.AGGREGATE cursor read: fewer round trips than one page per batch."""
SEARCH_PAGE = 10_000
"""Document ids per FT.SEARCH page when the cursor cannot be used."""
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


class Enumerated(NamedTuple):
    """What enumeration found: keys written to segments, and failed documents not listed."""

    keys: int
    unlisted: int


def _num_docs(spec: RunSpec) -> Step[tuple[int, int]]:
    (info_reply,) = yield Commands([("FT.INFO", spec.source_index)])
    stats = parse_ft_info(ok(info_reply, f"FT.INFO {spec.source_index}")).stats
    return stats.num_docs, stats.hash_indexing_failures


def enumerate_keys(spec: RunSpec, *, writers: bool = False) -> Step[Enumerated]:
    """Enumerate the source's keys into segments (see the module docstring).

    ``writers``: the application keeps writing (an online run): a count that moved under
    the enumeration is noted instead of refused."""
    num_docs, failures = yield from _num_docs(spec)
    batches = _KeyBatches(spec.segment_size)
    unlisted = 0
    if failures and spec.source_schema.index.filter is None:
        yield Record(
            [
                Note(
                    message="the index has indexing failures: keys come from a prefix-scoped SCAN",
                    data={"hash_indexing_failures": failures},
                )
            ]
        )
        yield from _by_scan(spec, batches)
    else:
        dropped = yield from _by_aggregate(spec, batches)
        if dropped:
            yield Record(
                [
                    EnumerationRestarted(
                        reason=f"{dropped} documents have keys FT.AGGREGATE cannot return "
                        "(a NUL byte): listing the index with FT.SEARCH instead"
                    )
                ]
            )
            batches = _KeyBatches(spec.segment_size)
            yield from _by_search(spec, batches, num_docs)
        if failures:
            unlisted = failures
            yield Record(
                [
                    Note(
                        message=f"{failures} documents the index failed to index are not part "
                        "of the migration: the index has a FILTER, so a SCAN cannot tell them "
                        "from the keys it excludes",
                        data={"hash_indexing_failures": failures},
                    )
                ]
            )
    yield from batches.flush()
    after, _ = yield from _num_docs(spec)
    if batches.total < min(num_docs, after) and writers:
        message = (
            f"enumeration found {batches.total} keys while the index held {num_docs}, then "
            f"{after} documents: writers changed them meanwhile (a document created since is "
            "converted back by a rollback, not restored from the backup)"
        )
        yield Record([Note(message=message, data={"keys": batches.total, "num_docs": after})])
    elif batches.total < min(num_docs, after):
        raise RefusedError(
            f"enumeration found {batches.total} keys but the index holds "
            f"{min(num_docs, after)} documents",
            "nothing was changed; stop writers to the index and run again",
        )
    return Enumerated(batches.total, unlisted)


def _by_aggregate(spec: RunSpec, batches: _KeyBatches) -> Step[int]:
    """Every key FT.AGGREGATE returns; the count of rows it returned without one."""
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
    keys, cursor, dropped = aggregate_keys(ok(reply, "FT.AGGREGATE"))
    yield from batches.add(keys)
    while cursor:
        read = ("FT.CURSOR", "READ", spec.source_index, str(cursor), "COUNT", count)
        for page in (yield Commands([read] * READS_AHEAD)):
            if not cursor:
                break
            keys, cursor, missing = aggregate_keys(ok(page, "FT.CURSOR READ"))
            dropped += missing
            yield from batches.add(keys)
    return dropped


def _by_search(spec: RunSpec, batches: _KeyBatches, expected: int) -> Step[None]:
    """Every document id by FT.SEARCH NOCONTENT pages (binary-safe; slower than a cursor)."""
    offset = 0
    while True:
        page: Command = ("FT.SEARCH", spec.source_index, "*", "NOCONTENT", "LIMIT")
        (reply,) = yield Commands([(*page, str(offset), str(SEARCH_PAGE), "DIALECT", "2")])
        ids = search_ids(ok(reply, "FT.SEARCH"))
        yield from batches.add(ids)
        offset += len(ids)
        if len(ids) < SEARCH_PAGE or offset >= max(expected, 1) * 2:
            return


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
