"""The index schema model: RedisVL's schema YAML shape, able to hold every FT.CREATE option.

Shape (RedisVL compatible)::

    version: '0.1.0'            # optional
    index: {name, prefix, key_separator, storage_type, <index options>}
    fields: [{name, type, path, attrs}]
    unreported: [...]           # only in schemas read back from FT.INFO

Conventions the rest of ftctl relies on:

- ``None`` / ``False`` / the documented default means "not given": the server default applies
  and the option is left out of ``FT.CREATE``.
- ``name`` is the attribute name (what queries use). ``path`` is the JSON path for JSON
  indexes (``None`` means ``$.<name>``) and, for hash indexes, the hash field when it differs
  from ``name`` (``title AS t`` is ``name: t, path: title``).
- ``unreported`` lists option paths (``index.key_separator``,
  ``fields.<name>.attrs.phonetic_matcher``, …) whose value the server does not report in
  ``FT.INFO``: in a schema parsed from ``FT.INFO`` those values are *unknown*, not default.
  It is empty for a schema loaded from a user's file.
- Enum-ish values are lower case (``hnsw``, ``float32``, ``cosine``, ``flat``); loading accepts
  any case and normalizes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, TypeAlias

import msgspec

from ftctl.errors import UsageError

StorageType: TypeAlias = Literal["hash", "json"]
Algorithm: TypeAlias = Literal["flat", "hnsw", "svs-vamana"]
VectorDataType: TypeAlias = Literal["float32", "float64", "float16", "bfloat16", "int8", "uint8"]
DistanceMetric: TypeAlias = Literal["cosine", "l2", "ip"]
CoordSystem: TypeAlias = Literal["spherical", "flat"]

HNSW_DEFAULT_M = 16
HNSW_DEFAULT_EF_CONSTRUCTION = 200
HNSW_DEFAULT_EF_RUNTIME = 10
VECTOR_DEFAULT_EPSILON = 0.01
DEFAULT_LANGUAGE = "english"
DEFAULT_SCORE = 1.0
HASH_TAG_SEPARATOR = ","


class _Model(
    msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, forbid_unknown_fields=True
):
    """Common Struct settings: immutable (use ``msgspec.structs.replace``), strict keys."""


class IndexSettings(_Model, frozen=True, kw_only=True):
    """The ``index:`` section: name, key space, storage, and the index-level FT.CREATE options."""

    name: str
    prefix: str | list[str] = ""
    """One prefix (RedisVL style) or several; ``""`` matches every key (no PREFIX clause)."""
    key_separator: str = ":"
    """Client-side convention only; FT.CREATE has no such option and FT.INFO never reports it."""
    storage_type: StorageType = "hash"
    filter: str | None = None
    language: str | None = None
    language_field: str | None = None
    score: float | None = None
    score_field: str | None = None
    payload_field: str | None = None
    max_text_fields: bool = False
    no_offsets: bool = False
    no_hl: bool = False
    no_fields: bool = False
    no_freqs: bool = False
    stopwords: list[str] | None = None
    """``None``: the server's default list; ``[]``: no stop words (``STOPWORDS 0``)."""
    skip_initial_scan: bool = False

    @property
    def prefixes(self) -> list[str]:
        return [self.prefix] if isinstance(self.prefix, str) else list(self.prefix)


class TextAttrs(_Model, frozen=True, kw_only=True):
    weight: float = 1.0
    no_stem: bool = False
    phonetic_matcher: str | None = None
    """E.g. ``dm:en``. Not reported by FT.INFO on RediSearch 2.10."""
    withsuffixtrie: bool = False
    index_missing: bool = False
    index_empty: bool = False
    sortable: bool = False
    unf: bool = False
    no_index: bool = False


class TagAttrs(_Model, frozen=True, kw_only=True):
    separator: str | None = None
    """``None``: the server default (``,`` on hash; no splitting on JSON)."""
    case_sensitive: bool = False
    withsuffixtrie: bool = False
    index_missing: bool = False
    index_empty: bool = False
    sortable: bool = False
    unf: bool = False
    no_index: bool = False


class NumericAttrs(_Model, frozen=True, kw_only=True):
    index_missing: bool = False
    sortable: bool = False
    unf: bool = False
    """Accepted for RedisVL files; numeric sortables are always un-normalized on the server."""
    no_index: bool = False


class GeoAttrs(_Model, frozen=True, kw_only=True):
    index_missing: bool = False
    sortable: bool = False
    no_index: bool = False


class GeoShapeAttrs(_Model, frozen=True, kw_only=True):
    coord_system: CoordSystem = "spherical"
    index_missing: bool = False
    no_index: bool = False


