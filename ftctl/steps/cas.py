"""Compare-and-set writes of hash fields: a key's field is replaced only while it still holds
the bytes the migration expects, so a concurrent write is detected and kept, never lost.

Where the server has ``HSETEX`` (Redis 8), each group of keys is one optimistic transaction:
``WATCH`` the keys and ``HMGET`` their fields, compare on the client, then ``MULTI``,
``HSETEX … KEEPTTL`` for the keys that matched, ``EXEC``. A key changed in between makes
``EXEC`` fail and the group is read and decided again. The next group's ``WATCH``/``HMGET``
travels in the same round trip as this group's ``EXEC``, so a group costs one round trip and
no script runs on the server. Elsewhere :data:`scripts.CAS_HSET` does the same per batch.

Statuses per key are those of :mod:`ftctl.steps.scripts` (written, already, conflict, absent).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import NamedTuple

from ftctl.errors import MigrationFailed
from ftctl.steps import scripts
from ftctl.steps.effects import Arg, Command, Commands, ReplyError, Session, Step
from ftctl.steps.replies import ok

WATCH_GROUP = 100
"""Keys per WATCH: the server checks each watched key against the ones already watched, so
a WATCH costs the square of its key count."""

RETRIES = 4
"""Times a group is re-read after its EXEC failed before it falls back to the script."""


class Column(NamedTuple):
    """One hash field across a batch of keys: the bytes each key must hold (``None``: the
    key is left alone) and the bytes to write in their place."""

    field: str
    expected: Sequence[bytes | None]
    wanted: Sequence[bytes]


def watch_supported() -> Step[bool]:
    """Whether the server has ``HSETEX`` (which keeps a field's TTL, as ``HSET`` does not)."""
    (reply,) = yield Commands([("COMMAND", "INFO", "HSETEX")])
    return isinstance(reply, list) and bool(reply) and reply[0] is not None


def decide(
    current: Sequence[object], columns: Sequence[Column], k: int, *, force: bool
) -> tuple[int, list[Arg]]:
    """(status, field/value pairs to write) for key ``k``, whose fields hold ``current``."""
    status = scripts.ABSENT
    pending: list[Arg] = []
    for column, value in zip(columns, current, strict=True):
        expected = column.expected[k]
        if expected is None:
            continue
        wanted = column.wanted[k]
        if value == wanted:
            if status == scripts.ABSENT:
                status = scripts.ALREADY
        elif force or value == expected:
            pending += [column.field, wanted]
        else:
            status = scripts.CONFLICT
    if pending and (status != scripts.CONFLICT or force):
        return scripts.WRITTEN, pending
    return status, []


def compare_and_set(
    keys: Sequence[bytes],
    columns: Sequence[Column],
    *,
    force: bool,
    batch_size: int,
    watch: bool,
) -> Step[list[int]]:
    """Write ``columns`` to ``keys`` where each field still holds its expected bytes (every
    field, with ``force``); return each key's status, in key order."""
    if watch:
        statuses: list[int] = yield Session(watched_writes(keys, columns, force, batch_size))
        return statuses
    replies = yield Commands(
        [
            _script(keys, columns, range(start, min(start + batch_size, len(keys))), force)
            for start in range(0, len(keys), batch_size)
        ]
    )
    out: list[int] = []
    for reply in replies:
        out += _script_statuses(reply)
    return out


def _script(keys: Sequence[bytes], columns: Sequence[Column], group: range, force: bool) -> Command:
    """One :data:`scripts.CAS_HSET` call: ARGV is force, the field names, then (sha1 of the
    expected bytes or "", wanted bytes) per key and field."""
    args: list[Arg] = ["1" if force else "0", len(columns), *(c.field for c in columns)]
    for k in group:
        for column in columns:
            expected = column.expected[k]
            args += [_sha1(expected) if expected is not None else "", column.wanted[k]]
    return ("EVAL", scripts.CAS_HSET, len(group), *(keys[k] for k in group), *args)


def _sha1(value: bytes) -> str:
    return hashlib.sha1(value, usedforsecurity=False).hexdigest()


def _script_statuses(reply: object) -> list[int]:
    statuses = ok(reply, "compare-and-set")
    if not isinstance(statuses, list):
        raise MigrationFailed(f"compare-and-set script returned {statuses!r:.100}")
    return [int(s) for s in statuses]


def watched_writes(
    keys: Sequence[bytes], columns: Sequence[Column], force: bool, batch_size: int
) -> Step[list[int]]:
    """The WATCH/EXEC form of :func:`compare_and_set`; run it inside a :class:`Session`."""
    size = max(1, min(batch_size, WATCH_GROUP))
    groups = [range(s, min(s + size, len(keys))) for s in range(0, len(keys), size)]
    statuses = [scripts.ABSENT] * len(keys)
    if not groups:
        return statuses
    fields: tuple[Arg, ...] = tuple(c.field for c in columns)

    def read(group: range) -> list[Command]:
        watch: Command = ("WATCH", *(keys[k] for k in group))
        return [watch, *[("HMGET", keys[k], *fields) for k in group]]

    position, failures = 0, 0
    reads = yield Commands(read(groups[0]))
    while True:
        group = groups[position]
        ok(reads[0], "WATCH")
        writes: list[Command] = []
        for k, row in zip(group, reads[1:], strict=True):
            current = ok(row, "HMGET")
            if not isinstance(current, list):
                raise MigrationFailed(f"HMGET returned {current!r:.100}")
            statuses[k], pending = decide(current, columns, k, force=force)
            if pending:
                writes.append(("HSETEX", keys[k], "KEEPTTL", "FIELDS", len(pending) // 2, *pending))
        transaction: list[Command] = [("MULTI",), *writes, ("EXEC",)] if writes else [("UNWATCH",)]
        following = read(groups[position + 1]) if position + 1 < len(groups) else []
        replies = yield Commands(transaction + following)
        if writes and replies[len(transaction) - 1] is None:
            # A watched key changed between the read and EXEC: nothing of the group was
            # written. Drop the next group's WATCH and decide this group again.
            failures += 1
            if failures <= RETRIES:
                reads = (yield Commands([("UNWATCH",), *read(group)]))[1:]
                continue
            (_, reply, *after) = yield Commands(
                [("UNWATCH",), _script(keys, columns, group, force), *following]
            )
            for k, status in zip(group, _script_statuses(reply), strict=True):
                statuses[k] = status
        else:
            _check_transaction(replies[: len(transaction)])
            after = replies[len(transaction) :]
        if not following:
            return statuses
        reads = after
        position, failures = position + 1, 0


def _check_transaction(replies: Sequence[object]) -> None:
    """The replies to MULTI, each queued command and EXEC (or to a lone UNWATCH): any error
    fails the step."""
    for reply in replies[:-1]:
        ok(reply, "MULTI")
    executed = ok(replies[-1], "EXEC")
    if len(replies) == 1:
        return
    if not isinstance(executed, list):
        raise MigrationFailed(f"EXEC returned {executed!r:.100}")
    for reply in executed:
        if isinstance(reply, ReplyError):
            raise MigrationFailed(f"HSETEX failed inside EXEC: {reply.message}")
