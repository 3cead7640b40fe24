"""``FT.INFO`` replies (RESP2 flat lists or RESP3 maps, raw bytes) → schema + stats.

What RediSearch 2.10 does not report, and how the parsed schema says so (``unreported``):
``key_separator`` (client-side only), ``SKIPINITIALSCAN``, ``PHONETIC``, and the vector
parameters ``INITIAL_CAP``, ``BLOCK_SIZE``, ``EF_RUNTIME``, ``EPSILON`` (and any SVS parameter
absent from the reply). Their values in the parsed schema are ``None``/``False`` and their
option paths are listed in :attr:`IndexSchema.unreported`, so callers can warn instead of
silently resetting them. A parameter that a newer server does report is parsed and not listed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, cast

import msgspec

from ftctl.errors import UsageError
from ftctl.schema.model import (
    Field,
    GeoAttrs,
    GeoField,
    GeoShapeAttrs,
    GeoShapeField,
    IndexSchema,
    IndexSettings,
    NumericAttrs,
    NumericField,
    StorageType,
    TagAttrs,
    TagField,
    TextAttrs,
    TextField,
    VectorAttrs,
    VectorField,
)


class IndexStats(msgspec.Struct, frozen=True, kw_only=True):
    """The numbers of FT.INFO (sizes in MB as the server reports them; NaN when undefined)."""

    num_docs: int = 0
    max_doc_id: int = 0
    num_terms: int = 0
    num_records: int = 0
    hash_indexing_failures: int = 0
    indexing: bool = False
    percent_indexed: float = 1.0
    number_of_uses: int = 0
    cleaning: bool = False
    total_indexing_time: float = 0.0
    total_inverted_index_blocks: int = 0
    inverted_sz_mb: float = 0.0
    vector_index_sz_mb: float = 0.0
    offset_vectors_sz_mb: float = 0.0
    doc_table_size_mb: float = 0.0
    sortable_values_size_mb: float = 0.0
    key_table_size_mb: float = 0.0
    tag_overhead_sz_mb: float = 0.0
    text_overhead_sz_mb: float = 0.0
    geoshapes_sz_mb: float = 0.0
    total_index_memory_sz_mb: float = 0.0
    records_per_doc_avg: float = 0.0
    bytes_per_record_avg: float = 0.0
    offsets_per_term_avg: float = 0.0
    offset_bits_per_record_avg: float = 0.0

    def __getitem__(self, key: str) -> Any:
        """Read access in RedisVL's dict shape (``plan.source.stats_snapshot["num_docs"]``)."""
        if key not in self.__struct_fields__:
            raise KeyError(key)
        return getattr(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        """``dict.get`` by field name (RedisVL plans hold the stats as a dict)."""
        return getattr(self, key) if key in self.__struct_fields__ else default


class IndexInfo(msgspec.Struct, frozen=True, kw_only=True):
    """A parsed FT.INFO: the index's real name (aliases resolve to it), schema and stats."""

    index_name: str
    schema: IndexSchema
    stats: IndexStats


def indexing_state(indexing: bool, percent_indexed: float) -> str:
    """``ready``, or ``indexing (NN%)`` while the background scan runs.

    ``percent_indexed`` is the server's ratio of keys scanned to the keys the database held
    when the scan started, so keys written during the scan push it past 1 (2.17 was seen on
    RediSearch 2.10) while ``indexing`` is still 1. Until ``indexing`` is 0 the index is not
    ready: the share shown is clamped to 0..99% and rounded down, and a ratio that says
    nothing (NaN) shows no number.
    """
    if not indexing:
        return "ready"
    if math.isnan(percent_indexed):
        return "indexing"
    percent = min(max(math.floor(percent_indexed * 100), 0), 99)
    return f"indexing ({percent}%)"


def vecsim_search_params(reply: object) -> dict[str, float]:
    """``ef_runtime`` and ``epsilon`` of a vector index, from ``FT.DEBUG VECSIM_INFO``
    (RESP2 or RESP3; a tiered index keeps them in its ``BACKEND_INDEX``). FT.INFO does not
    report them; absent keys are left out."""
    info = _pairs(reply) if isinstance(reply, list | dict) else {}
    backend = info.get("BACKEND_INDEX")
    if isinstance(backend, list | dict):
        info = {**info, **_pairs(backend)}
    out: dict[str, float] = {}
    for key, attr in (("EF_RUNTIME", "ef_runtime"), ("EPSILON", "epsilon")):
        if info.get(key) is not None:
            try:
                out[attr] = _float(info[key])
            except ValueError:
                continue
    return out


def explains_phonetic(reply: object) -> bool:
    """Whether an ``FT.EXPLAIN`` of a one-term query on a text field expands the term
    phonetically (a ``<CODE(expanded)`` branch): the field has PHONETIC, which FT.INFO does
    not report."""
    return ":<" in _text(reply) if isinstance(reply, bytes | str) else False


_FLAGS = frozenset(
    {
        "SORTABLE",
        "UNF",
        "NOSTEM",
        "NOINDEX",
        "CASESENSITIVE",
        "WITHSUFFIXTRIE",
        "INDEXEMPTY",
        "INDEXMISSING",
        "PHONETIC",
    }
)
_INT_STATS = {
    "num_docs",
    "max_doc_id",
    "num_terms",
    "num_records",
    "hash_indexing_failures",
    "number_of_uses",
    "total_inverted_index_blocks",
}
_BOOL_STATS = {"indexing", "cleaning"}
_FLOAT_STATS = set(IndexStats.__struct_fields__) - _INT_STATS - _BOOL_STATS


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    if isinstance(value, str):
        return value
    return str(value)


def _float(value: object) -> float:
    if isinstance(value, int | float):
        return float(value)
    text = _text(value).strip().lower()
    if text in ("nan", "-nan"):
        return math.nan
    return float(text)


def _int(value: object) -> int:
    if isinstance(value, int):
        return value
    return int(_float(value))


def _pairs(value: object) -> dict[str, object]:
    """A RESP3 map or a RESP2 flat ``[k, v, k, v, …]`` list as ``{str: value}``."""
    if isinstance(value, Mapping):
        return {_text(k): v for k, v in value.items()}
    if isinstance(value, list | tuple):
        items = list(value)
        return {_text(items[i]): items[i + 1] for i in range(0, len(items) - 1, 2)}
    raise ValueError(f"expected a map, got {type(value).__name__}")


def _list(value: object) -> list[object]:
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return list(value)
    raise ValueError(f"expected a list, got {type(value).__name__}")


def _attribute(value: object) -> tuple[dict[str, object], set[str]]:
    """One ``attributes`` entry as (upper-cased key → value, flags).

    RESP3 gives a map with a ``flags`` list. RESP2 gives a flat list where flags are bare
    tokens between key/value pairs, so a token is a flag when it is a known flag name.
    """
    if isinstance(value, Mapping):
        raw = {_text(k): v for k, v in value.items()}
        flags = {_text(f).upper() for f in _list(raw.pop("flags", []))}
        return {k.upper(): v for k, v in raw.items()}, flags
    tokens = _list(value)
    out: dict[str, object] = {}
    flags = set()
    i = 0
    while i < len(tokens):
        key = _text(tokens[i])
        if key.upper() in _FLAGS:
            flags.add(key.upper())
            i += 1
            continue
        if i + 1 < len(tokens):
            out[key.upper()] = tokens[i + 1]
        i += 2
    return out, flags


def _field(value: object, storage: StorageType, unreported: list[str]) -> Field:
    raw, flags = _attribute(value)
    identifier = _text(raw["IDENTIFIER"])
    name = _text(raw.get("ATTRIBUTE", identifier))
    path: str | None = identifier
    if storage == "hash" and identifier == name:
        path = None
    kind = _text(raw["TYPE"]).upper()
    sortable = "SORTABLE" in flags
    common: dict[str, Any] = {
        "index_missing": "INDEXMISSING" in flags,
        "no_index": "NOINDEX" in flags,
    }
    prefix = f"fields.{name}.attrs"
    if kind == "TEXT":
        if "PHONETIC" not in raw:
            unreported.append(f"{prefix}.phonetic_matcher")
        phonetic = raw.get("PHONETIC")
        weight = _float(raw.get("WEIGHT", 1.0))
        if weight != 1.0:
            # omit_defaults compares floats by identity: pass the default object itself.
            common["weight"] = weight
        text_attrs = TextAttrs(
            no_stem="NOSTEM" in flags,
            phonetic_matcher=_text(phonetic) if phonetic is not None else None,
            withsuffixtrie="WITHSUFFIXTRIE" in flags,
            index_empty="INDEXEMPTY" in flags,
            sortable=sortable,
            unf="UNF" in flags,
            **common,
        )
        return TextField(name=name, path=path, attrs=text_attrs)
    if kind == "TAG":
        separator: str | None = _text(raw.get("SEPARATOR", ""))
        if (storage == "json" and separator == "") or (storage == "hash" and separator == ","):
            separator = None
        tag_attrs = TagAttrs(
            separator=separator,
            case_sensitive="CASESENSITIVE" in flags,
            withsuffixtrie="WITHSUFFIXTRIE" in flags,
            index_empty="INDEXEMPTY" in flags,
            sortable=sortable,
            unf="UNF" in flags,
            **common,
        )
        return TagField(name=name, path=path, attrs=tag_attrs)
    if kind == "NUMERIC":
        # The server reports UNF on every numeric sortable; it is not a user choice there.
        return NumericField(name=name, path=path, attrs=NumericAttrs(sortable=sortable, **common))
    if kind == "GEO":
        return GeoField(name=name, path=path, attrs=GeoAttrs(sortable=sortable, **common))
    if kind == "GEOSHAPE":
        coord = _text(raw.get("COORD_SYSTEM", "SPHERICAL")).lower()
        return GeoShapeField(
            name=name,
            path=path,
            attrs=GeoShapeAttrs(coord_system=cast("Any", coord), **common),
        )
    if kind == "VECTOR":
        return VectorField(name=name, path=path, attrs=_vector(raw, flags, prefix, unreported))
    raise ValueError(f"unknown field type {kind!r} for '{name}'")


_VECTOR_OPTIONAL: dict[str, tuple[str, ...]] = {
    "flat": ("initial_cap", "block_size"),
    "hnsw": ("initial_cap", "m", "ef_construction", "ef_runtime", "epsilon"),
    "svs-vamana": (
        "initial_cap",
        "graph_max_degree",
        "construction_window_size",
        "search_window_size",
        "epsilon",
        "compression",
        "reduce",
        "training_threshold",
    ),
}
_VECTOR_FLOATS = {"epsilon"}
_VECTOR_STRINGS = {"compression"}


def _vector(
    raw: dict[str, object], flags: set[str], prefix: str, unreported: list[str]
) -> VectorAttrs:
    algorithm = _text(raw["ALGORITHM"]).lower().replace("_", "-")
    kwargs: dict[str, Any] = {
        "dims": _int(raw["DIM"]),
        "algorithm": algorithm,
        "datatype": _text(raw.get("DATA_TYPE", raw.get("TYPE", "FLOAT32"))).lower(),
        "distance_metric": _text(raw["DISTANCE_METRIC"]).lower(),
        "index_missing": "INDEXMISSING" in flags,
    }
    for attr in _VECTOR_OPTIONAL.get(algorithm, ()):
        value = raw.get(attr.upper())
        if value is None:
            unreported.append(f"{prefix}.{attr}")
        elif attr in _VECTOR_STRINGS:
            kwargs[attr] = _text(value)
        elif attr in _VECTOR_FLOATS:
            kwargs[attr] = _float(value)
        else:
            kwargs[attr] = _int(value)
    return msgspec.convert(kwargs, VectorAttrs)


def _settings(name: str, info: dict[str, object]) -> IndexSettings:
    definition = _pairs(info.get("index_definition", []))
    storage = _text(definition.get("key_type", "HASH")).lower()
    prefixes = [_text(p) for p in _list(definition.get("prefixes", [b""]))] or [""]
    options = {_text(o).upper() for o in _list(info.get("index_options", []))}
    score = _float(definition["default_score"]) if "default_score" in definition else None
    stopwords_raw = info.get("stopwords_list")

    def opt(key: str) -> str | None:
        value = definition.get(key)
        return None if value is None else _text(value)

    return IndexSettings(
        name=name,
        prefix=prefixes[0] if len(prefixes) == 1 else prefixes,
        storage_type=cast("StorageType", storage),
        filter=opt("filter"),
        language=opt("default_language"),
        language_field=opt("language_field"),
        score=None if score == 1.0 else score,
        score_field=opt("score_field"),
        payload_field=opt("payload_field"),
        max_text_fields="MAXTEXTFIELDS" in options,
        no_offsets="NOOFFSETS" in options,
        no_hl="NOHL" in options,
        no_fields="NOFIELDS" in options,
        no_freqs="NOFREQS" in options,
        stopwords=None if stopwords_raw is None else [_text(w) for w in _list(stopwords_raw)],
    )


def _stats(info: dict[str, object]) -> IndexStats:
    kwargs: dict[str, Any] = {}
    for key in IndexStats.__struct_fields__:
        if key not in info or info[key] is None:
            continue
        value = info[key]
        if key in _INT_STATS:
            kwargs[key] = _int(value)
        elif key in _BOOL_STATS:
            kwargs[key] = bool(_int(value))
        else:
            kwargs[key] = _float(value)
    return IndexStats(**kwargs)


def parse_ft_info(reply: object) -> IndexInfo:
    """Parse a raw FT.INFO reply (RESP2 or RESP3, bytes or str). Malformed → UsageError."""
    try:
        info = _pairs(reply)
        name = _text(info["index_name"])
        settings = _settings(name, info)
        unreported = ["index.key_separator", "index.skip_initial_scan"]
        fields = [
            _field(a, settings.storage_type, unreported) for a in _list(info.get("attributes", []))
        ]
        schema = IndexSchema(index=settings, fields=fields, unreported=unreported)
        return IndexInfo(index_name=name, schema=schema, stats=_stats(info))
    except (KeyError, ValueError, TypeError, msgspec.ValidationError) as exc:
        raise UsageError(
            f"cannot parse the FT.INFO reply: {exc!r}",
            "this server's FT.INFO format is not supported; please report it",
        ) from None
