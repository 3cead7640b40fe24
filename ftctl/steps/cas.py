"""Compare-and-set writes of hash fields: a key's field is replaced only while it still holds
the bytes the migration expects, so a concurrent write is detected and kept, never lost.

Where the server has ``HSETEX`` (Redis 8), each group of keys is one optimistic transaction:
``WATCH`` the keys and read their fields, compare on the client, then ``MULTI``,
``HSETEX … KEEPTTL`` for the keys that matched, ``EXEC``. A key changed in between makes
``EXEC`` fail and the group is read and decided again. The next group's ``WATCH`` and reads
travel in the same round trip as this group's ``EXEC``, so a group costs one round trip and
no script runs on the server. Elsewhere :data:`scripts.CAS_HSET` does the same per batch.

Everything is encoded by :func:`prepare` ahead of the batch's turn on the connection (in an
``Offload``); on the wire only the comparison happens.

Statuses per key are those of :mod:`ftctl.steps.scripts` (written, already, conflict, absent).
:func:`write` also says how many groups were retried or fell back to the script: a step
cannot log, so the batch's journal event carries the counts and the run logs them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from ftctl.errors import MigrationFailed
from ftctl.steps import scripts
from ftctl.steps.effects import Arg, Command, Commands, Packed, ReplyError, Session, Step, pack
from ftctl.steps.replies import ok, script_statuses

WATCH_GROUP = 100
"""Keys per WATCH: the server checks each watched key against the ones already watched, so
a WATCH costs the square of its key count."""

RETRIES = 4
"""Times a group is re-read after its EXEC failed before it falls back to the script."""

_MULTI, _EXEC, _UNWATCH = pack([("MULTI",)]), pack([("EXEC",)]), pack([("UNWATCH",)])


DIGEST_SIZE = 8
"""Bytes of a value's sha1 kept as its digest (:func:`digest`)."""


def digest(value: bytes) -> bytes:
    """The first :data:`DIGEST_SIZE` bytes of ``value``'s sha1: what a backup records of the
    bytes a migration will write, so a rollback can recognise them without recomputing."""
    return hashlib.sha1(value, usedforsecurity=False).digest()[:DIGEST_SIZE]


class Column(NamedTuple):
    """One hash field across a batch of keys: the bytes each key must hold (``None``: the
    key is left alone) and the bytes to write in their place.

    With ``digests``, ``expected`` holds :func:`digest` values instead of the bytes.
    """

    field: str
    expected: list[bytes | None]
    wanted: list[bytes]
    digests: bool = False

    def holds_expected(self, k: int, value: object) -> bool:
        """Whether ``value`` (a field as read) is what key ``k`` must hold to be written."""
        expected = self.expected[k]
        if not self.digests:
            return value == expected
        return isinstance(value, bytes) and digest(value) == expected


@dataclass(frozen=True, slots=True)
class Prepared:
    """One batch's compare-and-set, encoded ahead of its turn on the connection."""

    keys: Sequence[bytes]
    columns: Sequence[Column]
    force: bool
    watch: bool
    groups: list[range]
    """Keys per server call: per WATCH group, or per script call."""
    reads: list[bytes]
    """Per group: WATCH of its keys, then one read per key (HGET, HMGET for several fields)."""
    writes: list[bytes]
    """Per key: HSETEX KEEPTTL of every column's wanted bytes."""


def expects_values(prepared: Prepared) -> list[bool]:
    """Per key: whether some column expected a value there (a key absent then is gone)."""
    return [
        any(c.expected[k] is not None for c in prepared.columns) for k in range(len(prepared.keys))
    ]


class Written(NamedTuple):
    """What a compare-and-set did: each key's status, in key order, and how it got there."""

    statuses: list[int]
    retries: int = 0
    """Groups read and decided again because a watched key changed before their EXEC."""
    fallbacks: int = 0
    """Groups written by the script after :data:`RETRIES` failed EXECs."""

    def counts(self) -> dict[str, int]:
        """The retry counts that are not zero, for the batch's ``batch_done`` counts."""
        named = (("cas_retries", self.retries), ("cas_fallbacks", self.fallbacks))
        return {name: n for name, n in named if n}


def watch_supported() -> Step[bool]:
    """Whether the server has ``HSETEX`` (which keeps a field's TTL, as ``HSET`` does not)."""
    (reply,) = yield Commands([("COMMAND", "INFO", "HSETEX")])
    return isinstance(reply, list) and bool(reply) and reply[0] is not None


