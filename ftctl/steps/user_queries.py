"""The user's own queries: a baseline on the source, the same queries on the migrated index.

:func:`take_baseline` runs each query of a query check file's ``queries`` against the source
index before the migration changes anything, and returns the :class:`QueryBaseline` event
the step journals: the top-k ids with their scores, the ids tied with the k-th, the total,
and the query vector as sent (read from ``vector_from_key`` or encoded from ``vector``).

:func:`compare` runs them against the migrated index (the shadow, before an online
cut-over): the query vector converted for that index's datatype with the conversion the
migration applies to stored vectors, then, per query, the share of the target's top k the
source ranked there too (a document tied with the source's k-th counts: a top k is only
defined up to ties) and the change of the result count, against the query's thresholds.
Each query becomes a ``query_compared`` event and a ``query:<name>`` check.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

import msgspec
import numpy as np

from ftctl.errors import FtctlError, RefusedError, UsageError
from ftctl.journal.events import (
    BaselineQuery,
    CheckFailed,
    CheckPassed,
    QueryBaseline,
    QueryCompared,
)
from ftctl.plan.codecs import convert_batch, encode
from ftctl.plan.quantization import INTEGER_DATATYPES, element_size, normalize_datatype
from ftctl.plan.query_checks import UserQuery, VectorClause, renamed_query, vector_clause
from ftctl.schema.model import IndexSchema, VectorField
from ftctl.steps.effects import Arg, Command, Commands, ReplyError, Step
from ftctl.steps.replies import as_map, search_hits, text
from ftctl.steps.spec import RunSpec

TIE_WINDOW = 1000
"""Results past the k-th the baseline reads to find those tied with it (a tag filter ties
every match); a larger tie group is recorded as truncated."""
SAMPLE = 10
"""Ids kept in ``missing`` / ``added`` of a comparison."""
CHECK_PREFIX = "query:"

Rename = Callable[[bytes], bytes]


def check_name(name: str) -> str:
    """The check a query is reported under (``query:<name>``)."""
    return CHECK_PREFIX + name


def target_query(spec: RunSpec, query: UserQuery) -> str:
    """The query as it reads on the target: ``target_query``, else ``query`` with the
    fields the plan renames under their new names."""
    return query.target_query or renamed_query(query.query, spec.attribute_renames)


def _vector_field(schema: IndexSchema, clause: VectorClause, name: str) -> VectorField:
    found = schema.field(clause.field)
    if not isinstance(found, VectorField):
        raise UsageError(
            f"query '{name}' searches @{clause.field} with a vector, but index "
            f"'{schema.name}' has no vector field '{clause.field}'",
            "name the index's vector attribute in the query (give target_query when the "
            "target reads differently)",
        )
    return found


def check_queries(spec: RunSpec, queries: Sequence[UserQuery]) -> None:
    """Refuse (UsageError, before anything runs) queries the plan cannot answer: a vector
    clause on a field that is not a vector field of the source or the target, a ``vector``
    of the wrong length."""
    for q in queries:
        clause = q.clause
        after = vector_clause(target_query(spec, q))
        if clause is None or after is None:
            continue
        source = _vector_field(spec.source_schema, clause, q.name)
        _vector_field(spec.target_schema, after, q.name)
        if q.vector is not None and len(q.vector) != source.attrs.dims:
            raise UsageError(
                f"query '{q.name}': its vector has {len(q.vector)} values, @{clause.field} "
                f"holds vectors of {source.attrs.dims}",
                "give a vector of the field's dimension, or vector_from_key",
            )


def encode_values(values: Sequence[float], datatype: str) -> bytes:
    """Float values as one vector of ``datatype`` (an integer type takes them as its raw
    integers, which must be whole and in range)."""
    kind = normalize_datatype(datatype)
    if kind in INTEGER_DATATYPES:
        low, high = (-128, 127) if kind == "int8" else (0, 255)
        if not all(float(v).is_integer() and low <= v <= high for v in values):
            raise UsageError(
                f"a {kind} index is queried with whole numbers from {low} to {high}",
                "give the vector as the index stores it, or use vector_from_key",
            )
        return np.asarray(values, dtype=np.int8 if kind == "int8" else np.uint8).tobytes()
    return encode([list(values)], kind)


def _stored_vector(
    schema: IndexSchema, field: VectorField, reply: object
) -> tuple[bytes | None, str]:
    """A stored vector as a query blob of ``field``'s datatype, or (None, why not)."""
    datatype = field.attrs.datatype
    if isinstance(reply, ReplyError):
        return None, reply.message
    if schema.storage_type == "hash":
        width = field.attrs.dims * element_size(datatype)
        if not isinstance(reply, bytes):
            return None, "no such key or field"
        if len(reply) != width:
            return (
                None,
                f"{len(reply)} bytes, a {datatype} vector of {field.attrs.dims} has {width}",
            )
        return reply, ""
    if not isinstance(reply, bytes | str):
        return None, "no such key or path"
    values = json.loads(reply)
    if isinstance(values, list) and values and isinstance(values[0], list):
        values = values[0]
    if not isinstance(values, list) or len(values) != field.attrs.dims:
        return None, f"not a list of {field.attrs.dims} numbers"
    try:
        return encode_values(values, datatype), ""
    except FtctlError as exc:
        return None, exc.message


