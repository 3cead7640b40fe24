"""The step tables: drop_recreate order, skips and resume (scripted replies), the
rollback tables derived from inverses, and the marks projections read."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from helpers import ft_info_reply

from ftctl.errors import RefusedError
from ftctl.journal.events import (
    STEP_NAMES,
    BatchDone,
    CheckFailed,
    ConflictRecorded,
    CutoverDone,
    ServerChanged,
    ServerSeen,
    StepFinished,
    StepSkipped,
    StepStarted,
)
from ftctl.journal.projections import project_run
from ftctl.schema.ftinfo import parse_ft_info
from ftctl.steps.effects import ReplyError
from ftctl.steps.history import decode_record
from ftctl.steps.runner import RunContext, run_table
from ftctl.steps.spec import DocFieldRename, OnlineSpec, PrefixChange, RunSpec
from ftctl.steps.tables import (
    ALTER_ROLLBACK,
    DROP_RECREATE,
    DROP_RECREATE_ROLLBACK,
    EXPAND,
    EXPAND_ROLLBACK,
    SHADOW,
    SHADOW_ROLLBACK,
    TABLES,
    marks_for,
)
from ftctl.testing import ScriptedRedis, commands_matching

EMPTY_SEARCH = {b"total_results": 0, b"results": []}
SERVER = ("INFO server", b"# Server\r\nrun_id:aaaa\r\n")


def _spec(prefix: str | None = None) -> RunSpec:
    source = parse_ft_info(ft_info_reply()).schema
    target = msgspec.structs.replace(
        source, index=msgspec.structs.replace(source.index, name="catalog")
    )
    return RunSpec(
        source_index="docs",
        target_index="catalog",
        storage_type="hash",
        source_schema=source,
        target_schema=target,
        prefix_change=PrefixChange(old="doc:", new=prefix) if prefix else None,
        expected_docs=5,
    )


def _run(spec: RunSpec, scripted: ScriptedRedis, earlier: list[Any]) -> bool:
    state = project_run(earlier, DROP_RECREATE.marks())
    outcome = scripted.run(run_table(DROP_RECREATE, RunContext(spec, state, state)))
    return outcome == "passed"


def test_index_only_change_touches_no_document() -> None:
    """An index rename runs preflight, drop, create, wait, validate in that order, skips every
    document step with its reason, and sends no SCAN, EVAL or write to a key."""
    scripted = ScriptedRedis(
        [
            SERVER,
            ("FT.INFO docs", ft_info_reply()),
            ("FT.CREATE __ftctl_check_*", b"OK"),
            ("FT.DROPINDEX __ftctl_check_*", b"OK"),
            ("FT.INFO catalog", ReplyError("Unknown index name")),
            ("FT.INFO docs", ft_info_reply()),
            ("FT.DROPINDEX docs", b"OK"),
            ("FT.CREATE catalog ON HASH PREFIX 1 doc: SCHEMA title TEXT *", b"OK"),
            ("SET ftctl:schema:catalog *", b"OK"),
            ("DEL ftctl:schema:docs", 1),
            ("FT.INFO catalog", ft_info_reply("catalog")),
            ("FT.INFO catalog", ft_info_reply("catalog")),
            ("FT.SEARCH catalog * NOCONTENT *", EMPTY_SEARCH),
        ]
    )
    assert _run(_spec(), scripted, [])
    scripted.assert_done()
    skipped = {e.step for e in scripted.recorded if isinstance(e, StepSkipped)}
    assert skipped == {
        "query_baseline", "enumerate", "backup", "rename_fields", "rename_keys", "quantize",
        "query_compare",
    }  # fmt: skip
    started = [e.step for e in scripted.recorded if isinstance(e, StepStarted)]
    assert started == ["preflight", "drop", "create", "wait", "validate"]
    assert not commands_matching(scripted.sent, "SCAN *")
    assert not commands_matching(scripted.sent, "EVAL *")
    assert not commands_matching(scripted.sent, "* DD")


def test_rename_conflicts_fail_validation() -> None:
    """Resumed after its rewrites, the run goes straight to validate, and a key a rename left
    untouched (a conflict in rename_keys or rename_fields) fails concurrent_writes."""
    done = [s for s in DROP_RECREATE.names if s != "validate"]
    earlier: list[Any] = [StepFinished(step=s) for s in done]
    earlier.insert(5, ConflictRecorded(step="rename_keys", keys=[b"doc:1"], reason="taken"))
    earlier.insert(4, ConflictRecorded(step="rename_fields", keys=[b"doc:2"], reason="taken"))
    scripted = ScriptedRedis(
        [
            SERVER,
            ("FT.INFO catalog", ft_info_reply("catalog", num_docs=0)),
            ("FT.SEARCH catalog * NOCONTENT *", EMPTY_SEARCH),
        ]
    )
    assert not _run(_spec(prefix="item:"), scripted, earlier)
    scripted.assert_done()
    failed = {e.check: e.count for e in scripted.recorded if isinstance(e, CheckFailed)}
    assert failed == {"concurrent_writes": 2}
    assert [e.step for e in scripted.recorded if isinstance(e, StepStarted)] == ["validate"]


def test_rollback_walks_the_inverses_in_reverse_order() -> None:
    """The rollback of drop_recreate is derived from the inverses: target dropped first,
    then vectors, keys, fields restored, then the source recreated, waited for, validated."""
    assert DROP_RECREATE_ROLLBACK.names == (
        "rollback_preflight",
        "drop_target",
        "restore_vectors",
        "restore_keys",
        "restore_fields",
        "recreate_source",
        "wait_source",
        "validate_source",
    )
    assert SHADOW_ROLLBACK.names == (
        "rb_shadow_create",
        "rb_shadow_wait",
        "rb_shadow_verify",
        "rb_cutover",
        "abort_shadow",
        "rb_validate",
    )
    assert ALTER_ROLLBACK.names[-1] == "rb_validate" and "abort_shadow" not in ALTER_ROLLBACK.names


def test_every_step_name_belongs_to_a_table() -> None:
    """The StepName Literal and the tables agree: no step without a table, no stray name."""
    in_tables = {name for table in TABLES for name in table.names}
    assert in_tables == STEP_NAMES


def test_marks_come_from_the_tables() -> None:
    """Downtime runs from drop to wait (apply) and drop_target to wait_source (rollback);
    validation starts at wait, validate_source, online_validate; online has no downtime;
    the user's queries are compared within validation, their baseline outside it."""
    apply = marks_for("drop_recreate", "apply")
    assert apply.downtime == {
        "drop", "rename_fields", "rename_keys", "quantize", "create", "wait",
    }  # fmt: skip
    assert apply.validation == {"wait", "validate", "query_compare"}
    assert "query_baseline" not in apply.redo_on_change | apply.validation
    assert apply.validation_starts == {"wait"}
    rollback = marks_for("drop_recreate", "rollback")
    assert "drop_target" in rollback.downtime and "wait_source" in rollback.downtime
    assert rollback.validation_starts == {"validate_source"}
    online = marks_for("online", "apply")
    assert online.downtime == frozenset()
    assert online.validation_starts == {"online_validate", "shadow_verify"}
    assert marks_for("drop_recreate", "validate").validation_starts == {"validate"}
    assert SHADOW.marks().downtime == frozenset()


