"""The expand cut-overs and the final index's verification, driven offline: what writers
put in the old layout is brought in line before it matters, not at the end of the next
step's full pass."""

from __future__ import annotations

import msgspec
import numpy as np
import pytest
from helpers import ft_info_reply

from ftctl.journal.projections import project_run
from ftctl.schema.ftinfo import parse_ft_info
from ftctl.steps.effects import Captured, ReplyError
from ftctl.steps.runner import RunContext
from ftctl.steps.spec import Conversion, OnlineSpec, PrefixChange, RunSpec
from ftctl.steps.tables import EXPAND, VerificationFailed
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
            ("SCAN 0 MATCH item:* *", [b"0", []]),  # copies whose old key is gone
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


def test_the_final_index_is_verified_after_old_format_writes_are_converted() -> None:
    """A vector written in the old datatype while the final index was built (an
    application not switched yet) failed in that index: final_verify converts what was
    written since the rewrite before it compares the indexes, instead of failing the run
    (RediSearch keeps the failure counted, so a later attempt would fail as well)."""
    schema = parse_ft_info(ft_info_reply()).schema
    spec = RunSpec(
        source_index="docs",
        target_index="docs",
        storage_type="hash",
        source_schema=schema,
        target_schema=schema,
        conversions=[
            Conversion(backup_field="emb", field="emb", source="float32", target="float16", dims=4)
        ],
        online=OnlineSpec(
            serving_name="docs",
            shadow_name=SHADOW,
            final_name=f"{SHADOW}f",
            strategy="expand",
            temp_fields={"emb": "emb__t"},
        ),
    )
    legacy = np.arange(4, dtype=np.float32).tobytes()
    scripted = ScriptedRedis(
        [
            ("SCAN 0 MATCH doc:* *", [b"0", [b"doc:3"]]),
            ("WATCH doc:3", b"OK"),
            ("HMGET doc:3 emb emb__t emb__t_rb", [legacy, None, None]),
            ("HPEXPIRETIME doc:3 FIELDS 1 emb", [-1]),
            ("MULTI", b"OK"),
            ("HSET doc:3 emb__t *", 1),
            ("HSET doc:3 emb *", 0),
            ("EXEC", [1, 0]),
            (f"FT.INFO {SHADOW}f", ReplyError("Unknown index name")),
        ],
        captured=[Captured([b"doc:3"], lost=False)],
    )
    (step,) = [s for s in EXPAND.steps if s.name == "final_verify"]
    state = project_run([], EXPAND.marks())

    with pytest.raises(VerificationFailed):
        scripted.run(step.body(RunContext(spec, state, state)))

    scripted.assert_done()
    (converted,) = commands_matching(scripted.sent, "HSET doc:3 emb *")
    assert converted[3] == np.arange(4, dtype=np.float16).tobytes()
