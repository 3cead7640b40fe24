"""The user's own queries: the baseline on the source, the comparison on the target (scripted
replies), and the overlap math with ties. (Script patterns are globs: ``?`` stands for a
query's brackets.)"""

from __future__ import annotations

from typing import Any

import msgspec
import numpy as np
import pytest

from ftctl.errors import RefusedError, UsageError
from ftctl.journal.events import BaselineQuery, CheckFailed, CheckPassed, QueryCompared
from ftctl.plan.codecs import convert_batch
from ftctl.plan.query_checks import UserQuery
from ftctl.schema.model import from_builtins
from ftctl.steps.effects import ReplyError
from ftctl.steps.spec import Conversion, PrefixChange, RunSpec
from ftctl.steps.user_queries import (
    TIE_WINDOW,
    Comparison,
    check_queries,
    compare,
    journaled_refusal,
    parse_results,
    take_baseline,
    target_query,
)
from ftctl.testing import ScriptedRedis

DIMS = 4


def _schema(name: str, datatype: str, vector: str = "embedding", prefix: str = "doc:") -> Any:
    return from_builtins(
        {
            "index": {"name": name, "prefix": prefix, "storage_type": "hash"},
            "fields": [
                {"name": "text", "type": "text"},
                {"name": "module", "type": "tag"},
                {
                    "name": vector,
                    "type": "vector",
                    "attrs": {
                        "dims": DIMS,
                        "algorithm": "flat",
                        "datatype": datatype,
                        "distance_metric": "cosine",
                    },
                },
            ],
        }
    )


def _spec(*, prefix: str | None = None, rename: bool = False) -> RunSpec:
    """float32 → float16 of ``embedding`` (renamed ``vec`` with ``rename``)."""
    target_field = "vec" if rename else "embedding"
    return RunSpec(
        source_index="docs",
        target_index="docs",
        storage_type="hash",
        source_schema=_schema("docs", "float32"),
        target_schema=_schema("docs", "float16", target_field, prefix or "doc:"),
        prefix_change=PrefixChange(old="doc:", new=prefix) if prefix else None,
        attribute_renames={"embedding": "vec"} if rename else {},
        conversions=[
            Conversion(
                backup_field="embedding",
                field=target_field,
                source="float32",
                target="float16",
                dims=DIMS,
            )
        ],
    )


STORED = np.array([0.1, 0.2, 0.3, 0.4], dtype=np.float32).tobytes()
KNN = UserQuery(name="near 7", query="*=>[KNN 3 @embedding $vec]", vector_from_key="doc:7", k=3)
TAG = UserQuery(name="tag", query="@module:{m}", k=2, max_count_change=0)


def _entry(ids: list[bytes], scores: list[float], tied: list[bytes] = (), **kw: Any) -> Any:  # type: ignore[assignment]
    return BaselineQuery(
        name="q",
        query="@t:(x)",
        target_query="@t:(x)",
        k=len(ids) if ids else 3,
        min_overlap=0.9,
        ids=ids,
        scores=scores,
        tied=list(tied),
        total=kw.pop("total", len(ids) + len(tied)),
        **kw,
    )


def _same(doc: bytes) -> bytes:
    return doc


# --- overlap ---------------------------------------------------------------------------------


def test_overlap_is_the_share_of_the_source_top_k_held() -> None:
    """Overlap@k: the target's top k against the source's; a lost id is missing, an id the
    source did not rank is added."""
    before = _entry([b"a", b"b", b"c", b"d"], [0.1, 0.2, 0.3, 0.4])
    found = Comparison(before, [b"a", b"c", b"x", b"d"], _same)
    assert (found.hits, found.expected, found.overlap) == (3, 4, 0.75)
    assert found.missing == [b"b"] and found.added == [b"x"]