def _read_vector(schema: IndexSchema, field: VectorField, key: str) -> Command:
    path = schema.field_path(field)
    return ("HGET", key, path) if schema.storage_type == "hash" else ("JSON.GET", key, path)


def search_command(
    index: str,
    query: str,
    clause: VectorClause | None,
    vector: bytes,
    rows: int,
    params: Mapping[str, str] | None = None,
) -> Command:
    """FT.SEARCH of one query: ids ranked by KNN distance (a KNN clause; ties broken by the
    server's order) or by text score (with the scores), ``rows`` of them; ``params`` are
    the query's other parameters."""
    args: list[Arg] = ["FT.SEARCH", index, query]
    bound: list[Arg] = [a for name, value in (params or {}).items() for a in (name, value)]
    if clause is not None:
        bound += [clause.param, vector]
    if bound:
        args += ["PARAMS", str(len(bound)), *bound]
    if clause is not None and clause.score is not None:
        args += ["RETURN", "1", clause.score, "SORTBY", clause.score, "ASC"]
    else:
        args += ["NOCONTENT", "WITHSCORES"]
    return (*args, "LIMIT", "0", str(rows), "DIALECT", "2")


class Results(NamedTuple):
    """One FT.SEARCH answer: ids in rank order, their scores, the total."""

    ids: list[bytes]
    scores: list[float]
    total: int


def _float(value: object) -> float:
    try:
        return float(text(value)) if not isinstance(value, int | float) else float(value)
    except ValueError:
        return math.nan


def parse_results(reply: object, clause: VectorClause | None) -> Results | str:
    """The :class:`Results` of a :func:`search_command` reply (RESP2 or RESP3), or the
    error it answered."""
    if isinstance(reply, ReplyError):
        return reply.message
    if clause is not None and clause.score is not None:
        hits = search_hits(reply)
        ids = [doc for doc, _ in hits]
        scores = [_float(fields.get(clause.score, "nan")) for _, fields in hits]
    elif isinstance(reply, dict):
        rows = [as_map(row) for row in as_map(reply).get("results", [])]
        ids = [row["id"] for row in rows if isinstance(row.get("id"), bytes)]
        scores = [
            _float(row.get("score", "nan")) for row in rows if isinstance(row.get("id"), bytes)
        ]
    elif isinstance(reply, list) and reply:
        rest = reply[1:]
        ids = [doc for doc in rest[0::2] if isinstance(doc, bytes)]
        scores = [_float(score) for score in rest[1::2]]
    else:
        return f"unexpected reply {reply!r:.80}"
    if isinstance(reply, dict):
        total = as_map(reply).get("total_results")
    else:
        total = reply[0] if isinstance(reply, list) and reply else None
    if not isinstance(total, int) or len(scores) != len(ids):
        return f"unexpected reply {reply!r:.80}"
    return Results(ids, scores, total)


def _baseline_entry(
    spec: RunSpec, q: UserQuery, vector: bytes, datatype: str, found: Results
) -> BaselineQuery:
    top, scores = found.ids[: q.k], found.scores[: q.k]
    tied: list[bytes] = []
    truncated = False
    if len(top) == q.k and len(found.ids) > q.k:
        last = scores[-1]
        rest = list(zip(found.ids[q.k :], found.scores[q.k :], strict=True))
        tied = [doc for doc, score in rest if score == last]
        truncated = len(tied) == len(rest) == TIE_WINDOW
    return BaselineQuery(
        name=q.name,
        query=q.query,
        target_query=target_query(spec, q),
        k=q.k,
        min_overlap=q.min_overlap,
        max_count_change=q.max_count_change,
        vector_from_key=q.vector_from_key or "",
        vector=vector,
        params=dict(q.params),
        datatype=datatype,
        ids=top,
        scores=scores,
        tied=tied,
        tied_truncated=truncated,
        total=found.total,
    )


