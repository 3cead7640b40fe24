"""The ``query_check_file``: RedisVL's document checks, and the user's own queries.

The file is YAML with three optional lists. Two are RedisVL 0.28's (``MigrationValidator``)::

    fetch_ids: ["1", "2"]        # document ids: <target prefix><separator><id> must exist
    keys_exist: ["doc:1"]        # full Redis keys that must exist after the migration

Validation runs each of those as one check (``fetch:<id>``, ``key:<key>``). The third is
ftctl's: real queries, run against the source before anything changes and against the
target after (the shadow, before an online cut-over), compared by top-k overlap::

    queries:
      - name: socket docs                     # unique; the check is query:<name>
        query: "@text:(socket connection)"    # an FT.SEARCH query (DIALECT 2)
      - name: near doc 7
        query: "*=>[KNN 10 @embedding $vec]"
        vector_from_key: "doc:7"              # that document's stored vector (source)
        k: 10                                 # top-k compared (default 10)
        min_overlap: 0.9                      # fail below this share of the top k (default 0.9)
        max_count_change: 0                   # fail when the result count moves more (optional)
      - name: cheap shoes
        query: "@price:[$lo $hi] @kind:{$kind}"
        params: {lo: 0, hi: 50, kind: shoe}   # PARAMS of the query other than its vector

A query with a vector clause (``KNN … $param``, ``VECTOR_RANGE … $param``) takes its vector
from ``vector_from_key`` or ``vector: [floats]``; ``target_query`` gives the query as it
reads on the target when the automatic renaming of ``@old`` field names is not right. Other
top-level keys are ignored, as RedisVL ignores them; a ``queries`` entry is checked strictly.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path

import msgspec

from ftctl.errors import UsageError
from ftctl.schema.model import IndexSchema, read_yaml

DEFAULT_K = 10
DEFAULT_MIN_OVERLAP = 0.9
MAX_K = 1000
"""The most results a query's top k may hold (FT.SEARCH's default MAXSEARCHRESULTS is
10,000; the baseline also keeps up to :data:`~ftctl.steps.user_queries.TIE_WINDOW` ties)."""

QUERY_KEYS = (
    "name",
    "query",
    "target_query",
    "vector_from_key",
    "vector",
    "k",
    "min_overlap",
    "max_count_change",
    "params",
)
_QUERY_HINT = (
    "each entry of queries is a mapping with name and query, and optionally target_query, "
    "vector_from_key or vector, k, min_overlap (0..1), max_count_change, params"
)
_PARAM_NAME = re.compile(r"\w+", re.ASCII)
_FILE_HINT = "a query check file is fetch_ids: [ids], keys_exist: [keys] and/or queries: [...]"


class VectorClause(msgspec.Struct, frozen=True, kw_only=True):
    """The vector part of a query: the attribute it searches and the parameter its vector
    is bound to.

    ``score``: the name a KNN clause yields its distance under (``AS name``,
    ``$YIELD_DISTANCE_AS``, else ``__<field>_score``); None for ``VECTOR_RANGE``.
    """

    field: str
    param: str
    score: str | None = None


_KNN = re.compile(r"=>\s*\[\s*KNN\s+\S+\s+@([^\s\]]+)\s+\$(\w+)([^\]]*)\]", re.IGNORECASE)
_AS = re.compile(r"\bAS\s+([^\s\]]+)", re.IGNORECASE)
_YIELD = re.compile(r"\$YIELD_DISTANCE_AS\s*:\s*([^\s}]+)", re.IGNORECASE)
_RANGE = re.compile(r"@([^\s:\[\]()]+)\s*:\s*\[\s*VECTOR_RANGE\s+\S+\s+\$(\w+)", re.IGNORECASE)


def vector_clause(query: str) -> VectorClause | None:
    """The KNN or VECTOR_RANGE clause of an FT.SEARCH query (None: it has none)."""
    knn = _KNN.search(query)
    if knn is not None:
        field, param, rest = knn[1], knn[2], knn[3]
        named = _AS.search(rest) or _YIELD.search(query, knn.end())
        return VectorClause(
            field=field, param=param, score=named[1] if named else f"__{field}_score"
        )
    found = _RANGE.search(query)
    if found is not None:
        return VectorClause(field=found[1], param=found[2])
    return None


def renamed_query(query: str, renames: Mapping[str, str]) -> str:
    """``query`` with every ``@old`` attribute reference of a renamed field as ``@new``."""
    if not renames:
        return query
    pattern = re.compile(
        r"@("
        + "|".join(re.escape(old) for old in sorted(renames, key=len, reverse=True))
        + r")(?![\w])"
    )
    return pattern.sub(lambda m: "@" + renames[m[1]], query)


class UserQuery(msgspec.Struct, frozen=True, kw_only=True):
    """One of the user's queries (an entry of ``queries``)."""

    name: str
    query: str
    target_query: str | None = None
    """The query as it reads on the target (default: ``query`` with renamed fields)."""
    vector_from_key: str | None = None
    """A source key whose stored vector (of the clause's field) is the query vector."""
    vector: list[float] | None = None
    k: int = DEFAULT_K
    min_overlap: float = DEFAULT_MIN_OVERLAP
    max_count_change: int | None = None
    params: dict[str, str] = msgspec.field(default_factory=dict)
    """The query's ``PARAMS`` other than its vector (``$name`` → value), sent to both
    indexes as given."""

    @property
    def clause(self) -> VectorClause | None:
        return vector_clause(self.query)