def test_ties_at_the_boundary_may_swap_but_never_cover_a_better_loss() -> None:
    """Ids scored like the source's k-th are interchangeable (a tag filter ties every match;
    a rebuilt index orders ties differently), but only in boundary places: a better id the
    target lost stays missing even when a tied id took its place."""
    before = _entry([b"a", b"b", b"c"], [3.0, 2.0, 2.0], tied=[b"d", b"e"])
    swapped = Comparison(before, [b"a", b"e", b"d"], _same)
    assert (swapped.overlap, swapped.missing, swapped.added) == (1.0, [], [])
    lost = Comparison(before, [b"d", b"b", b"e"], _same)
    assert (lost.hits, lost.overlap) == (2, 2 / 3)
    assert lost.missing == [b"a"] and lost.added == []


def test_every_tie_counts_only_once_per_boundary_place() -> None:
    """A target top k of more tied ids than the source had boundary places counts as many
    hits as there were places (an all-tied top k is fully interchangeable)."""
    before = _entry([b"a", b"b"], [1.0, 1.0], tied=[b"c", b"d"])
    assert Comparison(before, [b"c", b"d"], _same).overlap == 1.0
    partial = Comparison(before, [b"c", b"zz"], _same)
    assert (partial.hits, partial.missing, partial.added) == (1, [b"a"], [b"zz"])


def test_ids_are_compared_under_their_final_names() -> None:
    """With a prefix change the source's ids are compared as the keys they became."""
    spec = _spec(prefix="item:")
    before = _entry([b"doc:1", b"doc:2"], [0.1, 0.2])
    found = Comparison(before, [b"item:1", b"item:2"], spec.final_key)
    assert found.overlap == 1.0
    assert Comparison(before, [b"doc:1", b"doc:2"], spec.final_key).overlap == 0.0


def test_a_query_the_source_answered_with_nothing_has_nothing_to_lose() -> None:
    """Overlap is 1.0 when the source's top k was empty (bound its count instead)."""
    assert Comparison(_entry([], []), [b"x"], _same).overlap == 1.0


# --- replies ---------------------------------------------------------------------------------


def test_results_read_from_resp2_and_resp3() -> None:
    """Text-scored replies (NOCONTENT WITHSCORES) and KNN replies (the distance returned)
    give the same ids, scores and total under RESP2 and RESP3; an error reply is its text."""
    text2 = [7, b"doc:1", b"2", b"doc:2", b"1.5"]
    text3 = {
        b"total_results": 7,
        b"results": [{b"id": b"doc:1", b"score": 2.0}, {b"id": b"doc:2", b"score": 1.5}],
    }
    for reply in (text2, text3):
        got = parse_results(reply, None)
        assert not isinstance(got, str)
        assert (got.ids, got.scores, got.total) == ([b"doc:1", b"doc:2"], [2.0, 1.5], 7)
    clause = KNN.clause
    knn2 = [2, b"doc:7", [b"__embedding_score", b"0"], b"doc:8", [b"__embedding_score", b"0.25"]]
    knn3 = {
        b"total_results": 2,
        b"results": [
            {b"id": b"doc:7", b"extra_attributes": {b"__embedding_score": b"0"}},
            {b"id": b"doc:8", b"extra_attributes": {b"__embedding_score": b"0.25"}},
        ],
    }
    for reply in (knn2, knn3):
        got = parse_results(reply, clause)
        assert not isinstance(got, str)
        assert (got.ids, got.scores, got.total) == ([b"doc:7", b"doc:8"], [0.0, 0.25], 2)
    assert parse_results(ReplyError("Syntax error"), None) == "Syntax error"


# --- the baseline ----------------------------------------------------------------------------


