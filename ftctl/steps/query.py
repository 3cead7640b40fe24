"""The application side of a vector query: what to send to the index behind a public name.

An online migration that changes a vector's datatype swaps the index behind a public name
(an alias) at its cut-over, and the query blob format changes with it: a float32 blob sent
to a FLOAT16 index fails (``query vector blob size (16) does not match index's expected
size (8)``). Everything here is sans-IO, so the sync and asyncio encoders of
:mod:`ftctl.query` share it:

- :class:`IndexFormat`: the vector fields (datatype, dimension, where the index reads them)
  of the index a name resolves to, from its ``FT.INFO``;
- :class:`FormatCache`: that format, read again once it is older than ``max_age`` seconds
  or when a query says it is stale (the caller passes the time: steps read no clock);
- :func:`encode_vector`: float values → the bytes a field of that format expects;
- :func:`search`: a KNN ``FT.SEARCH`` through the name that, on the blob-size error, reads
  the format again and retries once with the vector encoded anew.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import msgspec
import numpy as np
import numpy.typing as npt

from ftctl.errors import RedisCommandError, UsageError
from ftctl.plan.codecs import encode
from ftctl.plan.quantization import (
    INTEGER_DATATYPES,
    QuantizationParams,
    element_size,
    normalize_datatype,
)
from ftctl.schema.ftinfo import IndexInfo
from ftctl.schema.model import StorageType
from ftctl.steps.catalog import index_info
from ftctl.steps.effects import Arg, Command, Commands, ReplyError, Step, single
from ftctl.steps.replies import as_map, text

_BLOB_SIZE = re.compile(
    r"blob size \((\d+)\) does not match index's expected size \((\d+)\)", re.IGNORECASE
)


def is_blob_size_error(error: object) -> bool:
    """Whether ``error`` (an exception, a reply error or its text) is the server's refusal
    of a query vector whose size is not the one the index expects.

    After a cut-over that changed the datatype it means: the index behind the name is no
    longer the one the vector was encoded for.
    """
    message = error.message if isinstance(error, ReplyError) else str(error)
    return _BLOB_SIZE.search(message) is not None


class VectorFormat(msgspec.Struct, frozen=True, kw_only=True):
    """One vector field of an index as a query or a document must encode it."""

    attribute: str
    """The name queries use (``@attribute``)."""
    path: str
    """Where the index reads the vector: a hash field, or a JSON path."""
    datatype: str
    """Lowercase: float64, float32, float16, bfloat16, int8, uint8."""
    dims: int

    @property
    def size(self) -> int:
        """Bytes of one encoded vector (what the server checks a query blob against)."""
        return self.dims * element_size(self.datatype)


class IndexFormat(msgspec.Struct, frozen=True, kw_only=True):
    """The vector fields of the index a public name resolved to when it was read."""

    name: str
    """The name asked for (an alias or an index)."""
    index: str
    """The index behind it at that moment."""
    storage_type: StorageType
    vectors: dict[str, VectorFormat]
    """By attribute name."""

    def vector(self, field: str) -> VectorFormat:
        """The vector field queried as ``field`` (its attribute name) or stored under it
        (its hash field or JSON path); an unknown one is a :class:`UsageError`."""
        found = self.vectors.get(field)
        if found is None:
            found = next((v for v in self.vectors.values() if v.path == field), None)
        if found is None:
            known = ", ".join(sorted(self.vectors)) or "none"
            raise UsageError(
                f"index '{self.index}' (behind '{self.name}') has no vector field '{field}'",
                f"its vector fields: {known}",
            )
        return found


def index_format(name: str, info: IndexInfo) -> IndexFormat:
    """The :class:`IndexFormat` of a parsed ``FT.INFO`` of ``name``."""
    schema = info.schema
    vectors = {
        f.name: VectorFormat(
            attribute=f.name,
            path=schema.field_path(f),
            datatype=normalize_datatype(f.attrs.datatype),
            dims=f.attrs.dims,
        )
        for f in schema.vector_fields()
    }
    return IndexFormat(
        name=name, index=info.index_name, storage_type=schema.storage_type, vectors=vectors
    )


def read_format(name: str) -> Step[IndexFormat]:
    """``FT.INFO`` of ``name`` as an :class:`IndexFormat` (an alias resolves to its index)."""
    info = yield from index_info(name)
    return index_format(name, info)


def encode_vector(
    fmt: IndexFormat,
    field: str,
    vector: npt.ArrayLike,
    quantization: Mapping[str, QuantizationParams],
) -> bytes:
    """``vector`` (float values, one vector) as the bytes ``field`` of ``fmt`` expects.

    int8/uint8 fields need their quantization parameters in ``quantization`` (by attribute
    name); other datatypes ignore them. Raises :class:`UsageError` for a vector of the wrong
    length or kind and :class:`~ftctl.plan.codecs.CodecError` for values the datatype cannot
    hold (a float16 overflow, NaN bound for an integer type).
    """
    spec = fmt.vector(field)
    values = np.asarray(vector)
    if values.ndim == 2 and values.shape[0] == 1:
        values = values[0]
    where = f"field '{spec.attribute}' of index '{fmt.index}'"
    if values.dtype.kind not in "fiu":
        raise UsageError(f"a vector for {where} must hold numbers, got {values.dtype}")
    if values.ndim != 1 or values.shape[0] != spec.dims:
        raise UsageError(
            f"a vector for {where} needs {spec.dims} values, got shape {values.shape}",
            "pass one vector of the field's DIM",
        )
    params = quantization.get(spec.attribute)
    if spec.datatype in INTEGER_DATATYPES and params is None:
        raise UsageError(
            f"{where} is {spec.datatype.upper()}: encoding a vector needs the quantization "
            "parameters the migration used",
            "pass quantization=ftctl.quantization_params(plan) (the plan's "
            "vector_changes[].params)",
        )
    return encode(values[None, :], spec.datatype, params)


def encode_document_vector(
    fmt: IndexFormat,
    field: str,
    vector: npt.ArrayLike,
    quantization: Mapping[str, QuantizationParams],
) -> bytes:
    """``vector`` as the bytes a HASH document's ``field`` must hold for the index of ``fmt``.

    The same bytes as a query blob; JSON documents are refused (:class:`UsageError`): they
    hold vectors as arrays of numbers, which a datatype change does not rewrite.
    """
    if fmt.storage_type == "json":
        raise UsageError(
            f"index '{fmt.index}' (behind '{fmt.name}') indexes JSON documents, whose vectors "
            "are arrays of numbers whatever the index's datatype",
            "write the float values as they are; only query blobs follow the datatype",
        )
    return encode_vector(fmt, field, vector, quantization)


@dataclass(frozen=True, slots=True)
class _Entry:
    format: IndexFormat
    read_at: float


class FormatCache:
    """The :class:`IndexFormat` behind ``name``, read again when older than ``max_age``.

    Callers pass the current time (any monotonic clock, in seconds). ``max_age=0`` reads
    ``FT.INFO`` before every use; ``math.inf`` only when :meth:`reload` is asked for. The
    entry is one immutable value replaced whole, so threads or tasks sharing a cache see
    either the old format or the new one; two of them may both read it.
    """

    def __init__(self, name: str, *, max_age: float) -> None:
        if math.isnan(max_age) or max_age < 0:
            raise UsageError(f"max_age must be a number of seconds >= 0, got {max_age}")
        self.name = name
        self.max_age = max_age
        self._entry: _Entry | None = None

    def cached(self, now: float) -> IndexFormat | None:
        """The format if one was read less than ``max_age`` ago, else None."""
        entry = self._entry
        if entry is None or now - entry.read_at >= self.max_age:
            return None
        return entry.format

    def current(self, now: float) -> Step[IndexFormat]:
        """The cached format, or one read now when there is none fresh enough."""
        found = self.cached(now)
        if found is not None:
            return found
        return (yield from self.reload(now))

    def reload(self, now: float) -> Step[IndexFormat]:
        """Read the format now, whatever the cache holds, and keep it."""
        fmt = yield from read_format(self.name)
        entry = self._entry
        if entry is None or now >= entry.read_at:
            # a read that started earlier than the kept one must not replace it
            self._entry = _Entry(fmt, now)
        return fmt

    @property
    def last(self) -> IndexFormat | None:
        """The format read last, however old (None before the first read)."""
        entry = self._entry
        return entry.format if entry is not None else None

    def invalidate(self) -> None:
        """Forget the format: the next use reads it again."""
        self._entry = None


class SearchHit(msgspec.Struct, frozen=True, kw_only=True):
    """One document a KNN search found: its key, its distance, the fields asked for."""

    id: str
    distance: float
    fields: dict[str, object] = msgspec.field(default_factory=dict)


class SearchResult(msgspec.Struct, frozen=True, kw_only=True):
    """What :func:`search` found, nearest first, and how the vector was encoded."""

    total: int
    hits: list[SearchHit]
    index: str
    """The index the query vector was encoded for (the one behind the name)."""
    datatype: str
    """The datatype it was encoded as."""
    retried: bool = False
    """The first attempt met the blob-size error; the format was read again and this is
    the second attempt's result."""