class QueryChecks(msgspec.Struct, frozen=True, kw_only=True):
    """The checks of a ``query_check_file`` (ids and keys as strings)."""

    fetch_ids: list[str] = msgspec.field(default_factory=list)
    keys_exist: list[str] = msgspec.field(default_factory=list)
    queries: list[UserQuery] = msgspec.field(default_factory=list)


def _strings(raw: object, key: str, label: str) -> list[str]:
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(v, str | int) for v in raw):
        raise UsageError(f"{label}: '{key}' must be a list of strings", _FILE_HINT)
    return [str(v) for v in raw]


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _query(raw: object, position: int, label: str) -> UserQuery:
    where = f"{label}: queries[{position}]"
    if not isinstance(raw, dict):
        raise UsageError(f"{where} is not a mapping", _QUERY_HINT)
    name = raw.get("name")
    if isinstance(name, str) and name:
        where += f" ('{name}')"

    def bad(problem: str) -> UsageError:
        return UsageError(f"{where}: {problem}", _QUERY_HINT)

    unknown = [str(k) for k in raw if k not in QUERY_KEYS]
    if unknown:
        raise bad(f"unknown key '{unknown[0]}'")
    if not isinstance(name, str) or not name.strip():
        raise bad("'name' must be a non-empty string")
    for key in ("query", "target_query", "vector_from_key"):
        value = raw.get(key)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise bad(f"'{key}' must be a non-empty string")
    query = raw.get("query")
    if query is None:
        raise bad("'query' is missing")
    k = raw.get("k", DEFAULT_K)
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= MAX_K:
        raise bad(f"'k' must be a whole number from 1 to {MAX_K}, got {k!r}")
    min_overlap = raw.get("min_overlap", DEFAULT_MIN_OVERLAP)
    if not _number(min_overlap) or not 0.0 <= min_overlap <= 1.0:
        raise bad(
            f"'min_overlap' is a share of the top k from 0 to 1, got {min_overlap!r} "
            "(a threshold above 1 can never be met)"
        )
    change = raw.get("max_count_change")
    if change is not None and (
        not isinstance(change, int) or isinstance(change, bool) or change < 0
    ):
        raise bad(f"'max_count_change' must be a whole number ≥ 0, got {change!r}")
    vector = raw.get("vector")
    if vector is not None and (
        not isinstance(vector, list)
        or not vector
        or not all(_number(v) and math.isfinite(v) for v in vector)
    ):
        raise bad("'vector' must be a non-empty list of finite numbers")
    from_key = raw.get("vector_from_key")
    if vector is not None and from_key is not None:
        raise bad("give 'vector' or 'vector_from_key', not both")
    params = _params(raw.get("params"), bad)
    out = UserQuery(
        name=name,
        query=query,
        target_query=raw.get("target_query"),
        vector_from_key=from_key,
        vector=[float(v) for v in vector] if vector is not None else None,
        k=k,
        min_overlap=float(min_overlap),
        max_count_change=change,
        params=params,
    )
    clause = out.clause
    target = vector_clause(out.target_query) if out.target_query else clause
    if clause is None and (vector is not None or from_key is not None):
        raise bad("has a vector but its query has no 'KNN … @field $param' or VECTOR_RANGE clause")
    if clause is not None and vector is None and from_key is None:
        raise bad(
            f"its query searches @{clause.field} with ${clause.param}: give vector_from_key or vector"
        )
    if (clause is None) != (target is None) or (
        clause is not None and target is not None and clause.param != target.param
    ):
        raise bad("'target_query' must have the same vector parameter as 'query'")
    if clause is not None and clause.param in params:
        raise bad(f"'params' gives ${clause.param}, the vector parameter: ftctl binds it")
    return out


