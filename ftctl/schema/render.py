"""``FT.CREATE`` argv from an :class:`IndexSchema` (pure; no I/O)."""

from __future__ import annotations

from typing import assert_never

from ftctl.schema.model import (
    Field,
    GeoField,
    GeoShapeField,
    IndexSchema,
    NumericField,
    TagField,
    TextField,
    VectorAttrs,
    VectorField,
)


def _num(value: float) -> str:
    """A number as FT.CREATE reads it: integral floats without ``.0``, others exactly."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return repr(value) if isinstance(value, float) else str(value)


def create_argv(
    schema: IndexSchema,
    *,
    name: str | None = None,
    prefixes: list[str] | None = None,
    skip_initial_scan: bool | None = None,
) -> list[str]:
    """The whole ``FT.CREATE`` command for ``schema``.

    ``name`` and ``prefixes`` override the schema's (a throwaway validation index on a prefix
    that matches nothing, a shadow index); ``skip_initial_scan`` overrides the index option.
    """
    idx = schema.index
    argv = ["FT.CREATE", name if name is not None else idx.name]
    argv += ["ON", idx.storage_type.upper()]
    chosen = list(prefixes) if prefixes is not None else idx.prefixes
    if chosen and chosen != [""]:
        argv += ["PREFIX", str(len(chosen)), *chosen]
    if idx.filter is not None:
        argv += ["FILTER", idx.filter]
    if idx.language is not None:
        argv += ["LANGUAGE", idx.language]
    if idx.language_field is not None:
        argv += ["LANGUAGE_FIELD", idx.language_field]
    if idx.score is not None:
        argv += ["SCORE", _num(idx.score)]
    if idx.score_field is not None:
        argv += ["SCORE_FIELD", idx.score_field]
    if idx.payload_field is not None:
        argv += ["PAYLOAD_FIELD", idx.payload_field]
    for flag, on in (
        ("MAXTEXTFIELDS", idx.max_text_fields),
        ("NOOFFSETS", idx.no_offsets),
        ("NOHL", idx.no_hl),
        ("NOFIELDS", idx.no_fields),
        ("NOFREQS", idx.no_freqs),
    ):
        if on:
            argv.append(flag)
    if idx.stopwords is not None:
        argv += ["STOPWORDS", str(len(idx.stopwords)), *idx.stopwords]
    skip = idx.skip_initial_scan if skip_initial_scan is None else skip_initial_scan
    if skip:
        argv.append("SKIPINITIALSCAN")
    argv.append("SCHEMA")
    for f in schema.fields:
        argv += field_argv(f, schema)
    return argv


def field_argv(f: Field, schema: IndexSchema) -> list[str]:
    """One field's part of ``SCHEMA``: ``identifier [AS attribute] TYPE options``.

    Option order matters on RediSearch 2.10: ``SORTABLE [UNF]`` and ``NOINDEX`` come last.
    """
    identifier = schema.field_path(f)
    out = [identifier] if identifier == f.name else [identifier, "AS", f.name]
    match f:
        case TextField(attrs=a):
            out.append("TEXT")
            if a.weight != 1.0:
                out += ["WEIGHT", _num(a.weight)]
            if a.no_stem:
                out.append("NOSTEM")
            if a.phonetic_matcher is not None:
                out += ["PHONETIC", a.phonetic_matcher]
            if a.withsuffixtrie:
                out.append("WITHSUFFIXTRIE")
            out += _tail(a.index_missing, a.index_empty, a.sortable, a.unf, a.no_index)
        case TagField(attrs=a):
            out.append("TAG")
            if a.separator is not None:
                out += ["SEPARATOR", a.separator]
            if a.case_sensitive:
                out.append("CASESENSITIVE")
            if a.withsuffixtrie:
                out.append("WITHSUFFIXTRIE")
            out += _tail(a.index_missing, a.index_empty, a.sortable, a.unf, a.no_index)
        case NumericField(attrs=a):
            out.append("NUMERIC")
            out += _tail(a.index_missing, False, a.sortable, a.unf, a.no_index)
        case GeoField(attrs=a):
            out.append("GEO")
            out += _tail(a.index_missing, False, a.sortable, False, a.no_index)
        case GeoShapeField(attrs=a):
            out += ["GEOSHAPE", a.coord_system.upper()]
            out += _tail(a.index_missing, False, False, False, a.no_index)
        case VectorField(attrs=a):
            out += ["VECTOR", a.algorithm.upper()]
            params = vector_params(a)
            out += [str(len(params)), *params]
            if a.index_missing:
                out.append("INDEXMISSING")
        case _:
            assert_never(f)
    return out


def _tail(
    index_missing: bool, index_empty: bool, sortable: bool, unf: bool, no_index: bool
) -> list[str]:
    out: list[str] = []
    if index_missing:
        out.append("INDEXMISSING")
    if index_empty:
        out.append("INDEXEMPTY")
    if sortable:
        out.append("SORTABLE")
        if unf:
            out.append("UNF")
    if no_index:
        out.append("NOINDEX")
    return out


def vector_params(a: VectorAttrs) -> list[str]:
    """The ``TYPE … DIM … DISTANCE_METRIC …`` attribute list of a VECTOR field."""
    params = [
        "TYPE",
        a.datatype.upper(),
        "DIM",
        str(a.dims),
        "DISTANCE_METRIC",
        a.distance_metric.upper(),
    ]
    optional: tuple[tuple[str, int | float | str | None], ...] = (
        ("INITIAL_CAP", a.initial_cap),
        ("BLOCK_SIZE", a.block_size),
        ("M", a.m),
        ("EF_CONSTRUCTION", a.ef_construction),
        ("EF_RUNTIME", a.ef_runtime),
        ("EPSILON", a.epsilon),
        ("GRAPH_MAX_DEGREE", a.graph_max_degree),
        ("CONSTRUCTION_WINDOW_SIZE", a.construction_window_size),
        ("SEARCH_WINDOW_SIZE", a.search_window_size),
        ("COMPRESSION", a.compression),
        ("REDUCE", a.reduce),
        ("TRAINING_THRESHOLD", a.training_threshold),
    )
    for key, value in optional:
        if value is not None:
            params += [key, value if isinstance(value, str) else _num(value)]
    return params