def _refused(q: UserQuery, problem: str) -> RefusedError:
    return RefusedError(
        f"query '{q.name}' {problem}; nothing was changed",
        "fix the query in the query check file, or leave it out",
    )


def take_baseline(spec: RunSpec, queries: Sequence[UserQuery]) -> Step[QueryBaseline]:
    """Run ``queries`` against the source index; a query it cannot run is refused
    (RefusedError: the run stops before anything changed)."""
    schema = spec.source_schema
    clauses = [q.clause for q in queries]
    fields = [
        _vector_field(schema, clause, q.name) if clause is not None else None
        for q, clause in zip(queries, clauses, strict=True)
    ]
    stored = [
        (n, _read_vector(schema, f, q.vector_from_key))
        for n, (q, f) in enumerate(zip(queries, fields, strict=True))
        if f is not None and q.vector_from_key is not None
    ]
    replies = yield Commands([command for _, command in stored])
    vectors: dict[int, bytes] = {}
    for (n, _), reply in zip(stored, replies, strict=True):
        q, f = queries[n], fields[n]
        assert f is not None
        blob, why = _stored_vector(schema, f, reply)
        if blob is None:
            raise _refused(q, f"cannot read the vector of '{q.vector_from_key}' ({why})")
        vectors[n] = blob
    for n, (q, f) in enumerate(zip(queries, fields, strict=True)):
        if f is not None and q.vector is not None:
            vectors[n] = encode_values(q.vector, f.attrs.datatype)
    searches = [
        search_command(
            spec.source_index, q.query, clause, vectors.get(n, b""), q.k + TIE_WINDOW, q.params
        )
        for n, (q, clause) in enumerate(zip(queries, clauses, strict=True))
    ]
    answers = yield Commands(searches)
    entries = []
    for n, (q, clause, reply) in enumerate(zip(queries, clauses, answers, strict=True)):
        found = parse_results(reply, clause)
        if isinstance(found, str):
            raise _refused(q, f"fails on the source index '{spec.source_index}': {found}")
        f = fields[n]
        entries.append(
            _baseline_entry(spec, q, vectors.get(n, b""), f.attrs.datatype if f else "", found)
        )
    return QueryBaseline(index=spec.source_index, queries=entries)


def same_measure(spec: RunSpec, q: UserQuery, recorded: BaselineQuery) -> bool:
    """Whether ``q`` measures what ``recorded`` measured (its thresholds may differ)."""
    if (q.query, target_query(spec, q), q.k) != (
        recorded.query,
        recorded.target_query,
        recorded.k,
    ):
        return False
    if (q.vector_from_key or "") != recorded.vector_from_key or q.params != recorded.params:
        return False
    if q.vector is None:
        return True
    try:
        return encode_values(q.vector, recorded.datatype) == recorded.vector
    except FtctlError:
        return False


def journaled_refusal(
    spec: RunSpec,
    queries: Sequence[UserQuery],
    baseline: QueryBaseline | None,
    skipped: bool,
) -> str | None:
    """Why a run given ``queries`` may not continue a journal (None: it may).

    ``skipped``: the journal's run went past its baseline step without queries, so the
    source may already have changed; ``baseline``: the one recorded, which the run's
    queries must measure the same way (only their thresholds may change).
    """
    if not queries:
        return None
    if baseline is None:
        return (
            "this migration started without queries: a baseline taken now would not be the source's"
            if skipped
            else None
        )
    recorded = {b.name: b for b in baseline.queries}
    for q in queries:
        entry = recorded.get(q.name)
        if entry is None or not same_measure(spec, q, entry):
            return (
                f"query '{q.name}' is not the one whose baseline the journal holds "
                "(only min_overlap and max_count_change may change between runs)"
            )
    missing = [name for name in recorded if name not in {q.name for q in queries}]
    if missing:
        return f"query '{missing[0]}' has a baseline in the journal but is not in the file"
    return None