def test_a_changed_server_redoes_the_steps_that_wrote_to_it() -> None:
    """A resumed run that finds another server (restart from an older RDB, failover) than
    the one earlier runs wrote to journals it and does every writing step again (each batch
    is idempotent); the query baseline, enumeration, backup and preflight are the journal's
    own and stay done."""
    done = [s for s in DROP_RECREATE.names if s != "validate"]
    earlier: list[Any] = [ServerSeen(run_id="aaaa")]
    earlier += [StepFinished(step=s) for s in done]
    earlier.insert(3, BatchDone(step="backup", batch=0, keys=2))
    earlier.insert(6, BatchDone(step="rename_keys", batch=0, keys=2))
    state = project_run(earlier, DROP_RECREATE.marks())
    assert state.step_done("drop") and state.batch_done("rename_keys", 0)

    state.fold(ServerChanged(previous="aaaa", current="bbbb"))

    assert [s for s in DROP_RECREATE.names if state.step_done(s)] == [
        "query_baseline",
        "enumerate",
        "backup",
        "preflight",
    ]
    assert state.batch_done("backup", 0) and not state.batch_done("rename_keys", 0)


def test_the_runner_journals_the_server_it_sees() -> None:
    """The first run records the server; a run on another server after steps were done
    records the change before anything else."""
    spec = _spec()
    state = project_run(
        [ServerSeen(run_id="aaaa"), StepFinished(step="enumerate")], DROP_RECREATE.marks()
    )
    scripted = ScriptedRedis([("INFO server", b"run_id:bbbb\r\n")])
    runner = run_table(DROP_RECREATE, RunContext(spec, state, state))
    first = next(runner)
    reply = scripted.reply_to(first.commands[0])
    recorded = runner.send([reply])
    assert [type(e) for e in recorded.events] == [ServerChanged, ServerSeen]


def _hits(*keys: bytes) -> dict[bytes, Any]:
    return {b"total_results": len(keys), b"results": [{b"id": k} for k in keys]}