VECTOR_PARAM = "vector"
"""The ``PARAMS`` name :func:`knn_command` binds the query vector to."""


def knn_command(
    name: str,
    spec: VectorFormat,
    blob: bytes,
    *,
    k: int,
    filter: str = "*",
    return_fields: Sequence[str] = (),
    distance_field: str = "vector_distance",
    params: Mapping[str, Arg] | None = None,
    dialect: int = 2,
) -> Command:
    """``FT.SEARCH name "(filter)=>[KNN k @field $vector AS distance]"`` sorted by distance.

    Returns ``distance_field`` and ``return_fields``; ``params`` are further ``PARAMS`` the
    filter refers to (``$name``).
    """
    if k < 1:
        raise UsageError(f"k must be at least 1, got {k}")
    extra = dict(params or {})
    if VECTOR_PARAM in extra:
        raise UsageError(f"the query parameter '${VECTOR_PARAM}' is the query vector's")
    where = "*" if filter.strip() in ("", "*") else f"({filter})"
    query = f"{where}=>[KNN {k} @{spec.attribute} ${VECTOR_PARAM} AS {distance_field}]"
    returned = [distance_field, *(f for f in return_fields if f != distance_field)]
    pairs: list[Arg] = [VECTOR_PARAM, blob]
    for key, value in extra.items():
        pairs += [key, value]
    return (
        "FT.SEARCH",
        name,
        query,
        "PARAMS",
        len(pairs),
        *pairs,
        "SORTBY",
        distance_field,
        "RETURN",
        len(returned),
        *returned,
        "LIMIT",
        0,
        k,
        "DIALECT",
        dialect,
    )


