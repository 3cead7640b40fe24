"""The drop_recreate order, skips and resume, driven by scripted replies."""

from __future__ import annotations

from typing import Any

import msgspec
from helpers import ft_info_reply

from ftctl.journal.events import (
    CheckFailed,
    ConflictRecorded,
    StepFinished,
    StepSkipped,
    StepStarted,
)
from ftctl.journal.projections import project_run
from ftctl.schema.ftinfo import parse_ft_info
from ftctl.steps.effects import ReplyError
from ftctl.steps.sequence import DROP_RECREATE_STEPS, drop_recreate
from ftctl.steps.spec import PrefixChange, RunSpec
from ftctl.testing import ScriptedRedis, commands_matching

EMPTY_SEARCH = {b"total_results": 0, b"results": []}


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
    )


def _run(spec: RunSpec, scripted: ScriptedRedis, earlier: list[Any], docs: int = 5) -> bool:
    passed: bool = scripted.run(
        drop_recreate(
            spec,
            project_run(earlier),
            source_failures=0,
            expected_docs=docs,
            reload=lambda: [*earlier, *scripted.recorded],
        )
    )
    return passed


def test_index_only_change_touches_no_document() -> None:
    """An index rename runs preflight, drop, create, wait, validate in that order, skips every
    document step with its reason, and sends no SCAN, EVAL or write to a key."""
    scripted = ScriptedRedis(
        [
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
    assert skipped == {"enumerate", "backup", "rename_fields", "rename_keys", "quantize"}
    started = [e.step for e in scripted.recorded if isinstance(e, StepStarted)]
    assert started == ["preflight", "drop", "create", "wait", "validate"]
    assert not commands_matching(scripted.sent, "SCAN *")
    assert not commands_matching(scripted.sent, "EVAL *")
    assert not commands_matching(scripted.sent, "* DD")


def test_rename_conflicts_fail_validation() -> None:
    """Resumed after its rewrites, the run goes straight to validate, and a key a rename left
    untouched (a conflict in rename_keys or rename_fields) fails concurrent_writes."""
    done = [s for s in DROP_RECREATE_STEPS if s != "validate"]
    earlier: list[Any] = [StepFinished(step=s) for s in done]
    earlier.insert(5, ConflictRecorded(step="rename_keys", keys=[b"doc:1"], reason="taken"))
    earlier.insert(4, ConflictRecorded(step="rename_fields", keys=[b"doc:2"], reason="taken"))
    scripted = ScriptedRedis(
        [
            ("FT.INFO catalog", ft_info_reply("catalog", num_docs=0)),
            ("FT.SEARCH catalog * NOCONTENT *", EMPTY_SEARCH),
        ]
    )
    assert not _run(_spec(prefix="item:"), scripted, earlier)
    scripted.assert_done()
    failed = {e.check: e.count for e in scripted.recorded if isinstance(e, CheckFailed)}
    assert failed == {"concurrent_writes": 2}
    assert [e.step for e in scripted.recorded if isinstance(e, StepStarted)] == ["validate"]