_HNSW_ONLY = ("m", "ef_construction", "ef_runtime")
_FLAT_ONLY = ("block_size",)
_SVS_ONLY = (
    "graph_max_degree",
    "construction_window_size",
    "search_window_size",
    "compression",
    "reduce",
    "training_threshold",
)


class VectorAttrs(_Model, frozen=True, kw_only=True):
    """Vector field attributes; only the parameters of the chosen ``algorithm`` may be set."""

    dims: int
    algorithm: Algorithm = "flat"
    datatype: VectorDataType = "float32"
    distance_metric: DistanceMetric = "cosine"
    initial_cap: int | None = None
    index_missing: bool = False
    # FLAT
    block_size: int | None = None
    # HNSW
    m: int | None = None
    ef_construction: int | None = None
    ef_runtime: int | None = None
    # HNSW and SVS-VAMANA
    epsilon: float | None = None
    # SVS-VAMANA
    graph_max_degree: int | None = None
    construction_window_size: int | None = None
    search_window_size: int | None = None
    compression: str | None = None
    """E.g. ``LVQ8``, ``LeanVec4x8``; kept as written."""
    reduce: int | None = None
    training_threshold: int | None = None

    def __post_init__(self) -> None:
        if self.dims <= 0:
            raise ValueError(f"dims must be positive, got {self.dims}")
        allowed: dict[str, tuple[str, ...]] = {
            "flat": _FLAT_ONLY,
            "hnsw": _HNSW_ONLY,
            "svs-vamana": _SVS_ONLY,
        }
        for algorithm, names in allowed.items():
            if algorithm == self.algorithm:
                continue
            for attr in names:
                if getattr(self, attr) is not None:
                    raise ValueError(f"'{attr}' does not apply to algorithm '{self.algorithm}'")
        if self.algorithm == "flat" and self.epsilon is not None:
            raise ValueError("'epsilon' does not apply to algorithm 'flat'")


class BaseField(_Model, frozen=True, kw_only=True, tag_field="type"):
    """A field of the schema; ``type`` (the tag) selects the concrete class."""

    name: str
    path: str | None = None


class TextField(BaseField, frozen=True, kw_only=True, tag="text"):
    attrs: TextAttrs = msgspec.field(default_factory=TextAttrs)


class TagField(BaseField, frozen=True, kw_only=True, tag="tag"):
    attrs: TagAttrs = msgspec.field(default_factory=TagAttrs)


class NumericField(BaseField, frozen=True, kw_only=True, tag="numeric"):
    attrs: NumericAttrs = msgspec.field(default_factory=NumericAttrs)


class GeoField(BaseField, frozen=True, kw_only=True, tag="geo"):
    attrs: GeoAttrs = msgspec.field(default_factory=GeoAttrs)


class GeoShapeField(BaseField, frozen=True, kw_only=True, tag="geoshape"):
    attrs: GeoShapeAttrs = msgspec.field(default_factory=GeoShapeAttrs)


class VectorField(BaseField, frozen=True, kw_only=True, tag="vector"):
    attrs: VectorAttrs


Field: TypeAlias = TextField | TagField | NumericField | GeoField | GeoShapeField | VectorField
FIELD_TYPES: tuple[type[BaseField], ...] = (
    TextField,
    TagField,
    NumericField,
    GeoField,
    GeoShapeField,
    VectorField,
)


class IndexSchema(_Model, frozen=True, kw_only=True):
    """A whole index schema (RedisVL's schema YAML), plus what the server did not report."""

    version: str = "0.1.0"
    index: IndexSettings
    fields: list[Field] = msgspec.field(default_factory=list)
    unreported: list[str] = msgspec.field(default_factory=list)
    """Option paths whose values FT.INFO did not report (empty for user files)."""

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for f in self.fields:
            if f.name in seen:
                raise ValueError(f"field '{f.name}' is defined twice")
            seen.add(f.name)

    @property
    def name(self) -> str:
        return self.index.name

    def to_dict(self) -> dict[str, Any]:
        """The schema as RedisVL's schema dict (``index``, ``fields``), defaults omitted."""
        return schema_to_builtins(self)

    def __getitem__(self, key: str) -> Any:
        """Read access in RedisVL's dict shape (``plan.merged_target_schema["index"]``)."""
        return self.to_dict()[key]

    def get(self, key: str, default: Any = None) -> Any:
        """``dict.get`` on :meth:`to_dict` (RedisVL plans hold schemas as dicts)."""
        return self.to_dict().get(key, default)

    @property
    def storage_type(self) -> StorageType:
        return self.index.storage_type

    @property
    def prefixes(self) -> list[str]:
        return self.index.prefixes

    def field(self, name: str) -> Field | None:
        """The field whose attribute name is ``name``, or None."""
        for f in self.fields:
            if f.name == name:
                return f
        return None

    def vector_fields(self) -> list[VectorField]:
        return [f for f in self.fields if isinstance(f, VectorField)]

    def field_path(self, f: BaseField) -> str:
        """Where the field's value lives: JSON path, or hash field name."""
        if f.path is not None:
            return f.path
        return f"$.{f.name}" if self.index.storage_type == "json" else f.name


