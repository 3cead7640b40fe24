"""Listing indexes by the names users know (scripted replies)."""

from __future__ import annotations

from helpers import ft_info_reply

from ftctl.schema.model import from_builtins
from ftctl.steps.catalog import PublicIndex, public_indexes
from ftctl.steps.effects import ReplyError
from ftctl.steps.history import encode_history
from ftctl.testing import ScriptedRedis

SCHEMA = from_builtins(
    {
        "index": {"name": "docs__ftctl_1a2b", "prefix": "doc:"},
        "fields": [{"name": "t", "type": "text"}],
    }
)


def test_public_indexes_list_recorded_aliases_that_still_resolve() -> None:
    """Each index comes with the aliases its schema history records that still resolve to it
    (a moved one is left out), sorted by the first public name; a generated real name comes
    after its aliases, an index without history is known by its own name."""
    scripted = ScriptedRedis(
        [
            ("FT._LIST", [b"zeta", b"docs__ftctl_1a2b"]),
            (
                "GET ftctl:schema:docs__ftctl_1a2b",
                encode_history(SCHEMA, aliases=["docs", "moved"]),
            ),
            ("GET ftctl:schema:zeta", None),
            ("FT.INFO docs", ft_info_reply("docs__ftctl_1a2b")),
            ("FT.INFO moved", ReplyError("Unknown index name")),
        ]
    )
    found = scripted.run(public_indexes())
    scripted.assert_done()
    assert found == [
        PublicIndex(index="docs__ftctl_1a2b", aliases=["docs"]),
        PublicIndex(index="zeta"),
    ]
    assert found[0].name == "docs" and found[0].names == ["docs", "docs__ftctl_1a2b"]
    assert found[1].name == "zeta"
