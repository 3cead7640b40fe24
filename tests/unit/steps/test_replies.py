"""Reply readers shared by the steps, for RESP2 and RESP3 shapes."""

from __future__ import annotations

import pytest

from ftctl.steps.effects import ReplyError
from ftctl.steps.replies import field_present


@pytest.mark.parametrize(
    ("reply", "present"),
    [
        (1, True),
        (0, False),
        ([b"string"], True),
        ([], False),
        ([[b"string"]], True),
        ([[]], False),
        (b"string", True),
        (None, False),
        (ReplyError("WRONGTYPE"), False),
    ],
    ids=[
        "hexists-1", "hexists-0", "resp2-type", "resp2-none", "resp3-type", "resp3-none",
        "legacy-path-type", "legacy-path-nil", "error",
    ],
)  # fmt: skip
def test_field_present_reads_hexists_and_json_type_in_both_protocols(
    reply: object, present: bool
) -> None:
    """HEXISTS' 1/0 and JSON.TYPE's answers, RESP3's extra nesting included: ``[[]]`` (a
    path that matches nothing) is absent, not a non-empty list."""
    assert field_present(reply) is present