# --- loading and dumping ------------------------------------------------------------------

_LOWER_INDEX_KEYS = ("storage_type",)
_LOWER_ATTR_KEYS = ("algorithm", "datatype", "distance_metric", "coord_system")


def normalize_builtins(raw: object) -> object:
    """Lower-case enum-ish values (RedisVL files use both ``HNSW`` and ``hnsw``)."""
    if not isinstance(raw, dict):
        return raw
    out = dict(raw)
    index = out.get("index")
    if isinstance(index, dict):
        index = dict(index)
        for key in _LOWER_INDEX_KEYS:
            if isinstance(index.get(key), str):
                index[key] = index[key].lower()
        out["index"] = index
    fields = out.get("fields")
    if isinstance(fields, list):
        out["fields"] = [normalize_field_builtins(f) for f in fields]
    return out


def normalize_field_builtins(raw: object) -> object:
    """One field's builtins with lower-case type and enum-ish attrs (``SVS_VAMANA`` too)."""
    if not isinstance(raw, dict):
        return raw
    f = dict(raw)
    if isinstance(f.get("type"), str):
        f["type"] = f["type"].lower()
    attrs = f.get("attrs")
    if isinstance(attrs, dict):
        attrs = dict(attrs)
        for key in _LOWER_ATTR_KEYS:
            if isinstance(attrs.get(key), str):
                attrs[key] = attrs[key].lower()
        if isinstance(attrs.get("algorithm"), str):
            attrs["algorithm"] = attrs["algorithm"].replace("_", "-")
        if attrs.get("algorithm") == "svs":
            attrs["algorithm"] = "svs-vamana"
        f["attrs"] = attrs
    return f


def from_builtins(raw: object, *, source: str = "schema") -> IndexSchema:
    """An :class:`IndexSchema` from decoded YAML/JSON builtins; bad shape → UsageError."""
    try:
        return msgspec.convert(normalize_builtins(raw), IndexSchema)
    except msgspec.ValidationError as exc:
        raise UsageError(
            f"{source} is not a valid index schema: {exc}",
            "see RedisVL's schema YAML: index: {name, prefix, storage_type}, fields: [{name, type, path, attrs}]",
        ) from None


def read_yaml(source: str | Path | bytes, what: str) -> tuple[str, object]:
    """(label for messages, decoded YAML) of a file path or YAML bytes; UsageError naming
    the file and the problem when it cannot be read or parsed."""
    if isinstance(source, bytes):
        label, data = what, source
    else:
        label = f"'{source}'"
        try:
            data = Path(source).read_bytes()
        except OSError as exc:
            raise UsageError(
                f"cannot read {what} file {label}: {exc.strerror}", "check the path"
            ) from None
    try:
        raw = msgspec.yaml.decode(data)
    except msgspec.DecodeError as exc:
        raise UsageError(
            f"{label} is not valid YAML: {' '.join(str(exc).split())}", "fix the YAML syntax"
        ) from None
    return label, raw


def load_schema(source: str | Path | bytes) -> IndexSchema:
    """Load a schema YAML file (a path) or YAML bytes; errors name the file and the problem."""
    label, raw = read_yaml(source, "schema")
    return from_builtins(raw, source=label)


_FIELD_KEY_ORDER = ("name", "type", "path", "attrs")


def _field_builtins(raw: dict[str, Any]) -> dict[str, Any]:
    """RedisVL's key order (name, type, path, attrs); an empty ``attrs: {}`` is dropped."""
    out = {k: raw[k] for k in _FIELD_KEY_ORDER if k in raw and raw[k] != {}}
    out.update({k: v for k, v in raw.items() if k not in _FIELD_KEY_ORDER})
    return out


def schema_to_builtins(schema: IndexSchema) -> dict[str, Any]:
    """The schema as plain dicts/lists (defaults omitted), ready for YAML or JSON."""
    raw: dict[str, Any] = msgspec.to_builtins(schema)
    # omit_defaults compares strings by identity, so a decoded default version survives it.
    if raw.get("version") == "0.1.0":
        del raw["version"]
    raw["fields"] = [_field_builtins(f) for f in raw.get("fields", [])]
    return raw


def dump_schema(schema: IndexSchema) -> bytes:
    """The schema as YAML bytes, defaults and ``None`` omitted (small, reviewable files)."""
    return msgspec.yaml.encode(schema_to_builtins(schema))
