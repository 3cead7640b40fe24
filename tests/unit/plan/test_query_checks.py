"""RedisVL's query_check_file: parsed strictly enough, keys formed as RedisVL forms them."""

from __future__ import annotations

from pathlib import Path

import pytest

from ftctl.errors import UsageError
from ftctl.plan.query_checks import (
    QueryChecks,
    UserQuery,
    VectorClause,
    document_key,
    load_query_checks,
    renamed_query,
    vector_clause,
)
from ftctl.schema.model import from_builtins
from ftctl.steps.user_queries import search_command


def _schema(prefix: str | list[str], separator: str = ":") -> object:
    return from_builtins(
        {
            "index": {"name": "i", "prefix": prefix, "key_separator": separator},
            "fields": [{"name": "t", "type": "text"}],
        }
    )


@pytest.mark.parametrize(
    ("prefix", "separator", "key"),
    [
        ("doc", ":", "doc:7"),
        ("doc:", ":", "doc:7"),
        ("doc::", ":", "doc:7"),
        (["a:", "b:"], ":", "a:7"),
        ("", ":", "7"),
        (":", ":", "7"),
        ("doc", "", "doc7"),
    ],
)
def test_document_key_is_redisvls(prefix: str, separator: str, key: str) -> None:
    """fetch_ids become keys like RedisVL's SearchIndex.key: first prefix without trailing
    separators, the separator, the id (the bare id without a prefix)."""
    assert document_key(_schema(prefix, separator), "7") == key  # type: ignore[arg-type]


def test_file_lists_ids_and_keys(tmp_path: Path) -> None:
    """fetch_ids and keys_exist are read as strings (numbers too); other keys are ignored;
    an empty file checks nothing."""
    path = tmp_path / "q.yaml"
    path.write_text("fetch_ids: [1, '2']\nkeys_exist: ['doc:1']\nother: 3\n")
    assert load_query_checks(path) == QueryChecks(fetch_ids=["1", "2"], keys_exist=["doc:1"])
    assert load_query_checks(b"") == QueryChecks()


@pytest.mark.parametrize("content", [b"- 1\n", b"fetch_ids: 3\n", b"keys_exist: [[1]]\n"])
def test_bad_file_is_a_usage_error(content: bytes) -> None:
    """A file that is not a mapping of lists is a UsageError (a ValueError) naming it."""
    with pytest.raises(UsageError, match="query check file"):
        load_query_checks(content)
    with pytest.raises(ValueError):
        load_query_checks(content)


QUERIES = b"""
fetch_ids: ["1"]
queries:
  - name: text
    query: "@text:(socket connection)"
  - name: near doc 7
    query: "*=>[KNN 10 @embedding $vec]"
    vector_from_key: "doc:7"
    k: 5
    min_overlap: 0.8
    max_count_change: 0
  - name: given
    query: "(@module:{m})=>[KNN 20 @embedding $v AS dist]"
    vector: [0.5, 1, -2]
    target_query: "(@module:{m})=>[KNN 20 @vec $v AS dist]"
"""


