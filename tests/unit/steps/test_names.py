"""Public names in runs (scripted replies): which names a run keeps on each side, pointing
them at an index, the names_resolve check, and the preflight that refuses a moved alias."""

from __future__ import annotations

import msgspec
import pytest
from helpers import ft_info_reply

from ftctl.errors import MigrationFailed, RefusedError
from ftctl.journal.events import CheckFailed
from ftctl.schema.ftinfo import parse_ft_info
from ftctl.steps.effects import ReplyError
from ftctl.steps.index_ops import preflight
from ftctl.steps.names import names_check, point_names
from ftctl.steps.spec import OnlineSpec, RunSpec
from ftctl.testing import ScriptedRedis, commands_matching

UNKNOWN = ReplyError("Unknown index name")
REAL = "docs__ftctl_1a2b"


def _spec(target: str = REAL, aliases: tuple[str, ...] = ("docs", "mine")) -> RunSpec:
    source = parse_ft_info(ft_info_reply(REAL)).schema
    renamed = msgspec.structs.replace(
        source, index=msgspec.structs.replace(source.index, name=target)
    )
    return RunSpec(
        source_index=REAL,
        target_index=target,
        storage_type="hash",
        source_schema=source,
        target_schema=renamed,
        aliases=list(aliases),
    )


def test_drop_recreate_keeps_every_name_on_both_sides() -> None:
    """The kept names name the target after apply and the source after rollback; a name
    equal to the index's own name needs no alias (a renamed index's old name)."""
    spec = _spec()
    assert spec.names_after() == ["docs", "mine"] and spec.names_before() == ["docs", "mine"]
    renamed = _spec(target="catalog", aliases=(REAL, "mine"))
    assert renamed.names_after() == [REAL, "mine"]
    assert renamed.names_before() == ["mine"]


def test_online_names_after_are_the_serving_name_and_the_moved_aliases() -> None:
    """Online: names after cut-over come from the online section, as before."""
    spec = msgspec.structs.replace(
        _spec(), online=OnlineSpec(serving_name="docs", aliases=["mine"], shadow_name="s")
    )
    assert spec.names_after() == ["docs", "mine"]


def test_point_names_adds_the_missing_ones_and_is_idempotent() -> None:
    """Names already on the index are left alone, missing ones are FT.ALIASADDed; a second
    run (resume) finds them all there and sends nothing but FT.INFO."""
    scripted = ScriptedRedis(
        [
            ("FT.INFO docs", UNKNOWN),
            ("FT.INFO mine", ft_info_reply(REAL)),
            (f"FT.ALIASADD docs {REAL}", b"OK"),
        ]
    )
    assert scripted.run(point_names(REAL, ["docs", REAL, "mine"])) == 1
    scripted.assert_done()
    again = ScriptedRedis([("FT.INFO *", ft_info_reply(REAL))] * 2)
    assert again.run(point_names(REAL, ["docs", "mine"])) == 0
    assert not commands_matching(again.sent, "FT.ALIAS*")


def test_point_names_never_steals_a_name_taken_meanwhile() -> None:
    """A kept name that now resolves to another index fails the step with the command to run,
    and no alias is added or moved."""
    scripted = ScriptedRedis([("FT.INFO docs", ft_info_reply("theirs")), ("FT.INFO mine", UNKNOWN)])
    with pytest.raises(MigrationFailed, match="'docs' → 'theirs'"):
        scripted.run(point_names(REAL, ["docs", "mine"]))
    assert not commands_matching(scripted.sent, "FT.ALIAS*")


def test_names_check_counts_each_name_that_does_not_resolve() -> None:
    """names_resolve fails once per name that is missing or resolves elsewhere, naming them;
    with no names there is no check."""
    scripted = ScriptedRedis(
        [
            ("FT.INFO docs", ft_info_reply(REAL)),
            ("FT.INFO mine", UNKNOWN),
            ("FT.INFO x", ft_info_reply("other")),
        ]
    )
    name, failures, detail = scripted.run(names_check(REAL, ["docs", "mine", "x"]))  # type: ignore[misc]
    assert (name, failures) == ("names_resolve", 2)
    assert "'mine' does not exist" in detail and "'x' resolves to 'other'" in detail
    assert ScriptedRedis([]).run(names_check(REAL, [REAL])) is None


def test_preflight_refuses_when_a_kept_alias_moved_away() -> None:
    """Before the drop, every kept alias must still resolve to the source: the drop would
    take it along and the run would then point another index's alias at the target."""
    scripted = ScriptedRedis(
        [
            (f"FT.INFO {REAL}", ft_info_reply(REAL)),
            ("FT.CREATE __ftctl_check_*", b"OK"),
            ("FT.DROPINDEX __ftctl_check_*", b"OK"),
            ("FT.INFO docs", ft_info_reply(REAL)),
            ("FT.INFO mine", ft_info_reply("theirs")),
        ]
    )
    with pytest.raises(RefusedError, match="alias 'mine' resolves to 'theirs'"):
        scripted.run(preflight(_spec()))
    failed = [e for e in scripted.recorded if isinstance(e, CheckFailed)]
    assert [e.check for e in failed] == ["aliases"]
