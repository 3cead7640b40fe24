"""enumerate from scripted replies: aggregate pages and cursor, prefix-scoped SCAN fallback."""

from __future__ import annotations

import msgspec
import pytest
from helpers import ft_info_reply

from ftctl.errors import MigrationFailed, RefusedError
from ftctl.journal.events import EnumerationRestarted, KeysEnumerated, Note
from ftctl.journal.projections import project_run
from ftctl.schema.ftinfo import parse_ft_info
from ftctl.steps.effects import Command, ReplyError
from ftctl.steps.enumerate import enumerate_keys, glob_escape
from ftctl.steps.spec import RunSpec
from ftctl.testing import Responder, ScriptedRedis, commands_matching


def _spec(prefixes: tuple[str, ...] = ("doc:",), storage: str = "hash", batch: int = 2) -> RunSpec:
    schema = parse_ft_info(ft_info_reply(prefixes=prefixes)).schema
    schema = msgspec.structs.replace(
        schema, index=msgspec.structs.replace(schema.index, storage_type=storage)
    )
    return RunSpec(
        source_index="docs",
        target_index="docs",
        storage_type=storage,
        source_schema=schema,
        target_schema=schema,
        batch_size=batch,
        segment_batches=1,
    )


def _resp3_page(keys: list[bytes], cursor: int) -> list[object]:
    rows = [{b"extra_attributes": {b"__key": k}, b"values": []} for k in keys]
    return [{b"total_results": 99, b"results": rows}, cursor]


def _resp2_page(keys: list[bytes], cursor: int) -> list[object]:
    return [[99, *([b"__key", k] for k in keys)], cursor]


def _scan(cursor: str, match: str, key_type: str, reply: object) -> Responder:
    """A responder that checks the exact SCAN arguments (globs cannot match backslashes)."""

    def respond(command: Command) -> object:
        assert command == ("SCAN", cursor, "MATCH", match, "COUNT", "1000", "TYPE", key_type)
        return reply

    return respond


def _batches(scripted: ScriptedRedis) -> list[list[bytes]]:
    events = [e for e in scripted.recorded if isinstance(e, KeysEnumerated)]
    assert [e.batch for e in events] == list(range(len(events)))
    return [scripted.segments[e.segment].keys for e in events]


@pytest.mark.parametrize("page", [_resp3_page, _resp2_page], ids=["resp3", "resp2"])
def test_aggregate_pages_follow_the_cursor_into_full_batches(page: object) -> None:
    """Keys of every FT.AGGREGATE / FT.CURSOR READ page land in segments of segment_size keys
    (the last one shorter), one KeysEnumerated event each; the cursor is read until 0, and
    the read sent past its end is ignored."""
    assert callable(page)
    keys = [f"doc:{i}".encode() for i in range(5)]
    scripted = ScriptedRedis(
        [
            ("FT.INFO docs", ft_info_reply()),
            (
                "FT.AGGREGATE docs * LOAD 1 @__key WITHCURSOR COUNT 5000 MAXIDLE *",
                page(keys[:3], 7),
            ),
            # Two reads per round trip; a cursor keeps its id until it answers 0.
            ("FT.CURSOR READ docs 7 COUNT 5000", page(keys[3:4], 7)),
            ("FT.CURSOR READ docs 7 COUNT 5000", page(keys[4:], 7)),
            ("FT.CURSOR READ docs 7 COUNT 5000", page([], 0)),
            ("FT.CURSOR READ docs 7 COUNT 5000", ReplyError("Cursor not found, id: 7")),
            ("FT.INFO docs", ft_info_reply()),
        ]
    )
    assert scripted.run(enumerate_keys(_spec())).keys == 5
    scripted.assert_done()
    assert _batches(scripted) == [keys[:2], keys[2:4], keys[4:]]
    assert not commands_matching(scripted.sent, "SCAN *")


@pytest.mark.parametrize(
    ("stats", "storage", "key_type"),
    [
        ({"failures": 2, "num_docs": 1}, "hash", "hash"),
        ({"failures": 1, "num_docs": 2}, "json", "ReJSON-RL"),
    ],
    ids=["hash", "json"],
)
def test_scan_fallback_is_prefix_scoped_typed_and_deduplicated(
    stats: dict[str, object], storage: str, key_type: str
) -> None:
    """With indexing failures, keys come from SCAN on each prefix (glob-escaped, of the
    index's key type), a Note says why, and a key that SCAN returns twice or that two
    overlapping prefixes both match is enumerated once."""
    spec = _spec(prefixes=("doc:", "doc:[1]"), storage=storage)
    scripted = ScriptedRedis(
        [
            ("FT.INFO docs", ft_info_reply(**stats)),  # type: ignore[arg-type]
            ("SCAN *", _scan("0", "doc:*", key_type, [b"17", [b"doc:a", b"doc:[1]x"]])),
            ("SCAN *", _scan("17", "doc:*", key_type, [b"0", [b"doc:a", b"doc:b"]])),
            ("SCAN *", _scan("0", "doc:\\[1\\]*", key_type, [b"0", [b"doc:[1]x"]])),
            ("FT.INFO docs", ft_info_reply(**stats)),  # type: ignore[arg-type]
        ]
    )
    assert scripted.run(enumerate_keys(spec)).keys == 3
    scripted.assert_done()
    assert _batches(scripted) == [[b"doc:a", b"doc:[1]x"], [b"doc:b"]]
    (note,) = [e for e in scripted.recorded if isinstance(e, Note)]
    assert "SCAN" in note.message
    assert glob_escape("a*b?[c]\\") == "a\\*b\\?\\[c\\]\\\\"


