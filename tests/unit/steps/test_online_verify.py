"""The shadow's doc_count check, driven offline: a prefix change's copies under writers."""

from __future__ import annotations

import msgspec
from helpers import ft_info_reply

from ftctl.journal import CheckFailed, CheckPassed
from ftctl.schema.ftinfo import parse_ft_info
from ftctl.steps.online import COUNT_ATTEMPTS, verify_shadow
from ftctl.steps.spec import OnlineSpec, PrefixChange, RunSpec
from ftctl.testing import ScriptedRedis

NEW = "docs__s"
EMPTY = {b"total_results": 0, b"results": []}


def _spec() -> RunSpec:
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
        online=OnlineSpec(serving_name="docs", shadow_name=NEW, strategy="expand"),
    )


def _new(docs: int, failures: int = 0) -> dict[bytes, object]:
    return ft_info_reply(NEW, prefixes=["item:"], num_docs=docs, failures=failures)


def _doc_count(scans: list[tuple[int, int, int]], failures: int = 0) -> CheckPassed | CheckFailed:
    """Run verify_shadow where the serving index has more documents than the shadow (copies
    lag) and each SCAN of the new prefix is bracketed by the shadow's counts in ``scans``
    (before, scanned, after)."""
    script: list[tuple[str, object]] = [(f"FT.INFO {NEW}", _new(5))]
    for _ in range(COUNT_ATTEMPTS):
        script += [("FT.INFO docs", ft_info_reply(num_docs=9)), (f"FT.INFO {NEW}", _new(5))]
    for before, scanned, after in scans:
        keys = [f"item:{i}".encode() for i in range(scanned)]
        script += [
            (f"FT.INFO {NEW}", _new(before, failures)),
            ("SCAN 0 MATCH item:* *", [b"0", keys]),
            (f"FT.INFO {NEW}", _new(after, failures)),
        ]
    script.append(("FT.SEARCH docs * NOCONTENT LIMIT 0 50 DIALECT 2", EMPTY))
    scripted = ScriptedRedis(script)
    schema = _spec().target_schema
    scripted.run(verify_shadow(_spec(), current="docs", new=NEW, schema=schema))
    scripted.assert_done()
    (event,) = [e for e in scripted.recorded if e.check == "doc_count"]
    return event


def test_a_scan_between_the_shadows_counts_passes() -> None:
    """A writer deleting by both names during the SCAN: the shadow counts 5 before and 3
    after, the SCAN finds 4; the shadow holds exactly its keys, so the check passes."""
    event = _doc_count([(5, 4, 3)])

    assert isinstance(event, CheckPassed)
    assert (
        event.detail
        == "'docs__s' has 3..5 (written or failed meanwhile), 'docs' 9; a prefix-scoped SCAN finds 4 documents"
    )


def test_a_scan_outside_the_counts_is_tried_again_then_fails() -> None:
    """A SCAN outside the shadow's counts is tried again (a scan that met creates and
    deletes); one that stays outside with steady counts (documents the shadow misses)
    fails with the distance."""
    passed = _doc_count([(5, 7, 5), (5, 5, 5)])
    failed = _doc_count([(5, 7, 5)] * COUNT_ATTEMPTS)

    assert isinstance(passed, CheckPassed)
    assert isinstance(failed, CheckFailed) and failed.count == 2


def test_failures_the_index_counts_for_good_only_widen_the_bound() -> None:
    """RediSearch keeps counting a failure after the document was written again and
    indexed: with 1 failure counted, 4 indexed and 5 scanned passes (one document may be
    failing now); with none counted it fails."""
    assert isinstance(_doc_count([(4, 5, 4)], failures=1), CheckPassed)
    assert isinstance(_doc_count([(4, 5, 4)] * COUNT_ATTEMPTS), CheckFailed)