def test_the_cut_back_of_a_prefix_change_is_verified_under_the_old_keys() -> None:
    """Rolling back an expand prefix change, the cut-back index (old prefix) is verified
    against the serving one (new prefix) with each sampled document under its old key: the
    same documents, moved back (comparing the keys as they are failed every rollback)."""
    source = parse_ft_info(ft_info_reply()).schema
    target = msgspec.structs.replace(
        source, index=msgspec.structs.replace(source.index, prefix="item:")
    )
    spec = RunSpec(
        source_index="docs",
        target_index="docs",
        storage_type="hash",
        source_schema=source,
        target_schema=target,
        prefix_change=PrefixChange(old="doc:", new="item:"),
        online=OnlineSpec(serving_name="docs", shadow_name="docs__s", strategy="expand"),
    )
    state = project_run([StepFinished(step="cutover")], EXPAND.marks())
    back = "docs__ftctl_rb0"
    scripted = ScriptedRedis(
        [
            ("FT.INFO docs", ft_info_reply("docs__s", prefixes=["item:"])),
            (f"FT.INFO {back}", ft_info_reply(back)),
            ("FT.INFO docs__s", ft_info_reply("docs__s", prefixes=["item:"])),
            (f"FT.INFO {back}", ft_info_reply(back)),
            ("FT.SEARCH docs__s * NOCONTENT LIMIT 0 50 DIALECT 2", _hits(b"item:1", b"item:2")),
            ("FT.SEARCH docs__s * INKEYS 2 item:1 item:2 *", _hits(b"item:1", b"item:2")),
            (f"FT.SEARCH {back} * INKEYS 2 doc:1 doc:2 *", _hits(b"doc:1", b"doc:2")),
        ]
    )
    verify = dict(zip(EXPAND_ROLLBACK.names, EXPAND_ROLLBACK.steps, strict=True))[
        "rb_shadow_verify"
    ]

    assert scripted.run(verify.body(RunContext(spec, project_run([], EXPAND.marks()), state)))
    scripted.assert_done()
    failed = [e.check for e in scripted.recorded if isinstance(e, CheckFailed)]
    assert failed == []


def test_the_index_on_the_final_layout_keeps_the_public_names_in_its_history() -> None:
    """After the second cut-over of an in-place conversion, the schema history of the index
    on the final layout lists the public names it answers (as the first cut-over's does),
    so a later plan against them still knows the alias."""
    schema = parse_ft_info(ft_info_reply()).schema
    spec = RunSpec(
        source_index="docs",
        target_index="docs",
        storage_type="hash",
        source_schema=schema,
        target_schema=schema,
        online=OnlineSpec(
            serving_name="docs",
            aliases=["docs_alias"],
            shadow_name="docs__s",
            final_name="docs__sf",
            strategy="expand",
        ),
    )
    scripted = ScriptedRedis(
        [
            ("SCAN 0 MATCH doc:* *", [b"0", []]),
            ("FT.INFO docs__s", ft_info_reply("docs__s")),
            ("FT.INFO docs__sf", ft_info_reply("docs__sf")),
            ("FT.INFO docs", ft_info_reply("docs__s")),
            ("FT.INFO docs_alias", ft_info_reply("docs__s")),
            ("FT.DROPINDEX docs__s", b"OK"),
            ("FT.ALIASUPDATE docs docs__sf", b"OK"),
            ("FT.ALIASUPDATE docs_alias docs__sf", b"OK"),
            ("SET ftctl:schema:docs__sf *", b"OK"),
            ("DEL ftctl:schema:docs__s", 1),
        ]
    )
    steps = dict(zip(EXPAND.names, EXPAND.steps, strict=True))
    state = project_run([], EXPAND.marks())

    scripted.run(steps["final_cutover"].body(RunContext(spec, state, state)))

    scripted.assert_done()
    (record,) = commands_matching(scripted.sent, "SET ftctl:schema:docs__sf *")
    found = decode_record(record[2])
    assert found is not None and found.aliases == ["docs", "docs_alias"]