def test_baseline_reads_the_stored_vector_then_runs_every_query_wide() -> None:
    """The baseline reads vector_from_key's stored bytes, sends them as the KNN parameter
    (ranked by the distance), reads k + TIE_WINDOW rows to find ties with the k-th, and keeps
    the top k, the tied ids, the total and the vector as sent."""
    scripted = ScriptedRedis(
        [
            ("HGET doc:7 embedding", STORED),
            (
                f"FT.SEARCH docs *=>?KNN 3 @embedding $vec? PARAMS 2 vec * RETURN 1 "
                f"__embedding_score SORTBY __embedding_score ASC LIMIT 0 {3 + TIE_WINDOW} "
                "DIALECT 2",
                [
                    3,
                    b"doc:7",
                    [b"__embedding_score", b"0"],
                    b"doc:8",
                    [b"__embedding_score", b"0.1"],
                    b"doc:9",
                    [b"__embedding_score", b"0.2"],
                ],
            ),
            (
                f"FT.SEARCH docs @module:{{m}} NOCONTENT WITHSCORES LIMIT 0 {2 + TIE_WINDOW} "
                "DIALECT 2",
                [4, b"doc:1", b"2", b"doc:2", b"1", b"doc:3", b"1", b"doc:4", b"0.5"],
            ),
        ]
    )
    baseline = scripted.run(take_baseline(_spec(), [KNN, TAG]))
    scripted.assert_done()
    assert scripted.sent[1][6] == STORED
    near, tag = baseline.queries
    assert baseline.index == "docs"
    assert (near.ids, near.scores, near.tied, near.total) == (
        [b"doc:7", b"doc:8", b"doc:9"],
        [0.0, 0.1, 0.2],
        [],
        3,
    )
    assert (near.vector, near.datatype, near.vector_from_key) == (STORED, "float32", "doc:7")
    assert (tag.ids, tag.tied, tag.total, tag.max_count_change) == (
        [b"doc:1", b"doc:2"],
        [b"doc:3"],
        4,
        0,
    )


@pytest.mark.parametrize(
    ("stored", "problem"),
    [(None, "no such key or field"), (b"\x00" * 3, "3 bytes, a float32 vector of 4 has 16")],
)
def test_baseline_refuses_a_vector_it_cannot_read(stored: object, problem: str) -> None:
    """A vector_from_key without a vector of the field's size refuses the run (RefusedError:
    nothing changed yet), naming the query, the key and why."""
    scripted = ScriptedRedis([("HGET doc:7 embedding", stored)])
    with pytest.raises(RefusedError, match=f"query 'near 7' cannot read .*doc:7.*{problem}"):
        scripted.run(take_baseline(_spec(), [KNN]))


def test_baseline_refuses_a_query_the_source_rejects() -> None:
    """A query the source answers with an error refuses the run with the server's message."""
    scripted = ScriptedRedis([("FT.SEARCH docs *", ReplyError("Syntax error at offset 3"))])
    bad = UserQuery(name="bad", query="@text:(")
    with pytest.raises(RefusedError, match="query 'bad' fails on the source index 'docs': Syntax"):
        scripted.run(take_baseline(_spec(), [bad]))


def test_a_given_vector_is_encoded_for_the_source() -> None:
    """vector: [floats] is sent as the source field's datatype (float32 here)."""
    given = UserQuery(name="g", query="*=>[KNN 3 @embedding $vec]", vector=[1, 2, 3, 4], k=3)
    scripted = ScriptedRedis([("FT.SEARCH docs *", [0])])
    baseline = scripted.run(take_baseline(_spec(), [given]))
    expected = np.array([1, 2, 3, 4], dtype="<f4").tobytes()
    assert scripted.sent[0][6] == expected and baseline.queries[0].vector == expected


# --- the comparison --------------------------------------------------------------------------


def _baseline(spec: RunSpec, queries: list[UserQuery], replies: list[object]) -> Any:
    script: list[tuple[str, object]] = []
    if any(q.vector_from_key for q in queries):
        script.append(("HGET doc:7 embedding", STORED))
    script += [("FT.SEARCH docs *", reply) for reply in replies]
    return ScriptedRedis(script).run(take_baseline(spec, queries))


