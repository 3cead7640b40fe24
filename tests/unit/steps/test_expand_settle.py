"""The expand cut-overs, driven offline: what was written just before a swap is brought in
line right after it, not at the end of the next step's full pass."""

from __future__ import annotations

import msgspec
from helpers import ft_info_reply

from ftctl.journal.projections import project_run
from ftctl.schema.ftinfo import parse_ft_info
from ftctl.steps.effects import Captured
from ftctl.steps.runner import RunContext
from ftctl.steps.spec import OnlineSpec, PrefixChange, RunSpec
from ftctl.steps.tables import EXPAND
from ftctl.testing import ScriptedRedis, commands_matching

SHADOW = "docs__s"


def _prefix_change() -> RunSpec:
    source = parse_ft_info(ft_info_reply()).schema
    target = msgspec.structs.replace(
        source, index=msgspec.structs.replace(source.index, prefix="item:")
    )
    return RunSpec(
        source_index="docs",
        target_index="docs",
        storage_type="hash",
        source_schema=source,
        target_schema=target,
        prefix_change=PrefixChange(old="doc:", new="item:"),
        online=OnlineSpec(serving_name="docs", shadow_name=SHADOW, strategy="expand"),
    )


def test_a_document_created_through_the_old_prefix_just_before_the_swap_is_moved_at_once() -> None:
    """A prefix change's cut-over takes the writes captured after its drain as soon as the
    swap is done and moves them (what the contract would do): a document created under the
    old prefix in that moment is found through the public name at once, where it was
    missing until the contract's pass over every key reached it."""
    scripted = ScriptedRedis(
        [
            ("SCAN 0 MATCH doc:* *", [b"0", []]),
            ("FT.INFO docs", ft_info_reply()),
            (f"FT.INFO {SHADOW}", ft_info_reply(SHADOW, prefixes=["item:"])),
            ("FT.INFO docs", ft_info_reply()),
            ("FT.DROPINDEX docs", b"OK"),
            (f"FT.ALIASADD docs {SHADOW}", b"OK"),
            (f"SET ftctl:schema:{SHADOW} *", b"OK"),
            ("DEL ftctl:schema:docs", 1),
            ("WATCH doc:7 item:7", b"OK"),
            ("HGETALL doc:7", {b"title": b"new"}),
            ("PEXPIRETIME doc:7", -1),
            ("HGETALL item:7", {}),
            ("EVAL *", [b"title", -1]),
            ("MULTI", b"OK"),
            ("DEL item:7", 0),
            ("HSET item:7 title new", 1),
            ("DEL doc:7", 1),
            ("EXEC", [0, 1, 1]),
        ],
        captured=[
            Captured([], lost=True),
            Captured([], lost=False),
            Captured([b"doc:7"], lost=False),
        ],
    )
    (step,) = [s for s in EXPAND.steps if s.name == "cutover"]
    state = project_run([], EXPAND.marks())

    scripted.run(step.body(RunContext(_prefix_change(), state, state)))

    scripted.assert_done()
    (swap,) = commands_matching(scripted.sent, "FT.DROPINDEX *")
    (moved,) = commands_matching(scripted.sent, "HSET item:7 *")
    assert scripted.sent.index(swap) < scripted.sent.index(moved)
