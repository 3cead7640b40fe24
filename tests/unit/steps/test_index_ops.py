"""preflight refusals and wait_ready's backoff and timeout, from scripted replies."""

from __future__ import annotations

import msgspec
import pytest
from helpers import ft_info_reply

from ftctl.errors import MigrationFailed, RefusedError
from ftctl.journal.events import CheckFailed, CheckPassed
from ftctl.schema.ftinfo import parse_ft_info
from ftctl.steps.effects import ReplyError
from ftctl.steps.index_ops import preflight, wait_ready
from ftctl.steps.spec import PrefixChange, RunSpec
from ftctl.testing import ScriptedRedis, commands_matching

UNKNOWN = ReplyError("Unknown index name")


def _spec(target: str = "catalog", prefix: str | None = "item:") -> RunSpec:
    source = parse_ft_info(ft_info_reply()).schema
    renamed = msgspec.structs.replace(
        source, index=msgspec.structs.replace(source.index, name=target)
    )
    return RunSpec(
        source_index="docs",
        target_index=target,
        storage_type="hash",
        source_schema=source,
        target_schema=renamed,
        prefix_change=PrefixChange(old="doc:", new=prefix) if prefix else None,
    )


def _script(
    source: object = None, created: object = b"OK", target: object = UNKNOWN, scan: object = None
) -> ScriptedRedis:
    return ScriptedRedis(
        [
            ("FT.INFO docs", ft_info_reply() if source is None else source),
            ("FT.CREATE __ftctl_check_* ON HASH PREFIX 1 __ftctl_check_*:* SCHEMA *", created),
            ("FT.DROPINDEX __ftctl_check_*", b"OK"),
            ("FT.INFO catalog", target),
            ("SCAN 0 MATCH item:* COUNT 1000", scan if scan is not None else [b"0", []]),
        ]
    )


def test_preflight_passes_and_records_it() -> None:
    """A live source equal to the plan, an accepted target, a free name and a free prefix
    pass; the throwaway index is created and dropped in the same pipeline, never with DD."""
    scripted = _script()
    scripted.run(preflight(_spec()))
    scripted.assert_done()
    assert scripted.recorded == [CheckPassed(check="preflight")]
    assert not commands_matching(scripted.sent, "* DD*")


@pytest.mark.parametrize(
    ("script", "check", "words"),
    [
        ({"source": UNKNOWN}, "source_exists", "index 'docs' does not exist"),
        ({"source": ft_info_reply("real")}, "source_not_alias", "alias of 'real'"),
        (
            {"source": ft_info_reply(prefixes=["other:"])},
            "source_schema_match",
            "source schema mismatch: index.prefix",
        ),
        ({"created": ReplyError("Bad arguments")}, "target_accepted", "rejects the target"),
        ({"target": ft_info_reply("catalog")}, "target_name_free", "'catalog' already exists"),
        ({"scan": [b"5", [b"item:1"]]}, "prefix_free", "new prefix 'item:'"),
    ],
)
def test_preflight_refusals(script: dict[str, object], check: str, words: str) -> None:
    """Each failed precondition is journaled as a CheckFailed and raised as RefusedError."""
    scripted = _script(**script)
    with pytest.raises(RefusedError, match=words):
        scripted.run(preflight(_spec()))
    failed = [e for e in scripted.recorded if isinstance(e, CheckFailed)]
    assert [e.check for e in failed] == [check]
    assert not any(isinstance(e, CheckPassed) for e in scripted.recorded)


def test_preflight_without_renames_checks_no_name_or_prefix() -> None:
    """Same name and no prefix change: no FT.INFO of a target, no SCAN."""
    scripted = ScriptedRedis(
        [
            ("FT.INFO docs", ft_info_reply()),
            ("FT.CREATE __ftctl_check_*", b"OK"),
            ("FT.DROPINDEX __ftctl_check_*", b"OK"),
        ]
    )
    scripted.run(preflight(_spec(target="docs", prefix=None)))
    scripted.assert_done()


def test_wait_ready_backs_off_until_indexed() -> None:
    """wait_ready polls while indexing, each pause 1/16 of the time waited so far (2 ms at
    least, 250 ms at most), and returns the final stats."""
    building = ft_info_reply("catalog", indexing=True, percent=0.5)
    script: list[tuple[str, object]] = [("FT.INFO catalog", building)] * 150
    script.append(("FT.INFO catalog", ft_info_reply("catalog", num_docs=9)))
    scripted = ScriptedRedis(script)
    stats = scripted.run(wait_ready("catalog", timeout=60))
    assert stats.num_docs == 9
    slept = scripted.slept
    assert len(slept) == 150
    assert slept[:16] == [0.002] * 16
    for n, pause in enumerate(slept):
        assert pause == pytest.approx(min(max(sum(slept[:n]) / 16, 0.002), 0.25))
    assert slept[-1] == 0.25 and 10 < sum(slept) < 25


def test_wait_ready_reports_each_poll_as_progress() -> None:
    """Every poll's num_docs and percent_indexed go out as a Progress effect (steps cannot
    log): the index build, most of a drop_recreate's downtime, is never silent."""
    script: list[tuple[str, object]] = [
        ("FT.INFO catalog", ft_info_reply("catalog", indexing=True, percent=0.25, num_docs=2)),
        ("FT.INFO catalog", ft_info_reply("catalog", indexing=True, percent=0.5, num_docs=4)),
        ("FT.INFO catalog", ft_info_reply("catalog", num_docs=9)),
    ]
    scripted = ScriptedRedis(script)
    scripted.run(wait_ready("catalog", timeout=60))
    assert [(p.done, p.total, dict(p.detail)) for p in scripted.progressed] == [
        (2, 0, {"percent_indexed": 0.25}),
        (4, 0, {"percent_indexed": 0.5}),
        (9, 0, {"percent_indexed": 1.0}),
    ]


@pytest.mark.parametrize(("percent", "shown"), [(0.25, "25%"), (1.54, "99%")])
def test_wait_ready_times_out_with_progress(percent: float, shown: str) -> None:
    """Past the timeout (counted in slept seconds) it fails naming how far indexing got, as
    a share clamped below 100% (keys written during the scan push the server's past 1)."""
    building = ft_info_reply("catalog", indexing=True, percent=percent)
    scripted = ScriptedRedis([("FT.INFO catalog", building)] * 5)
    expected = f"timeout waiting for index ready: 'catalog' is still indexing \\({shown}\\)"
    with pytest.raises(MigrationFailed, match=expected):
        scripted.run(wait_ready("catalog", timeout=0.007))
    assert scripted.slept == [0.002] * 4
    scripted.assert_done()


def test_wait_ready_fails_when_the_index_disappears() -> None:
    """An index dropped by someone else while it builds is a failure, not an endless wait."""
    scripted = ScriptedRedis([("FT.INFO catalog", UNKNOWN)])
    with pytest.raises(MigrationFailed, match="disappeared"):
        scripted.run(wait_ready("catalog", timeout=60))
