"""Preflight safety checks from scripted replies."""

from __future__ import annotations

import pytest
from fakestore import spec

from ftctl.journal.segments import SegmentPayload
from ftctl.steps.safety import rename_destinations
from ftctl.testing import ScriptedRedis


@pytest.mark.parametrize(
    ("free", "taken"), [([], [b"string"]), ([[]], [[b"string"]])], ids=["resp2", "resp3"]
)
def test_a_json_rename_destination_is_taken_only_where_it_answers_a_type(
    free: object, taken: object
) -> None:
    """Only a document whose destination path answers a JSON type refuses the rename, in
    either protocol (RESP3's ``[[]]`` for "no match" once refused every JSON rename)."""
    scripted = ScriptedRedis(
        [("JSON.TYPE doc:0 $.headline", free), ("JSON.TYPE doc:1 $.headline", taken)]
    )
    scripted.segments.append(SegmentPayload(keys=[b"doc:0", b"doc:1"]))
    run = spec(storage="json", renames=[("$.title", "$.headline")])

    found = scripted.run(rename_destinations(run, [0]))

    assert [check for check, _ in found] == ["rename_destinations_free"]
    assert found[0][1].startswith("1 documents already have the destination")
    assert "doc:1" in found[0][1] and "doc:0" not in found[0][1]