def test_queries_are_read_with_their_defaults() -> None:
    """Each entry of queries becomes a UserQuery: k 10 and min_overlap 0.9 unless given,
    max_count_change unset, numbers in a vector as floats; RedisVL's keys still read."""
    checks = load_query_checks(QUERIES)
    assert checks.fetch_ids == ["1"]
    text, near, given = checks.queries
    assert text == UserQuery(name="text", query="@text:(socket connection)")
    assert (text.k, text.min_overlap, text.max_count_change) == (10, 0.9, None)
    assert (near.vector_from_key, near.k, near.min_overlap, near.max_count_change) == (
        "doc:7",
        5,
        0.8,
        0,
    )
    assert given.vector == [0.5, 1.0, -2.0]
    assert given.target_query == "(@module:{m})=>[KNN 20 @vec $v AS dist]"


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ("{name: a, query: '*', k: 0}", "'k' must be a whole number from 1 to 1000"),
        ("{name: a, query: '*', k: true}", "'k' must be a whole number"),
        ("{name: a, query: '*', min_overlap: 1.01}", "above 1 can never be met"),
        ("{name: a, query: '*', min_overlap: '0.9'}", "'min_overlap' is a share"),
        ("{name: a, query: '*', max_count_change: -1}", "'max_count_change' must be"),
        ("{name: a, query: '*', limit: 3}", "unknown key 'limit'"),
        ("{name: a}", "'query' is missing"),
        ("{name: '', query: '*'}", "'name' must be a non-empty string"),
        ("{name: a, query: ''}", "'query' must be a non-empty string"),
        ("{name: a, query: '*=>[KNN 3 @v $vec]'}", "give vector_from_key or vector"),
        ("{name: a, query: '@t:(x)', vector: [1.0]}", "has a vector but its query has no"),
        ("{name: a, query: '*=>[KNN 3 @v $x]', vector: [1], vector_from_key: d}", "not both"),
        ("{name: a, query: '*=>[KNN 3 @v $x]', vector: []}", "'vector' must be a non-empty"),
        ("{name: a, query: '*=>[KNN 3 @v $x]', vector: [.nan]}", "finite numbers"),
        (
            "{name: a, query: '*=>[KNN 3 @v $x]', vector: [1], target_query: '@t:(x)'}",
            "same vector parameter",
        ),
        ("3", "is not a mapping"),
        ("{name: a, query: '*', params: [1]}", "'params' must be a mapping"),
        ("{name: a, query: '*', params: {a-b: 1}}", "is not a parameter name"),
        ("{name: a, query: '*', params: {lo: true}}", "must be a string or a number"),
        ("{name: a, query: '*', params: {lo: .inf}}", "must be finite"),
        ("{name: a, query: '*=>[KNN 3 @v $x]', vector: [1], params: {x: 1}}", "ftctl binds it"),
    ],
)
def test_a_bad_query_entry_is_a_usage_error_naming_it(entry: str, problem: str) -> None:
    """A bad entry of queries is a one-line UsageError naming the file, the entry (position
    and name) and the problem; nothing is guessed."""
    content = f"queries:\n  - {{name: ok, query: '*'}}\n  - {entry}\n".encode()
    with pytest.raises(UsageError) as raised:
        load_query_checks(content)
    message = raised.value.one_line()
    assert "queries[1]" in message and problem in message
    if "name: a" in entry:
        assert "queries[1] ('a')" in message
    assert "\n" not in message


def test_query_names_are_unique_and_queries_a_list() -> None:
    """Two queries of one name (one check name) or a queries that is not a list are refused."""
    with pytest.raises(UsageError, match="the name 'a' is used twice"):
        load_query_checks(b"queries: [{name: a, query: '*'}, {name: a, query: '@t:(x)'}]")
    with pytest.raises(UsageError, match="'queries' must be a list"):
        load_query_checks(b"queries: {name: a}")


@pytest.mark.parametrize(
    ("query", "clause"),
    [
        (
            "*=>[KNN 10 @embedding $vec]",
            VectorClause(field="embedding", param="vec", score="__embedding_score"),
        ),
        (
            "(@module:{m})=>[KNN 10 @embedding $v EF_RUNTIME 50 AS dist]",
            VectorClause(field="embedding", param="v", score="dist"),
        ),
        (
            "*=>[knn 5 @e $b]=>{$YIELD_DISTANCE_AS: d}",
            VectorClause(field="e", param="b", score="d"),
        ),
        ("@e:[VECTOR_RANGE 0.2 $b]", VectorClause(field="e", param="b")),
        ("@text:(socket)", None),
        ("@module:{a}", None),
    ],
)
def test_vector_clause(query: str, clause: VectorClause | None) -> None:
    """The vector clause names the field, the vector's parameter and, for KNN, the name its
    distance is returned under (AS, $YIELD_DISTANCE_AS, or the server's default)."""
    assert vector_clause(query) == clause


def test_renamed_query_rewrites_whole_attribute_names_only() -> None:
    """@old becomes @new for each renamed field; a longer name that starts the same, or a
    word without @, is left alone."""
    renames = {"title": "headline", "emb": "vec"}
    query = "@title:(x) @titles:{y} title (@emb_2:[1 2])=>[KNN 3 @emb $v]"
    assert renamed_query(query, renames) == (
        "@headline:(x) @titles:{y} title (@emb_2:[1 2])=>[KNN 3 @vec $v]"
    )
    assert renamed_query(query, {}) == query


def test_params_are_read_as_strings_and_sent_before_the_vector() -> None:
    """``params`` binds a query's other parameters: read as strings, sent in PARAMS with the
    vector's to whichever index the query runs on."""
    checks = load_query_checks(
        b"queries:\n  - {name: p, query: '@n:[$lo $hi]=>[KNN 3 @v $vec]', vector: [1.0],"
        b" params: {lo: 0, hi: 2.5}}\n"
    )
    (q,) = checks.queries
    assert q.params == {"lo": "0", "hi": "2.5"}
    command = search_command("i", q.query, q.clause, b"\x00", 13, q.params)
    assert command[3:11] == ("PARAMS", "6", "lo", "0", "hi", "2.5", "vec", b"\x00")
    assert search_command("i", "*", None, b"", 5)[3] == "NOCONTENT"
