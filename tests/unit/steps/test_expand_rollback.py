"""The rollback of an expand run whose vector is converted in place, driven offline."""

from __future__ import annotations

from helpers import ft_info_reply

from ftctl.journal.events import StepFinished, StepStarted
from ftctl.journal.projections import project_run
from ftctl.schema.ftinfo import parse_ft_info
from ftctl.schema.model import VectorField, from_builtins
from ftctl.steps.effects import Captured
from ftctl.steps.runner import RunContext
from ftctl.steps.spec import Conversion, DocFieldRename, OnlineSpec, RunSpec
from ftctl.steps.tables import EXPAND, EXPAND_ROLLBACK, _Swap
from ftctl.testing import ScriptedRedis, commands_matching

SHADOW = "docs__s"


def _float16_in_place() -> RunSpec:
    def schema(datatype: str) -> object:
        return {
            "index": {"name": "docs", "prefix": "doc:"},
            "fields": [
                {"name": "title", "type": "text"},
                {
                    "name": "emb",
                    "type": "vector",
                    "attrs": {"dims": 4, "algorithm": "flat", "datatype": datatype},
                },
            ],
        }

    return RunSpec(
        source_index="docs",
        target_index="docs",
        storage_type="hash",
        source_schema=from_builtins(schema("float32")),
        target_schema=from_builtins(schema("float16")),
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


def test_a_rollback_right_after_the_cut_over_rewrites_the_field_back() -> None:
    """An apply stopped right after its cut-over never rewrote ``emb``, but the application
    writes float16 into it from the cut-over on (README). The rollback must not cut back
    to an index reading ``emb`` as float32 (those documents fail in it, and its
    verification fails): it reads the rollback's temporary field, then rewrites ``emb``
    back and moves to an index on it, as after a rewrite."""
    events = [StepStarted(step="expand"), StepFinished(step="expand")]
    events += [StepStarted(step="cutover"), StepFinished(step="cutover")]
    applied = project_run(events, EXPAND.marks())
    state = project_run([], EXPAND_ROLLBACK.marks())
    ctx = RunContext(_float16_in_place(), state, applied)

    (vector,) = [
        f for f in _Swap(ctx, rollback_side=True).schema.fields if isinstance(f, VectorField)
    ]
    assert vector.path == "emb__t_rb"
    for name in ("rb_rewrite", "rb_final_create", "rb_final_cutover"):
        (step,) = [s for s in EXPAND_ROLLBACK.steps if s.name == name]
        skip = step.skip(ctx)
        assert not isinstance(skip, str)
        scripted = ScriptedRedis([("FT.INFO docs", ft_info_reply(SHADOW))])
        assert skip is None or scripted.run(skip) is None, name

    # never cut over (killed before the swap): nothing to rewrite back
    scripted = ScriptedRedis([("FT.INFO docs", ft_info_reply("docs"))])
    (rewrite,) = [s for s in EXPAND_ROLLBACK.steps if s.name == "rb_rewrite"]
    skip = rewrite.skip(ctx)
    assert not isinstance(skip, str) and skip is not None
    assert scripted.run(skip) == "no vector was rewritten in place"


def test_the_rollback_follows_writes_from_writing_the_old_layout_back() -> None:
    """rb_relayout starts change capture on the layout it undoes and, after its passes,
    brings what writers wrote meanwhile in line: a document an application (still on the
    new layout, as it must be until the cut-back) renamed after the pass reached it gets
    its old field back from the new one. The rollback used to capture nothing, so its
    cut-back index served the old value, and after the cut-back the document kept only the
    new field."""
    schema = parse_ft_info(ft_info_reply()).schema
    spec = RunSpec(
        source_index="docs",
        target_index="docs",
        storage_type="hash",
        source_schema=schema,
        target_schema=schema,
        field_renames=[DocFieldRename(old="title", new="headline")],
        online=OnlineSpec(serving_name="docs", shadow_name=SHADOW, strategy="expand"),
    )
    events = [StepStarted(step="cutover"), StepFinished(step="cutover")]
    events += [StepStarted(step="contract"), StepFinished(step="contract")]
    applied = project_run(events, EXPAND.marks())
    state = project_run([], EXPAND_ROLLBACK.marks())
    scripted = ScriptedRedis(
        [
            ("SCAN 0 MATCH doc:* *", [b"0", []]),
            ("WATCH doc:5", b"OK"),
            ("HMGET doc:5 headline title", [b"written meanwhile", None]),
            ("HPEXPIRETIME doc:5 FIELDS 1 headline", [-1]),
            ("MULTI", b"OK"),
            ("HSET doc:5 title *", 1),
            ("EXEC", [1]),
        ],
        captured=[Captured([], lost=True), Captured([b"doc:5"], lost=False)],
    )
    (step,) = [s for s in EXPAND_ROLLBACK.steps if s.name == "rb_relayout"]

    scripted.run(step.body(RunContext(spec, state, applied)))

    scripted.assert_done()
    assert [type(c).__name__ for c in scripted.captures] == ["StartCapture"]
    (moved,) = commands_matching(scripted.sent, "HSET doc:5 *")
    assert moved[3] == b"written meanwhile"