def _hits(reply: object, distance_field: str) -> tuple[int, list[SearchHit]]:
    """Total and hits of an FT.SEARCH reply, RESP2 (``[total, id, [f, v, …], …]``) or RESP3
    (``{total_results, results: [{id, extra_attributes}]}``)."""
    rows: list[tuple[object, dict[str, object]]] = []
    if isinstance(reply, dict):
        body = as_map(reply)
        total = int(body.get("total_results", 0))
        for row in body.get("results", []):
            row_map = as_map(row)
            rows.append((row_map.get("id"), as_map(row_map.get("extra_attributes", {}))))
    elif isinstance(reply, list) and reply:
        total = int(reply[0])
        rest = reply[1:]
        rows = [(rest[i], as_map(rest[i + 1])) for i in range(0, len(rest) - 1, 2)]
    else:
        raise RedisCommandError("FT.SEARCH", f"unexpected reply {reply!r:.200}")
    hits = []
    for doc_id, fields in rows:
        distance = fields.pop(distance_field, None)
        hits.append(
            SearchHit(
                id=text(doc_id),
                distance=float(text(distance)) if distance is not None else math.nan,
                fields=fields,
            )
        )
    return total, hits


def search(
    cache: FormatCache,
    now: float,
    field: str,
    vector: npt.ArrayLike,
    quantization: Mapping[str, QuantizationParams],
    *,
    k: int = 10,
    filter: str = "*",
    return_fields: Sequence[str] = (),
    distance_field: str = "vector_distance",
    params: Mapping[str, Arg] | None = None,
    dialect: int = 2,
) -> Step[SearchResult]:
    """KNN search through ``cache.name`` with ``vector`` encoded for the index behind it.

    When the server refuses the blob's size (the name now serves an index of another
    datatype), the format is read again and the search retried once with the vector
    encoded for it. Any other error reply, or the same refusal again, raises
    :class:`~ftctl.errors.RedisCommandError`.
    """
    fmt = yield from cache.current(now)
    retried = False
    while True:
        spec = fmt.vector(field)
        blob = encode_vector(fmt, field, vector, quantization)
        command = knn_command(
            cache.name,
            spec,
            blob,
            k=k,
            filter=filter,
            return_fields=return_fields,
            distance_field=distance_field,
            params=params,
            dialect=dialect,
        )
        reply = single((yield Commands([command])))
        if isinstance(reply, ReplyError):
            if is_blob_size_error(reply) and not retried:
                retried = True
                fmt = yield from cache.reload(now)
                continue
            hint = (
                f"the index behind '{cache.name}' did not take a {spec.datatype} vector of "
                f"{spec.dims} dims even after its format was read again"
                if is_blob_size_error(reply)
                else ""
            )
            raise RedisCommandError("FT.SEARCH", reply.message, hint)
        total, hits = _hits(reply, distance_field)
        return SearchResult(
            total=total, hits=hits, index=fmt.index, datatype=spec.datatype, retried=retried
        )


__all__ = [
    "VECTOR_PARAM",
    "FormatCache",
    "IndexFormat",
    "SearchHit",
    "SearchResult",
    "VectorFormat",
    "encode_document_vector",
    "encode_vector",
    "index_format",
    "is_blob_size_error",
    "knn_command",
    "read_format",
    "search",
]
