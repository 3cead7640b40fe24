"""expand from scripted replies: what the steps read and how they decide, reply shapes of
both protocols included."""

from __future__ import annotations

import msgspec
import pytest
from fakestore import spec

from ftctl.steps import expand
from ftctl.steps.spec import OnlineSpec
from ftctl.testing import ScriptedRedis

JSON_RENAME = msgspec.structs.replace(
    spec(storage="json", renames=[("$.title", "$.headline")]),
    online=OnlineSpec(serving_name="docs", strategy="expand"),
)


@pytest.mark.parametrize(
    ("has_old", "lacks_old"),
    [([b"string"], []), ([[b"string"]], [[]])],
    ids=["resp2", "resp3"],
)
def test_json_leftovers_count_only_documents_that_keep_the_old_path(
    has_old: object, lacks_old: object
) -> None:
    """JSON.TYPE answers ``[type]`` (RESP2) or ``[[type]]`` (RESP3), empty where the path
    matches nothing: only a document whose old path still answers a type is a leftover
    (RESP3's ``[[]]`` once counted every renamed document)."""
    scripted = ScriptedRedis(
        [
            ("SCAN 0 MATCH doc:* COUNT * TYPE ReJSON-RL", [b"0", [b"doc:0", b"doc:1"]]),
            ("JSON.TYPE doc:0 $.title", has_old),
            ("JSON.TYPE doc:1 $.title", lacks_old),
        ]
    )

    assert scripted.run(expand.leftovers(JSON_RENAME)) == 1
