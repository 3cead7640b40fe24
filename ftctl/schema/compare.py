"""Compare two schemas on what ``FT.INFO`` reports (pure).

Used by validation ("the created index has the target schema") and by "the live source still
matches the plan". Options the server does not report (key_separator, SKIPINITIALSCAN,
PHONETIC, INITIAL_CAP, BLOCK_SIZE, EF_RUNTIME, EPSILON, and anything listed in either schema's
``unreported``) never count. Defaults are made explicit first, so ``separator: null`` on a hash
index equals ``separator: ','`` and ``m: null`` equals ``m: 16``.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ftctl.schema.model import (
    DEFAULT_LANGUAGE,
    DEFAULT_SCORE,
    HASH_TAG_SEPARATOR,
    HNSW_DEFAULT_EF_CONSTRUCTION,
    HNSW_DEFAULT_M,
    BaseField,
    IndexSchema,
    NumericField,
    TagField,
    TextField,
    VectorField,
    from_builtins,
)

NEVER_REPORTED_INDEX = frozenset({"key_separator", "skip_initial_scan", "name"})
NEVER_REPORTED_ATTRS: dict[str, frozenset[str]] = {
    "text": frozenset({"phonetic_matcher"}),
    "vector": frozenset({"initial_cap", "block_size", "ef_runtime", "epsilon"}),
    # The server always reports UNF on a numeric sortable.
    "numeric": frozenset({"unf"}),
}


def _index_view(schema: IndexSchema) -> dict[str, Any]:
    raw: dict[str, Any] = msgspec.structs.asdict(schema.index)
    for key in NEVER_REPORTED_INDEX:
        raw.pop(key, None)
    raw["prefix"] = schema.prefixes or [""]
    raw["language"] = (raw["language"] or DEFAULT_LANGUAGE).lower()
    raw["score"] = DEFAULT_SCORE if raw["score"] is None else float(raw["score"])
    if raw["stopwords"] is not None:
        raw["stopwords"] = sorted(raw["stopwords"])
    return raw


def _field_view(schema: IndexSchema, f: BaseField) -> tuple[str, dict[str, Any]]:
    kind = f.__struct_config__.tag
    assert isinstance(kind, str)
    attrs: dict[str, Any] = msgspec.structs.asdict(f.attrs) if hasattr(f, "attrs") else {}
    for key in NEVER_REPORTED_ATTRS.get(kind, frozenset()):
        attrs.pop(key, None)
    if isinstance(f, TagField) and attrs["separator"] is None:
        attrs["separator"] = HASH_TAG_SEPARATOR if schema.storage_type == "hash" else ""
    if isinstance(f, VectorField) and f.attrs.algorithm == "hnsw":
        attrs["m"] = f.attrs.m if f.attrs.m is not None else HNSW_DEFAULT_M
        if f.attrs.ef_construction is None:
            attrs["ef_construction"] = HNSW_DEFAULT_EF_CONSTRUCTION
    if isinstance(f, TextField | TagField) and schema.storage_type == "json" and f.attrs.sortable:
        # JSON sortables are always un-normalized; the server reports UNF for them.
        attrs["unf"] = True
    if isinstance(f, NumericField):
        attrs.pop("unf", None)
    view = {"type": kind, "path": schema.field_path(f), **attrs}
    return kind, view


def _skip(path: str, expected: IndexSchema, live: IndexSchema) -> bool:
    return path in expected.unreported or path in live.unreported


def _fmt(value: object) -> str:
    return repr(value)


def reported_differences(expected: IndexSchema, live: IndexSchema) -> list[str]:
    """Human-readable differences between two schemas on what FT.INFO reports.

    Empty when they match. Index names are not compared (a twin or shadow index is the same
    schema under another name). Field order is not compared.
    """
    out: list[str] = []
    exp_index, live_index = _index_view(expected), _index_view(live)
    for key, want in exp_index.items():
        got = live_index.get(key)
        if want != got and not _skip(f"index.{key}", expected, live):
            out.append(f"index.{key}: expected {_fmt(want)}, found {_fmt(got)}")
    live_fields = {f.name: f for f in live.fields}
    expected_names = {f.name for f in expected.fields}
    for f in expected.fields:
        other = live_fields.get(f.name)
        if other is None:
            out.append(f"field '{f.name}': missing")
            continue
        _, want_view = _field_view(expected, f)
        _, got_view = _field_view(live, other)
        if want_view["type"] != got_view["type"]:
            out.append(
                f"field '{f.name}': type expected {want_view['type']}, found {got_view['type']}"
            )
            continue
        for key, want in want_view.items():
            got = got_view.get(key)
            if want == got:
                continue
            option = f"fields.{f.name}.attrs.{key}"
            if _skip(option, expected, live):
                continue
            label = key if key in ("type", "path") else f"attrs.{key}"
            out.append(f"field '{f.name}': {label} expected {_fmt(want)}, found {_fmt(got)}")
    for f in live.fields:
        if f.name not in expected_names:
            out.append(f"field '{f.name}': not expected")
    return out


def schemas_equal(
    a: IndexSchema | dict[str, Any], b: IndexSchema | dict[str, Any], *, strip_excluded: bool = True
) -> bool:
    """Whether two schemas (ftctl's, or RedisVL schema dicts) define the same index.

    RedisVL's ``schemas_equal``: the index names and everything ``FT.INFO`` reports must
    match (options it never reports cannot differ). ``strip_excluded`` is accepted for
    RedisVL's signature; the comparison always leaves those options out, because a live
    index (``SearchIndex.from_existing(...).schema.to_dict()``) cannot show them.
    """
    left = a if isinstance(a, IndexSchema) else from_builtins(a)
    right = b if isinstance(b, IndexSchema) else from_builtins(b)
    return left.name == right.name and not reported_differences(left, right)