def prepare(
    keys: Sequence[bytes],
    columns: Sequence[Column],
    *,
    force: bool,
    batch_size: int,
    watch: bool,
) -> Prepared:
    """Encode the compare-and-set of ``columns`` onto ``keys`` (pure CPU: run it offloaded)."""
    size = max(1, min(batch_size, WATCH_GROUP)) if watch else max(1, batch_size)
    groups = [range(s, min(s + size, len(keys))) for s in range(0, len(keys), size)]
    reads: list[bytes] = []
    writes: list[bytes] = []
    if watch:
        reads, writes = _encode_reads(keys, columns, groups), _encode_writes(keys, columns)
    return Prepared(keys, columns, force, watch, groups, reads, writes)


def _bulk(value: bytes | str) -> bytes:
    data = value.encode() if isinstance(value, str) else value
    return b"$%d\r\n%b\r\n" % (len(data), data)


def _encode_reads(
    keys: Sequence[bytes], columns: Sequence[Column], groups: list[range]
) -> list[bytes]:
    """Per group: WATCH of its keys, then HGET (HMGET for several fields) of each, encoded
    as :func:`pack` would (RESP arrays of bulk strings), a template per key."""
    fields = b"".join(_bulk(c.field) for c in columns)
    head = b"*%d\r\n%b" % (2 + len(columns), _bulk("HGET" if len(columns) == 1 else "HMGET"))
    out = []
    for group in groups:
        watch = [b"*%d\r\n$5\r\nWATCH\r\n" % (1 + len(group))]
        watch += [b"$%d\r\n%b\r\n" % (len(keys[k]), keys[k]) for k in group]
        reads = [b"%b$%d\r\n%b\r\n%b" % (head, len(keys[k]), keys[k], fields) for k in group]
        out.append(b"".join(watch + reads))
    return out


def _encode_writes(keys: Sequence[bytes], columns: Sequence[Column]) -> list[bytes]:
    """Per key: HSETEX key KEEPTTL FIELDS n field value …, encoded as :func:`pack` would."""
    head = b"*%d\r\n$6\r\nHSETEX\r\n" % (5 + 2 * len(columns))
    middle = b"$7\r\nKEEPTTL\r\n$6\r\nFIELDS\r\n" + _bulk(str(len(columns)))
    if len(columns) == 1:
        field, wanted = middle + _bulk(columns[0].field), columns[0].wanted
        return [
            b"%b$%d\r\n%b\r\n%b$%d\r\n%b\r\n" % (head, len(key), key, field, len(v), v)
            for key, v in zip(keys, wanted, strict=True)
        ]
    return [
        b"".join(
            [head, _bulk(key), middle, *(_bulk(c.field) + _bulk(c.wanted[k]) for c in columns)]
        )
        for k, key in enumerate(keys)
    ]


def decide(
    current: Sequence[object], columns: Sequence[Column], k: int, *, force: bool
) -> tuple[int, list[Arg]]:
    """(status, field/value pairs to write) for key ``k``, whose fields hold ``current``."""
    status = scripts.ABSENT
    pending: list[Arg] = []
    for column, value in zip(columns, current, strict=True):
        expected = column.expected[k]
        if expected is None or value is None:
            continue  # nothing to write, or gone: absent, never recreated, not a conflict
        wanted = column.wanted[k]
        if value == wanted:
            if status == scripts.ABSENT:
                status = scripts.ALREADY
        elif force or column.holds_expected(k, value):
            pending += [column.field, wanted]
        else:
            status = scripts.CONFLICT
    if pending and (status != scripts.CONFLICT or force):
        return scripts.WRITTEN, pending
    return status, []


def write(prepared: Prepared) -> Step[Written]:
    """Write the prepared columns where each field still holds its expected bytes (every
    field, with ``force``); return each key's status and the retries it took."""
    if prepared.watch:
        written: Written = yield Session(watched_writes(prepared))
        return written
    replies = yield Commands([_script(prepared, group) for group in prepared.groups])
    return Written(script_statuses(replies, "compare-and-set"))


def compare_and_set(prepared: Prepared) -> Step[list[int]]:
    """:func:`write`, returning only each key's status, in key order."""
    return (yield from write(prepared)).statuses


