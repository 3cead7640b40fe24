"""RedisVL's extra checks, driven offline: the key sample under writers that keep writing."""

from __future__ import annotations

from ftctl.journal import CheckFailed, CheckPassed
from ftctl.steps.query_checks import KEY_SAMPLE, ExtraChecks, run_extra_checks
from ftctl.testing import ScriptedRedis

SEARCH = ("FT.SEARCH docs *", {b"total_results": 3, b"results": []})


def _key_sample(extra: ExtraChecks, exists: list[int]) -> CheckPassed | CheckFailed:
    scripted = ScriptedRedis([SEARCH, *[("EXISTS *", n) for n in exists]])
    checks = scripted.run(run_extra_checks(extra))
    scripted.assert_done()
    (event,) = [e for e in checks.events if e.check == KEY_SAMPLE]
    return event


def test_online_a_sampled_key_deleted_by_a_writer_is_reported_not_failed() -> None:
    """Online (source names probed too): a key gone under its final and its source name was
    deleted by a writer the run served; a key still under its old name only was not
    moved, and fails the check."""
    extra = ExtraChecks(
        index="docs",
        storage_type="hash",
        sample_keys=["item:1", "item:2", "item:3"],
        sample_sources=["doc:1", "doc:2", "doc:3"],
        source_docs=3,
    )

    deleted = _key_sample(extra, [1, 0, 1, 1, 0, 1])
    stuck = _key_sample(extra, [1, 0, 0, 1, 0, 1])

    assert isinstance(deleted, CheckPassed)
    assert "deleted by a writer while online (item:2)" in deleted.detail
    assert isinstance(stuck, CheckFailed) and stuck.count == 1
    assert "1 of 3 sampled keys missing (item:3)" in stuck.detail


def test_drop_recreate_fails_on_any_missing_sampled_key() -> None:
    """drop_recreate (no source names: its writers are paused): every missing key fails."""
    extra = ExtraChecks(
        index="docs", storage_type="hash", sample_keys=["doc:1", "doc:2"], source_docs=2
    )

    event = _key_sample(extra, [0, 1])

    assert isinstance(event, CheckFailed) and event.count == 1
    assert event.detail == "1 of 2 sampled keys missing (doc:1)"
