"""Snapshot steps driven by scripted replies (no server)."""

from __future__ import annotations

import pytest

from ftctl.errors import UsageError
from ftctl.schema.model import from_builtins
from ftctl.steps.effects import ReplyError
from ftctl.steps.history import decode_history, encode_history
from ftctl.steps.replies import search_ids
from ftctl.steps.snapshot import count_keys, glob_escape, read_source, shown_key, validate_schema
from ftctl.testing import ScriptedRedis, commands_matching

SCHEMA = from_builtins(
    {"index": {"name": "idx", "prefix": "doc:"}, "fields": [{"name": "t", "type": "text"}]}
)


def test_unknown_index_is_usage_error() -> None:
    """FT.INFO's 'Unknown index name' becomes a UsageError with a hint, nothing else is sent."""
    scripted = ScriptedRedis(
        [("FT.INFO ghost", ReplyError("Unknown index name")), ("FT._LIST", [b"idx"])]
    )
    with pytest.raises(UsageError, match="'ghost' does not exist") as info:
        scripted.run(read_source("ghost"))
    assert info.value.hint
    assert len(scripted.sent) == 2


def test_validate_schema_always_drops_throwaway_index() -> None:
    """The throwaway FT.CREATE is followed by its FT.DROPINDEX (no DD) in the same pipeline."""
    scripted = ScriptedRedis(
        [("FT.CREATE __ftctl_validate_t1 *", ReplyError("Bad arguments")),
         ("FT.DROPINDEX __ftctl_validate_t1", ReplyError("Unknown index name"))]
    )  # fmt: skip
    assert scripted.run(validate_schema(SCHEMA, "t1")) == "Bad arguments"
    (create,) = commands_matching(scripted.sent, "FT.CREATE *")
    assert "__ftctl_validate_t1:" in create and "doc:" not in create
    assert "DD" not in scripted.sent[1]
    ok = ScriptedRedis([("FT.CREATE *", b"OK"), ("FT.DROPINDEX *", b"OK")])
    assert ok.run(validate_schema(SCHEMA, "t2")) is None


def test_search_ids_and_shown_keys() -> None:
    """Document ids come out of both RESP2 lists and RESP3 maps as the key bytes; a key is
    shown in a plan with escapes for invalid UTF-8 and control characters only."""
    assert search_ids([2, b"doc:1", b"doc:2"]) == [b"doc:1", b"doc:2"]
    resp3 = {b"total_results": 1, b"results": [{b"id": b"doc:9", b"values": []}]}
    assert search_ids(resp3) == [b"doc:9"]
    assert shown_key(b"doc:\xff\x00\x1b[1m-\xc3\xa9") == "doc:\\xff\\x00\\x1b[1m-\xe9"


def test_count_keys_scans_until_cursor_zero_with_escaped_prefix() -> None:
    """count_keys sums every SCAN page, matching the prefix with glob characters escaped."""
    scripted = ScriptedRedis(
        [("SCAN 0 MATCH a\\*b:* COUNT 1000", [b"7", [b"a*b:1"]]),
         ("SCAN 7 MATCH a\\*b:* COUNT 1000", [b"0", [b"a*b:2", b"a*b:3"]])]
    )  # fmt: skip
    assert scripted.run(count_keys("a*b:")) == 3
    assert glob_escape("x?[y]") == "x\\?\\[y\\]"


def test_history_round_trip_and_damaged_record() -> None:
    """A history record decodes to the schema it stored; a damaged one is ignored (None)."""
    assert decode_history(encode_history(SCHEMA, updated_at="now")) == SCHEMA
    assert decode_history(b"{not json") is None
    assert decode_history(None) is None