def _conversion_for(
    spec: RunSpec, entry: BaselineQuery, field: VectorField
) -> Callable[[bytes], bytes]:
    """How the source's query vector becomes the target's: the migration's conversion of
    that field's stored vectors, else a plain change of datatype (none when equal)."""
    source_clause = vector_clause(entry.query)
    source_field = spec.source_schema.field(source_clause.field) if source_clause else None
    path = spec.source_schema.field_path(source_field) if source_field else None
    for c in spec.conversions:
        if c.backup_field == path:
            return lambda blob: convert_batch(blob, c.source, c.target, c.dims, c.params)
    src, dst = normalize_datatype(entry.datatype), normalize_datatype(field.attrs.datatype)
    if src == dst:
        return lambda blob: blob
    return lambda blob: convert_batch(blob, src, dst, field.attrs.dims)


class Comparison:
    """The target's ranked ids ``after`` against a baseline entry, ids compared under their
    final names (``rename``).

    The source's top k is its strictly better ids and those scored like its k-th (the
    boundary). A top k is defined only up to ties, so each boundary place may be held by
    any id the source scored like its k-th, in its top k or past it (``tied``), but only
    boundary places: a better id the target lost is missing whatever took its place.
    ``hits`` of ``expected`` (the source's top-k size) places are held.
    """

    def __init__(self, entry: BaselineQuery, after: Sequence[bytes], rename: Rename) -> None:
        top = [rename(doc) for doc in entry.ids]
        last = entry.scores[-1] if entry.scores and len(entry.scores) == len(top) else None
        boundary = [d for d, s in zip(top, entry.scores, strict=False) if s == last]
        better = [d for d in top if d not in set(boundary)]
        tied = set(boundary) | {rename(doc) for doc in entry.tied}
        ranked = tied | set(better)
        got = list(after[: entry.k])
        seen = set(got)
        held = min(len(boundary), sum(1 for doc in got if doc in tied))
        self.expected = len(top)
        self.hits = sum(1 for doc in better if doc in seen) + held
        lost_boundary = [d for d in boundary if d not in seen][: len(boundary) - held]
        self.missing = [d for d in better if d not in seen] + lost_boundary
        self.added = [doc for doc in got if doc not in ranked]

    @property
    def overlap(self) -> float:
        """hits / expected; 1.0 when the source found nothing (nothing can be lost)."""
        return self.hits / self.expected if self.expected else 1.0


def _verdict(event: QueryCompared) -> CheckPassed | CheckFailed:
    name = check_name(event.name)
    if event.error:
        return CheckFailed(
            check=name, detail=f"query failed on '{event.index}': {event.error}", count=1
        )
    if not event.baseline:
        detail = f"{event.count_after} results on '{event.index}' (no baseline: not compared)"
        return CheckPassed(check=name, detail=detail)
    overlap = event.overlap if event.overlap is not None else 0.0
    before, after = event.count_before or 0, event.count_after or 0
    parts = [
        f"overlap@{event.k} {overlap:.2f} ({event.hits} of {event.expected}, "
        f"min {event.min_overlap:g})",
        f"results {before} → {after}"
        + (f" (max change {event.max_count_change})" if event.max_count_change is not None else ""),
    ]
    if event.passed:
        return CheckPassed(check=name, detail="; ".join(parts))
    return CheckFailed(check=name, detail="; ".join(parts), count=1)


def compared_event(
    entry: BaselineQuery,
    *,
    index: str,
    found: Results | str,
    rename: Rename,
    min_overlap: float,
    max_count_change: int | None,
    measured: bool = True,
) -> QueryCompared:
    """The ``query_compared`` event of one query's answer on the target (pure).

    ``found``: the answer, or why the query could not run; ``measured`` False: ``entry``
    holds no baseline, the query only ran.
    """
    event = QueryCompared(
        name=entry.name,
        index=index,
        k=entry.k,
        passed=False,
        min_overlap=min_overlap,
        max_count_change=max_count_change,
        baseline=measured,
    )
    if isinstance(found, str):
        return msgspec.structs.replace(event, error=found)
    if not measured:
        return msgspec.structs.replace(event, passed=True, count_after=found.total)
    result = Comparison(entry, found.ids, rename)
    change = abs(found.total - entry.total)
    passed = result.overlap >= min_overlap and (
        max_count_change is None or change <= max_count_change
    )
    return msgspec.structs.replace(
        event,
        passed=passed,
        overlap=round(result.overlap, 6),
        hits=result.hits,
        expected=result.expected,
        count_before=entry.total,
        count_after=found.total,
        missing=result.missing[:SAMPLE],
        added=result.added[:SAMPLE],
    )


class _Planned(NamedTuple):
    """One query ready to run on the target: its baseline entry (a stand-in without
    results when it has none), its vector for the target, or why it cannot run."""

    entry: BaselineQuery
    vector: bytes = b""
    error: str = ""
    measured: bool = True


