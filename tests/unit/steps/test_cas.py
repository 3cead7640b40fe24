"""Compare-and-set writes from scripted replies: what is decided per key, and how the
WATCH/EXEC rounds are laid out, retried and given up on."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest

from ftctl.errors import MigrationFailed
from ftctl.steps import cas, scripts
from ftctl.steps.effects import Command, Commands, Packed, ReplyError, Session, pack
from ftctl.testing import unpack

ORIGINAL, NEW, OTHER = b"original", b"new", b"other"


def _column(count: int, field: str = "vec") -> cas.Column:
    return cas.Column(field, [ORIGINAL] * count, [NEW] * count)


@pytest.mark.parametrize(
    ("current", "expected", "force", "status", "pending"),
    [
        ([ORIGINAL], [ORIGINAL], False, scripts.WRITTEN, ["vec", NEW]),
        ([NEW], [ORIGINAL], False, scripts.ALREADY, []),
        ([OTHER], [ORIGINAL], False, scripts.CONFLICT, []),
        ([None], [ORIGINAL], False, scripts.ABSENT, []),
        ([OTHER], [None], False, scripts.ABSENT, []),
        ([OTHER], [ORIGINAL], True, scripts.WRITTEN, ["vec", NEW]),
        ([None], [ORIGINAL], True, scripts.ABSENT, []),
    ],
)
def test_decide_one_field(
    current: list[bytes | None],
    expected: list[bytes | None],
    force: bool,
    status: int,
    pending: list[object],
) -> None:
    """The script's rules: wanted bytes already there → already; the expected bytes →
    written; other bytes → conflict unless forced; a deleted key or field → absent (gone,
    never recreated, even forced); nothing expected → absent."""
    column = cas.Column("vec", expected, [NEW])
    assert cas.decide(current, [column], 0, force=force) == (status, pending)


def test_decide_two_fields_conflict_blocks_the_whole_key() -> None:
    """A key is written whole or not at all: one conflicting field leaves the other field
    alone too; one field already converted does not stop the other from being written."""
    a, b = _column(1, "a"), _column(1, "b")
    assert cas.decide([OTHER, ORIGINAL], [a, b], 0, force=False) == (scripts.CONFLICT, [])
    assert cas.decide([NEW, ORIGINAL], [a, b], 0, force=False) == (
        scripts.WRITTEN,
        ["b", NEW],
    )


Responder = Callable[[Sequence[Command]], list[object]]


def _drive(step: Any, respond: Responder) -> tuple[Any, list[list[str]]]:
    """Run a Session's sub-step; return its value and each round trip's command names."""
    rounds: list[list[str]] = []
    reply: object = None
    while True:
        try:
            effect = step.send(reply)
        except StopIteration as done:
            return done.value, rounds
        if isinstance(effect, Session):
            reply, inner = _drive(effect.step, respond)
            rounds += inner
            continue
        if isinstance(effect, Packed):
            commands = [
                tuple(a.decode() if i == 0 else a for i, a in enumerate(c))
                for c in unpack(effect.payload, effect.count)
            ]
        else:
            assert isinstance(effect, Commands) and not effect.transaction
            commands = list(effect.commands)
        rounds.append([str(c[0]) for c in commands])
        reply = respond(commands)


def _server(values: dict[bytes, bytes], exec_fails: int = 0) -> Responder:
    """Answers like Redis for WATCH/HMGET/MULTI/HSETEX/EXEC/UNWATCH/EVAL; the first
    ``exec_fails`` EXECs report a changed watched key."""
    queued: list[Command] = []
    failures = [exec_fails]

    def respond(commands: Sequence[Command]) -> list[object]:
        out: list[object] = []
        for command in commands:
            name = command[0]
            if name in ("WATCH", "UNWATCH", "MULTI"):
                out.append(b"OK")
            elif name == "HGET":
                out.append(values.get(bytes(command[1])))  # type: ignore[arg-type]
            elif name == "HSETEX":
                queued.append(command)
                out.append(b"QUEUED")
            elif name == "EXEC":
                if failures[0]:
                    failures[0] -= 1
                    queued.clear()
                    out.append(None)
                    continue
                for c in queued:
                    values[bytes(c[1])] = bytes(c[-1])  # type: ignore[arg-type]
                out.append([1] * len(queued))
                queued.clear()
            elif name == "EVAL":
                count = int(command[2])
                out.append([scripts.WRITTEN] * count)
            else:
                raise AssertionError(f"unexpected {command!r}")
        return out

    return respond


def _keys(count: int) -> list[bytes]:
    return [f"k:{i}".encode() for i in range(count)]


def test_groups_share_round_trips() -> None:
    """Each group's EXEC travels with the next group's WATCH and reads: 5 keys in groups
    of 2 take 3 + 1 round trips, and every key is written."""
    keys = _keys(5)
    values = dict.fromkeys(keys, ORIGINAL)
    step = cas.compare_and_set(
        cas.prepare(keys, [_column(5)], force=False, batch_size=2, watch=True)
    )
    statuses, rounds = _drive(step, _server(values))
    assert statuses == [scripts.WRITTEN] * 5
    assert set(values.values()) == {NEW}
    assert rounds == [
        ["WATCH", "HGET", "HGET"],
        ["MULTI", "HSETEX", "HSETEX", "EXEC", "WATCH", "HGET", "HGET"],
        ["MULTI", "HSETEX", "HSETEX", "EXEC", "WATCH", "HGET"],
        ["MULTI", "HSETEX", "EXEC"],
    ]


def test_watch_group_is_capped() -> None:
    """WATCH's cost grows with the square of its keys: a group never exceeds WATCH_GROUP."""
    keys = _keys(cas.WATCH_GROUP + 1)
    values = dict.fromkeys(keys, ORIGINAL)
    step = cas.compare_and_set(
        cas.prepare(keys, [_column(len(keys))], force=False, batch_size=500, watch=True)
    )
    _, rounds = _drive(step, _server(values))
    assert rounds[0].count("HGET") == cas.WATCH_GROUP