KNN_BEFORE = [3, b"doc:7", [b"__embedding_score", b"0"], b"doc:8", [b"__embedding_score", b"0.1"],
              b"doc:9", [b"__embedding_score", b"0.2"]]  # fmt: skip
TAG_BEFORE = [4, b"doc:1", b"2", b"doc:2", b"1", b"doc:3", b"1", b"doc:4", b"0.5"]


def test_compare_sends_the_vector_converted_like_the_stored_ones() -> None:
    """On the target the KNN vector is the source's bytes converted float32 → float16 by the
    migration's conversion, the query reads the renamed field, ids compare under the new
    prefix; each query gives a query_compared event and a query:<name> check."""
    spec = _spec(prefix="item:", rename=True)
    baseline = _baseline(spec, [KNN, TAG], [KNN_BEFORE, TAG_BEFORE])
    near = baseline.queries[0]
    assert near.target_query == "*=>[KNN 3 @vec $vec]"
    scripted = ScriptedRedis(
        [
            (
                "FT.SEARCH new *=>?KNN 3 @vec $vec? PARAMS 2 vec * RETURN 1 __vec_score SORTBY "
                "__vec_score ASC LIMIT 0 3 DIALECT 2",
                [
                    3,
                    b"item:7",
                    [b"__vec_score", b"0"],
                    b"item:9",
                    [b"__vec_score", b"0.2"],
                    b"item:5",
                    [b"__vec_score", b"0.3"],
                ],
            ),
            (
                "FT.SEARCH new @module:{m} NOCONTENT WITHSCORES LIMIT 0 2 DIALECT 2",
                [5, b"item:1", b"2", b"item:3", b"1"],
            ),
        ]
    )
    events = scripted.run(compare(spec, baseline, [], index="new", schema=spec.target_schema))
    scripted.assert_done()
    assert scripted.sent[0][6] == convert_batch(STORED, "float32", "float16", DIMS)
    near_cmp, near_check, tag_cmp, tag_check = events
    assert isinstance(near_cmp, QueryCompared) and isinstance(tag_cmp, QueryCompared)
    assert (near_cmp.overlap, near_cmp.hits, near_cmp.expected) == (round(2 / 3, 6), 2, 3)
    assert (near_cmp.missing, near_cmp.added, near_cmp.passed) == ([b"item:8"], [b"item:5"], False)
    assert isinstance(near_check, CheckFailed) and near_check.check == "query:near 7"
    assert "overlap@3 0.67 (2 of 3, min 0.9); results 3 → 3" in near_check.detail
    # doc:2 and doc:3 tie at the boundary: item:3 holds its place; the count moved by one.
    assert (tag_cmp.overlap, tag_cmp.count_before, tag_cmp.count_after) == (1.0, 4, 5)
    assert not tag_cmp.passed and isinstance(tag_check, CheckFailed)
    assert "results 4 → 5 (max change 0)" in tag_check.detail


def test_thresholds_given_again_replace_the_journaled_ones() -> None:
    """A query given to the comparing run (same name) sets its thresholds; the measurement
    stays the journaled baseline's."""
    spec = _spec()
    baseline = _baseline(spec, [TAG], [TAG_BEFORE])
    looser = msgspec.structs.replace(TAG, max_count_change=1)
    reply = [5, b"doc:1", b"2", b"doc:3", b"1"]
    events = ScriptedRedis([("FT.SEARCH docs @module*", reply)]).run(
        compare(spec, baseline, [looser], index="docs", schema=spec.target_schema)
    )
    compared, check = events
    assert isinstance(compared, QueryCompared) and compared.passed
    assert compared.max_count_change == 1 and isinstance(check, CheckPassed)