def _stand_in(spec: RunSpec, q: UserQuery) -> BaselineQuery:
    return BaselineQuery(
        name=q.name,
        query=q.query,
        target_query=target_query(spec, q),
        k=q.k,
        min_overlap=q.min_overlap,
        max_count_change=q.max_count_change,
        params=dict(q.params),
    )


def _measured(spec: RunSpec, entry: BaselineQuery, schema: IndexSchema, index: str) -> _Planned:
    clause = vector_clause(entry.target_query)
    if clause is None or not entry.vector:
        return _Planned(entry)
    field = _vector_field(schema, clause, entry.name)
    try:
        return _Planned(entry, _conversion_for(spec, entry, field)(entry.vector))
    except FtctlError as exc:
        return _Planned(entry, error=f"cannot convert its vector for '{index}': {exc.message}")


def _unmeasured(spec: RunSpec, q: UserQuery, schema: IndexSchema) -> Step[_Planned]:
    """A query with no baseline, to run on the target alone: its vector read from the
    document under its final name, or the file's encoded as the migration would."""
    entry = _stand_in(spec, q)
    clause = vector_clause(entry.target_query)
    if clause is None:
        return _Planned(entry, measured=False)
    field = _vector_field(schema, clause, q.name)
    if q.vector_from_key is not None:
        key = spec.final_key(q.vector_from_key.encode()).decode(errors="replace")
        (reply,) = yield Commands([_read_vector(schema, field, key)])
        blob, why = _stored_vector(schema, field, reply)
        if blob is None:
            error = f"cannot read the vector of '{key}' ({why})"
            return _Planned(entry, error=error, measured=False)
        return _Planned(entry, blob, measured=False)
    source = q.clause
    found = spec.source_schema.field(source.field) if source is not None else None
    datatype = found.attrs.datatype if isinstance(found, VectorField) else field.attrs.datatype
    entry = msgspec.structs.replace(entry, datatype=datatype)
    try:
        blob = _conversion_for(spec, entry, field)(encode_values(q.vector or [], datatype))
    except FtctlError as exc:
        return _Planned(entry, error=exc.message, measured=False)
    return _Planned(entry, blob, measured=False)


def compare(
    spec: RunSpec,
    baseline: QueryBaseline | None,
    queries: Sequence[UserQuery],
    *,
    index: str,
    schema: IndexSchema,
) -> Step[list[QueryCompared | CheckPassed | CheckFailed]]:
    """Run the baseline's queries (and those of ``queries`` it lacks) against ``index``,
    whose schema is ``schema``; the events to journal: a ``query_compared`` and a check each.

    A query in ``queries`` gives the thresholds of the baseline entry of its name; one
    without a baseline entry only runs (its check fails only when the query does).
    """
    given = {q.name: q for q in queries}
    recorded = list(baseline.queries) if baseline is not None else []
    planned = [_measured(spec, entry, schema, index) for entry in recorded]
    names = {entry.name for entry in recorded}
    for q in queries:
        if q.name not in names:
            planned.append((yield from _unmeasured(spec, q, schema)))
    runnable = [n for n, p in enumerate(planned) if not p.error]
    replies = yield Commands(
        [
            search_command(
                index,
                planned[n].entry.target_query,
                vector_clause(planned[n].entry.target_query),
                planned[n].vector,
                planned[n].entry.k,
                planned[n].entry.params,
            )
            for n in runnable
        ]
    )
    answers = dict(zip(runnable, replies, strict=True))
    events: list[QueryCompared | CheckPassed | CheckFailed] = []
    for n, p in enumerate(planned):
        entry = p.entry
        policy = given.get(entry.name)
        min_overlap = policy.min_overlap if policy is not None else entry.min_overlap
        max_change = policy.max_count_change if policy is not None else entry.max_count_change
        found = p.error or parse_results(answers[n], vector_clause(entry.target_query))
        event = compared_event(
            entry, index=index, found=found, rename=spec.final_key, measured=p.measured,
            min_overlap=min_overlap, max_count_change=max_change,
        )  # fmt: skip
        events += [event, _verdict(event)]
    return events


__all__ = [
    "CHECK_PREFIX",
    "TIE_WINDOW",
    "Comparison",
    "Results",
    "check_name",
    "check_queries",
    "compare",
    "compared_event",
    "encode_values",
    "journaled_refusal",
    "parse_results",
    "same_measure",
    "search_command",
    "take_baseline",
    "target_query",
]