def test_a_group_with_nothing_to_write_unwatches() -> None:
    keys = _keys(2)
    values = dict.fromkeys(keys, NEW)
    step = cas.compare_and_set(
        cas.prepare(keys, [_column(2)], force=False, batch_size=10, watch=True)
    )
    statuses, rounds = _drive(step, _server(values))
    assert statuses == [scripts.ALREADY] * 2
    assert rounds == [["WATCH", "HGET", "HGET"], ["UNWATCH"]]


def test_failed_exec_rereads_the_group_after_dropping_the_next_watch() -> None:
    """EXEC's nil (a watched key changed) means nothing was written: the next group's WATCH
    is dropped and the same group is read and decided again."""
    keys = _keys(3)
    values = dict.fromkeys(keys, ORIGINAL)
    step = cas.compare_and_set(
        cas.prepare(keys, [_column(3)], force=False, batch_size=2, watch=True)
    )
    statuses, rounds = _drive(step, _server(values, exec_fails=1))
    assert statuses == [scripts.WRITTEN] * 3
    assert set(values.values()) == {NEW}
    assert rounds[:3] == [
        ["WATCH", "HGET", "HGET"],
        ["MULTI", "HSETEX", "HSETEX", "EXEC", "WATCH", "HGET"],
        ["UNWATCH", "WATCH", "HGET", "HGET"],
    ]


def test_a_group_that_keeps_failing_falls_back_to_the_script() -> None:
    """After RETRIES failed EXECs the group goes to the compare-and-set script (which cannot
    be raced), together with the next group's reads; the run goes on."""
    keys = _keys(3)
    values = dict.fromkeys(keys, ORIGINAL)
    step = cas.compare_and_set(
        cas.prepare(keys, [_column(3)], force=False, batch_size=2, watch=True)
    )
    statuses, rounds = _drive(step, _server(values, exec_fails=cas.RETRIES + 1))
    assert statuses == [scripts.WRITTEN] * 3
    fallback = rounds[2 + 2 * cas.RETRIES]  # the first read, then (EXEC, re-read) each time
    assert fallback == ["UNWATCH", "EVAL", "WATCH", "HGET"]
    assert rounds[-1] == ["MULTI", "HSETEX", "EXEC"]


def test_an_error_inside_exec_fails_the_step() -> None:
    keys = _keys(1)

    def respond(commands: Sequence[Command]) -> list[object]:
        names = [c[0] for c in commands]
        if names[0] == "WATCH":
            return [b"OK", ORIGINAL]
        return [b"OK", b"QUEUED", [ReplyError("OOM command not allowed")]]

    step = cas.compare_and_set(
        cas.prepare(keys, [_column(1)], force=False, batch_size=10, watch=True)
    )
    with pytest.raises(MigrationFailed, match="OOM"):
        _drive(step, respond)


def test_without_hsetex_each_batch_is_one_script_call() -> None:
    keys = _keys(5)
    step = cas.compare_and_set(
        cas.prepare(keys, [_column(5)], force=True, batch_size=2, watch=False)
    )
    statuses, rounds = _drive(step, _server({}))
    assert statuses == [scripts.WRITTEN] * 5
    assert rounds == [["EVAL", "EVAL", "EVAL"]]


@pytest.mark.parametrize("fields", [["vec"], ["a", "bé"]])
def test_encoded_reads_and_writes_are_what_pack_makes(fields: list[str]) -> None:
    """The per-key templates encode exactly what hiredis packs for the same commands."""
    keys = [b"k:1", "ключ:2".encode(), b""]
    columns = [cas.Column(f, [ORIGINAL] * 3, [NEW, b"\r\n$3", b""]) for f in fields]
    prepared = cas.prepare(keys, columns, force=False, batch_size=2, watch=True)
    read = "HGET" if len(fields) == 1 else "HMGET"
    assert prepared.reads == [
        pack([("WATCH", *keys[:2]), *[(read, k, *fields) for k in keys[:2]]]),
        pack([("WATCH", keys[2]), (read, keys[2], *fields)]),
    ]
    writes = [
        (
            "HSETEX",
            key,
            "KEEPTTL",
            "FIELDS",
            len(fields),
            *[x for c in columns for x in (c.field, c.wanted[k])],
        )
        for k, key in enumerate(keys)
    ]
    assert prepared.writes == [pack([w]) for w in writes]