def _script(prepared: Prepared, group: range) -> Command:
    """One :data:`scripts.CAS_HSET` call: ARGV is force, the field names, then (sha1 of the
    expected bytes — or the hex of its digest — or "", wanted bytes) per key and field."""
    columns = prepared.columns
    args: list[Arg] = ["1" if prepared.force else "0", len(columns), *(c.field for c in columns)]
    for k in group:
        for column in columns:
            expected = column.expected[k]
            if expected is None:
                args += ["", column.wanted[k]]
            else:
                args += [expected.hex() if column.digests else _sha1(expected), column.wanted[k]]
    keys = (prepared.keys[k] for k in group)
    return ("EVAL", scripts.CAS_HSET, len(group), *keys, *args)


def _sha1(value: bytes) -> str:
    return hashlib.sha1(value, usedforsecurity=False).hexdigest()


def _decide_group(
    prepared: Prepared, group: range, values: list[object], statuses: list[int]
) -> list[bytes]:
    """Set the group's statuses from the values read; return the encoded writes."""
    columns = prepared.columns
    if len(columns) == 1 and not prepared.force and not columns[0].digests:
        expected = columns[0].expected[group.start : group.stop]
        if None not in expected and values == expected:
            # The common case: every key still holds its original.
            statuses[group.start : group.stop] = [scripts.WRITTEN] * len(group)
            return prepared.writes[group.start : group.stop]
    writes: list[bytes] = []
    for k, value in zip(group, values, strict=True):
        current = [value] if len(columns) == 1 else ok(value, "HMGET")
        if not isinstance(current, list):
            raise MigrationFailed(f"HMGET returned {current!r:.100}")
        statuses[k], pending = decide(current, columns, k, force=prepared.force)
        if len(pending) == 2 * len(columns):
            writes.append(prepared.writes[k])
        elif pending:
            key = prepared.keys[k]
            writes.append(pack([("HSETEX", key, "KEEPTTL", "FIELDS", len(pending) // 2, *pending)]))
    return writes


def watched_writes(prepared: Prepared) -> Step[Written]:
    """The WATCH/EXEC form of :func:`write`; run it inside a :class:`Session`."""
    groups, reads = prepared.groups, prepared.reads
    statuses = [scripts.ABSENT] * len(prepared.keys)
    if not groups:
        return Written(statuses)
    position, failures = 0, 0
    retries, fallbacks = 0, 0
    replies = yield Packed(reads[0], 1 + len(groups[0]))
    while True:
        group = groups[position]
        if ReplyError in map(type, replies):
            failed = next(r for r in replies if isinstance(r, ReplyError))
            ok(failed, "reading the fields to compare")
        writes = _decide_group(prepared, group, replies[1:], statuses)
        if writes:
            transaction, count = b"".join([_MULTI, *writes, _EXEC]), len(writes) + 2
        else:
            transaction, count = _UNWATCH, 1
        last = position + 1 == len(groups)
        following = b"" if last else reads[position + 1]
        following_count = 0 if last else 1 + len(groups[position + 1])
        answered = yield Packed(transaction + following, count + following_count)
        if writes and answered[count - 1] is None:
            # A watched key changed between the read and EXEC: nothing of the group was
            # written. Drop the next group's WATCH and decide this group again.
            failures += 1
            if failures <= RETRIES:
                retries += 1
                replies = (yield Packed(_UNWATCH + reads[position], 2 + len(group)))[1:]
                continue
            fallbacks += 1
            fallback = pack([_script(prepared, group)])
            (_, reply, *after) = yield Packed(_UNWATCH + fallback + following, 2 + following_count)
            statuses[group.start : group.stop] = script_statuses([reply], "compare-and-set")
        else:
            _check_transaction(answered[:count])
            after = answered[count:]
        if last:
            return Written(statuses, retries, fallbacks)
        replies = after
        position, failures = position + 1, 0


def _check_transaction(replies: Sequence[object]) -> None:
    """The replies to MULTI, each queued command and EXEC (or to a lone UNWATCH): any error
    fails the step."""
    for reply in replies:
        ok(reply, "compare-and-set write")
    if len(replies) == 1:
        return
    executed = replies[-1]
    if not isinstance(executed, list):
        raise MigrationFailed(f"compare-and-set write: EXEC returned {executed!r:.100}")
    for reply in executed:
        ok(reply, "compare-and-set write")