def test_a_query_failing_on_the_target_fails_its_check() -> None:
    """An error reply on the target is a failed check carrying the server's message."""
    spec = _spec()
    baseline = _baseline(spec, [TAG], [TAG_BEFORE])
    events = ScriptedRedis([("FT.SEARCH docs *", ReplyError("Unknown index name"))]).run(
        compare(spec, baseline, [], index="docs", schema=spec.target_schema)
    )
    compared, check = events
    assert isinstance(compared, QueryCompared) and compared.error == "Unknown index name"
    assert isinstance(check, CheckFailed) and "Unknown index name" in check.detail


def test_without_a_baseline_queries_only_run_on_the_target() -> None:
    """A query with no journaled baseline (migrate validate without a journal) runs on the
    target alone: its vector read from the document under its final name, already in the
    target's datatype; it passes when it answers, with no overlap."""
    spec = _spec(prefix="item:")
    stored16 = convert_batch(STORED, "float32", "float16", DIMS)
    scripted = ScriptedRedis(
        [
            ("HGET item:7 embedding", stored16),
            ("FT.SEARCH docs *=>?KNN 3 @embedding $vec? PARAMS 2 vec *", [1, b"item:7", [b"__embedding_score", b"0"]]),
        ]
    )  # fmt: skip
    events = scripted.run(compare(spec, None, [KNN], index="docs", schema=spec.target_schema))
    assert scripted.sent[1][6] == stored16
    compared, check = events
    assert isinstance(compared, QueryCompared) and not compared.baseline
    assert (compared.overlap, compared.count_before, compared.count_after) == (None, None, 1)
    assert isinstance(check, CheckPassed) and "no baseline" in check.detail


# --- before anything runs --------------------------------------------------------------------


def test_queries_are_checked_against_the_plan() -> None:
    """A vector clause on a field that is not a vector of the source or the target, or a
    vector of the wrong length, is a UsageError before anything runs; a renamed field is
    followed into the target."""
    spec = _spec(rename=True)
    check_queries(spec, [KNN, TAG])
    assert target_query(spec, KNN) == "*=>[KNN 3 @vec $vec]"
    with pytest.raises(UsageError, match="query 'x' searches @text with a vector"):
        check_queries(spec, [UserQuery(name="x", query="*=>[KNN 3 @text $v]", vector=[1] * 4)])
    with pytest.raises(UsageError, match="its vector has 3 values, @embedding holds vectors of 4"):
        check_queries(spec, [msgspec.structs.replace(KNN, vector_from_key=None, vector=[1, 2, 3])])
    wrong = msgspec.structs.replace(KNN, target_query="*=>[KNN 3 @embedding $vec]")
    with pytest.raises(UsageError, match="index 'docs' has no vector field 'embedding'"):
        check_queries(spec, [wrong])


def test_a_journal_continues_only_with_the_queries_it_measured() -> None:
    """A run continuing a journal may change a query's thresholds, not what it measures; it
    may not add queries once the migration went past its baseline step without any."""
    spec = _spec()
    baseline = _baseline(spec, [KNN, TAG], [KNN_BEFORE, TAG_BEFORE])
    assert journaled_refusal(spec, [], baseline, skipped=False) is None
    looser = msgspec.structs.replace(TAG, min_overlap=0.5, max_count_change=3)
    assert journaled_refusal(spec, [KNN, looser], baseline, skipped=False) is None
    other = msgspec.structs.replace(TAG, query="@module:{n}")
    assert "query 'tag' is not the one" in (
        journaled_refusal(spec, [KNN, other], baseline, skipped=False) or ""
    )
    wider = msgspec.structs.replace(KNN, k=5)
    assert "query 'near 7' is not the one" in (
        journaled_refusal(spec, [wider, TAG], baseline, skipped=False) or ""
    )
    assert "'near 7' has a baseline" in (
        journaled_refusal(spec, [TAG], baseline, skipped=False) or ""
    )
    assert "started without queries" in (journaled_refusal(spec, [TAG], None, skipped=True) or "")
    assert journaled_refusal(spec, [TAG], None, skipped=False) is None
