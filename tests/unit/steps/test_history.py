"""Schema history records: the schema an index was created with and the public names
(aliases) ftctl keeps for it; records of earlier releases still read."""

from __future__ import annotations

import json

from ftctl.schema.model import from_builtins, schema_to_builtins
from ftctl.steps.history import (
    decode_history,
    decode_record,
    encode_history,
    read_record,
    record_history,
)
from ftctl.testing import ScriptedRedis

SCHEMA = from_builtins(
    {"index": {"name": "idx", "prefix": "doc:"}, "fields": [{"name": "t", "type": "text"}]}
)


def test_record_keeps_aliases_in_order_without_the_index_own_name() -> None:
    """Aliases round-trip deduplicated in order; the index's own name is not an alias."""
    data = encode_history(SCHEMA, aliases=["docs", "idx", "mine", "docs"])
    record = decode_record(data)
    assert record is not None
    assert record.schema == SCHEMA and record.aliases == ["docs", "mine"]
    assert json.loads(data)["aliases"] == ["docs", "mine"]


def test_record_of_an_earlier_release_reads_with_no_aliases() -> None:
    """A record written before aliases existed (no ``aliases`` key) reads as keeping none."""
    old = json.dumps(
        {"schema": schema_to_builtins(SCHEMA), "updated_at": "", "ftctl_version": "0.1.0",
         "plan_digest": ""}
    ).encode()  # fmt: skip
    record = decode_record(old)
    assert record is not None and record.aliases == [] and record.schema == SCHEMA
    assert decode_history(old) == SCHEMA


def test_damaged_record_is_ignored() -> None:
    """History is advisory: a damaged or absent record is None, never an error."""
    assert decode_record(b'{"schema": 1}') is None
    assert decode_record(b"{not json") is None
    assert decode_record(None) is None


def test_record_history_writes_aliases_and_forgets_the_old_name() -> None:
    """record_history SETs the new index's record with its aliases and DELs the record of a
    name that no longer is an index; read_record reads it back."""
    written: list[bytes] = []

    def keep(command: tuple[object, ...]) -> bytes:
        written.append(command[2])  # type: ignore[arg-type]
        return b"OK"

    scripted = ScriptedRedis([("SET ftctl:schema:idx *", keep), ("DEL ftctl:schema:old", 1)])
    scripted.run(record_history(SCHEMA, forget="old", aliases=["docs", "mine"]))
    scripted.assert_done()
    reread = ScriptedRedis([("GET ftctl:schema:idx", written[0])]).run(read_record("idx"))
    assert reread is not None and reread.aliases == ["docs", "mine"]