def _params(raw: object, bad: Callable[[str], UsageError]) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise bad("'params' must be a mapping of parameter names to values")
    out: dict[str, str] = {}
    for name, value in raw.items():
        if not isinstance(name, str) or not _PARAM_NAME.fullmatch(name):
            raise bad(f"'params': {name!r} is not a parameter name (letters, digits, _)")
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise bad(f"'params': ${name} must be a string or a number, got {value!r}")
        if isinstance(value, float) and not math.isfinite(value):
            raise bad(f"'params': ${name} must be finite, got {value!r}")
        out[name] = str(value)
    return out


def _queries(raw: object, label: str) -> list[UserQuery]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise UsageError(f"{label}: 'queries' must be a list", _QUERY_HINT)
    out = [_query(entry, n, label) for n, entry in enumerate(raw)]
    seen: set[str] = set()
    for n, q in enumerate(out):
        if q.name in seen:
            raise UsageError(
                f"{label}: queries[{n}]: the name '{q.name}' is used twice",
                "give each query its own name (its check is query:<name>)",
            )
        seen.add(q.name)
    return out


def query_checks_from_builtins(raw: object, *, label: str = "query check file") -> QueryChecks:
    """:class:`QueryChecks` from decoded YAML; a bad shape is a :class:`UsageError`."""
    if raw is None:
        return QueryChecks()
    if not isinstance(raw, dict):
        raise UsageError(f"{label} is not a mapping", _FILE_HINT)
    return QueryChecks(
        fetch_ids=_strings(raw.get("fetch_ids"), "fetch_ids", label),
        keys_exist=_strings(raw.get("keys_exist"), "keys_exist", label),
        queries=_queries(raw.get("queries"), label),
    )


def load_query_checks(source: str | os.PathLike[str] | bytes) -> QueryChecks:
    """Read a ``query_check_file`` (a path, or YAML bytes)."""
    label, raw = read_yaml(
        source if isinstance(source, bytes) else Path(source), "query check file"
    )
    return query_checks_from_builtins(raw, label=label)


def document_key(schema: IndexSchema, doc_id: str) -> str:
    """The key of document ``doc_id`` in an index of ``schema``, as RedisVL forms it.

    RedisVL's ``SearchIndex.key(id)``: the first prefix without trailing separators, the
    separator, then the id; the bare id when the index has no prefix.
    """
    prefixes = schema.prefixes
    prefix = prefixes[0] if prefixes else ""
    separator = schema.index.key_separator
    if not prefix:
        return doc_id
    normalized = prefix.rstrip(separator) if separator else prefix
    return f"{normalized}{separator}{doc_id}" if normalized else doc_id


__all__ = [
    "DEFAULT_K",
    "DEFAULT_MIN_OVERLAP",
    "QueryChecks",
    "UserQuery",
    "VectorClause",
    "document_key",
    "load_query_checks",
    "query_checks_from_builtins",
    "renamed_query",
    "vector_clause",
]
