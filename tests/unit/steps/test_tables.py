"""The step tables: drop_recreate order, skips and resume (scripted replies), the
rollback tables derived from inverses, and the marks projections read."""

from __future__ import annotations

from typing import Any

import msgspec
from helpers import ft_info_reply

from ftctl.journal.events import (
    STEP_NAMES,
    BatchDone,
    CheckFailed,
    ConflictRecorded,
    ServerChanged,
    ServerSeen,
    StepFinished,
    StepSkipped,
    StepStarted,
)
from ftctl.journal.projections import project_run
from ftctl.schema.ftinfo import parse_ft_info
from ftctl.steps.effects import ReplyError
from ftctl.steps.runner import RunContext, run_table
from ftctl.steps.spec import PrefixChange, RunSpec
from ftctl.steps.tables import (
    ALTER_ROLLBACK,
    DROP_RECREATE,
    DROP_RECREATE_ROLLBACK,
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