def test_the_cut_back_replaces_the_serving_index_and_drops_the_other() -> None:
    """An in-place conversion killed in its second cut-over (started, not swapped) leaves
    the first shadow serving and the final index beside it: the cut-back replaces the index
    the names resolve to (not the one the journal guesses) and drops the other, so the
    rollback leaves one index (it once left the first shadow, or the final index)."""
    schema = parse_ft_info(ft_info_reply()).schema
    spec = RunSpec(
        source_index="docs",
        target_index="docs",
        storage_type="hash",
        source_schema=schema,
        target_schema=schema,
        online=OnlineSpec(
            serving_name="docs",
            aliases=["docs_alias"],
            shadow_name="docs__s",
            final_name="docs__sf",
            strategy="expand",
        ),
    )
    applied = project_run([StepStarted(step="final_cutover")], EXPAND.marks())
    back = "docs__ftctl_rb0"
    scripted = ScriptedRedis(
        [
            ("FT.INFO docs", ft_info_reply("docs__s")),
            ("SCAN 0 MATCH doc:* *", [b"0", []]),  # capture (re)started: a full pass
            ("FT.INFO docs", ft_info_reply("docs__s")),
            ("FT.INFO docs__s", ft_info_reply("docs__s")),
            (f"FT.INFO {back}", ft_info_reply(back)),
            ("FT.INFO docs", ft_info_reply("docs__s")),
            ("FT.INFO docs_alias", ft_info_reply("docs__s")),
            ("FT.DROPINDEX docs__s", b"OK"),
            (f"FT.ALIASUPDATE docs {back}", b"OK"),
            (f"FT.ALIASUPDATE docs_alias {back}", b"OK"),
            ("FT.INFO docs__sf", ft_info_reply("docs__sf")),
            ("FT.INFO docs", ft_info_reply(back)),
            ("FT.DROPINDEX docs__sf", b"OK"),
            ("DEL ftctl:schema:docs__sf", 0),
            (f"SET ftctl:schema:{back} *", b"OK"),
            ("DEL ftctl:schema:docs__s", 1),
        ]
    )
    steps = dict(zip(EXPAND_ROLLBACK.names, EXPAND_ROLLBACK.steps, strict=True))

    scripted.run(
        steps["rb_cutover"].body(RunContext(spec, project_run([], EXPAND.marks()), applied))
    )

    scripted.assert_done()
    (done,) = [e for e in scripted.recorded if isinstance(e, CutoverDone)]
    assert (done.dropped, done.index) == ("docs__s", back)


def test_abort_after_an_expand_cut_over_is_refused_before_anything_is_written() -> None:
    """``abort`` once the names were swapped to the shadow (even by a cut-over killed
    before it journaled the swap) is refused by the expand rollback's first step, before the
    old layout is written back: nothing is sent but the look at what the name resolves to
    (it used to rewrite every document, then fail)."""
    schema = parse_ft_info(ft_info_reply()).schema
    spec = RunSpec(
        source_index="docs",
        target_index="docs",
        storage_type="hash",
        source_schema=schema,
        target_schema=schema,
        field_renames=[DocFieldRename(old="title", new="headline")],
        online=OnlineSpec(serving_name="docs", shadow_name="docs__s", strategy="expand"),
    )
    applied = project_run([StepStarted(step="cutover")], EXPAND.marks())
    scripted = ScriptedRedis([SERVER, ("FT.INFO docs", ft_info_reply("docs__s"))])
    state = project_run([], EXPAND_ROLLBACK.marks())

    with pytest.raises(RefusedError, match="already cut over"):
        scripted.run(run_table(EXPAND_ROLLBACK, RunContext(spec, state, applied, abort_only=True)))

    scripted.assert_done()
    assert not [e for e in scripted.recorded if isinstance(e, StepStarted)]


def test_a_cutover_resumed_after_its_swap_does_not_catch_up_in_the_old_layout() -> None:
    """Resumed after its swap, the expand cut-over does not reconcile as if the old keys
    were still the truth (that pass removes copies whose old key is gone, and a document
    created under the new prefix since the swap has none): it finds the swap done and
    journals it."""
    source = parse_ft_info(ft_info_reply()).schema
    target = msgspec.structs.replace(
        source, index=msgspec.structs.replace(source.index, prefix="item:")
    )
    spec = RunSpec(
        source_index="docs",
        target_index="docs",
        storage_type="hash",
        source_schema=source,
        target_schema=target,
        prefix_change=PrefixChange(old="doc:", new="item:"),
        online=OnlineSpec(serving_name="docs", shadow_name="docs__s", strategy="expand"),
    )
    state = project_run([StepStarted(step="cutover")], EXPAND.marks())
    moved = ft_info_reply("docs__s", prefixes=["item:"])
    scripted = ScriptedRedis(
        [
            ("FT.INFO docs", moved),
            ("FT.INFO docs", moved),
            ("FT.INFO docs__s", moved),
            ("FT.INFO docs", moved),
            ("SET ftctl:schema:docs__s *", b"OK"),
            ("DEL ftctl:schema:docs", 1),
        ]
    )
    steps = dict(zip(EXPAND.names, EXPAND.steps, strict=True))

    counts = scripted.run(steps["cutover"].body(RunContext(spec, state, state)))

    scripted.assert_done()
    assert counts == {"swapped": 0}
    assert not commands_matching(scripted.sent, "SCAN *")