def test_aggregate_error_fails_the_step() -> None:
    """An error reply from FT.AGGREGATE is a MigrationFailed naming the command, no segment."""
    scripted = ScriptedRedis(
        [("FT.INFO docs", ft_info_reply()), ("FT.AGGREGATE *", ReplyError("Cursors disabled"))]
    )
    with pytest.raises(MigrationFailed, match=r"FT\.AGGREGATE failed: Cursors disabled"):
        scripted.run(enumerate_keys(_spec()))
    assert scripted.segments == []


def test_a_row_without_a_key_restarts_the_enumeration_with_search() -> None:
    """FT.AGGREGATE answers an empty row for a key holding a NUL byte: the rows are counted,
    the enumeration is journaled as restarted and lists the index with FT.SEARCH pages,
    whose ids are binary-safe; batches are numbered from 0 again."""
    keys = [b"doc:0", b"doc:nul\x00", b"doc:2"]
    rows: list[object] = [[b"__key", keys[0]], None, [b"__key", keys[2]]]
    scripted = ScriptedRedis(
        [
            ("FT.INFO docs", ft_info_reply(num_docs=3)),
            ("FT.AGGREGATE *", [[3, *rows], 0]),
            ("FT.SEARCH docs * NOCONTENT LIMIT 0 10000 DIALECT 2", [3, *keys]),
            ("FT.INFO docs", ft_info_reply(num_docs=3)),
        ]
    )
    found = scripted.run(enumerate_keys(_spec()))
    assert found.keys == 3
    restarted = [e for e in scripted.recorded if isinstance(e, EnumerationRestarted)]
    assert len(restarted) == 1 and "NUL" in restarted[0].reason
    events = [e for e in scripted.recorded if isinstance(e, KeysEnumerated | EnumerationRestarted)]
    after = events[events.index(restarted[0]) + 1 :]
    assert [scripted.segments[e.segment].keys for e in after if isinstance(e, KeysEnumerated)] == [
        keys[:2],
        keys[2:],
    ]
    state = project_run(scripted.recorded)
    assert state.keys_enumerated == 3 and len(state.key_segments) == 2


def test_filter_index_with_failures_is_never_scanned() -> None:
    """An index with a FILTER is listed from the index even when it has failures (a SCAN
    would take in keys the filter excludes); the failures are counted as unlisted."""
    spec = _spec()
    filtered = msgspec.structs.replace(
        spec.source_schema,
        index=msgspec.structs.replace(spec.source_schema.index, filter="@kind=='in'"),
    )
    spec = msgspec.structs.replace(spec, source_schema=filtered)
    scripted = ScriptedRedis(
        [
            ("FT.INFO docs", ft_info_reply(num_docs=1, failures=4)),
            ("FT.AGGREGATE *", _resp2_page([b"doc:1"], 0)),
            ("FT.INFO docs", ft_info_reply(num_docs=1, failures=4)),
        ]
    )
    found = scripted.run(enumerate_keys(spec))
    assert found == (1, 4)
    assert not commands_matching(scripted.sent, "SCAN *")


def test_fewer_keys_than_documents_refuses() -> None:
    """An enumeration that found fewer keys than the index holds (before and after) is
    refused before anything changed, instead of migrating part of the index."""
    scripted = ScriptedRedis(
        [
            ("FT.INFO docs", ft_info_reply(num_docs=3)),
            ("FT.AGGREGATE *", _resp2_page([b"doc:1"], 0)),
            ("FT.INFO docs", ft_info_reply(num_docs=3)),
        ]
    )
    with pytest.raises(RefusedError, match="found 1 keys but the index holds 3"):
        scripted.run(enumerate_keys(_spec()))


def test_an_online_enumeration_notes_a_count_writers_moved() -> None:
    """Online (writers expected), fewer keys than the index held is a note, not a refusal:
    the expand pass is a SCAN of its own, and a document the application created or
    deleted meanwhile is not the migration's to lose."""
    scripted = ScriptedRedis(
        [
            ("FT.INFO docs", ft_info_reply(num_docs=3)),
            ("FT.AGGREGATE *", _resp2_page([b"doc:1", b"doc:2"], 0)),
            ("FT.INFO docs", ft_info_reply(num_docs=4)),
        ]
    )

    found = scripted.run(enumerate_keys(_spec(), writers=True))

    assert found.keys == 2
    (note,) = [e for e in scripted.recorded if isinstance(e, Note)]
    assert note.message.startswith("enumeration found 2 keys while the index held 3, then 4")
