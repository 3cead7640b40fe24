"""FT.CREATE argv rendering and YAML round trips of the schema model (no server)."""

from __future__ import annotations

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from ftctl.schema import (
    IndexSchema,
    IndexSettings,
    TagAttrs,
    TagField,
    TextAttrs,
    TextField,
    VectorAttrs,
    VectorField,
    create_argv,
    dump_schema,
    load_schema,
    reported_differences,
)


def _schema() -> IndexSchema:
    return IndexSchema(
        index=IndexSettings(name="docs", prefix=["a:", "b:"], stopwords=[], skip_initial_scan=True),
        fields=[
            TextField(name="t", path="title", attrs=TextAttrs(weight=2.0, sortable=True, unf=True)),
            TagField(name="tags", attrs=TagAttrs(separator="|")),
            VectorField(name="v", attrs=VectorAttrs(dims=4, algorithm="hnsw", m=8, epsilon=0.5)),
        ],
    )


def test_create_argv_full() -> None:
    """The argv has every option in the order RediSearch 2.10 accepts (SORTABLE UNF last)."""
    assert create_argv(_schema()) == [
        "FT.CREATE", "docs", "ON", "HASH", "PREFIX", "2", "a:", "b:",
        "STOPWORDS", "0", "SKIPINITIALSCAN", "SCHEMA",
        "title", "AS", "t", "TEXT", "WEIGHT", "2", "SORTABLE", "UNF",
        "tags", "TAG", "SEPARATOR", "|",
        "v", "VECTOR", "HNSW", "10", "TYPE", "FLOAT32", "DIM", "4",
        "DISTANCE_METRIC", "COSINE", "M", "8", "EPSILON", "0.5",
    ]  # fmt: skip


def test_create_argv_overrides() -> None:
    """name, prefixes and skip_initial_scan override the schema's values."""
    argv = create_argv(_schema(), name="tmp", prefixes=["zz:"], skip_initial_scan=False)
    assert argv[:7] == ["FT.CREATE", "tmp", "ON", "HASH", "PREFIX", "1", "zz:"]
    assert "SKIPINITIALSCAN" not in argv


def test_json_field_without_path_uses_dollar_name() -> None:
    """A JSON field without path renders as ``$.<name> AS <name>``."""
    s = IndexSchema(
        index=IndexSettings(name="j", storage_type="json"), fields=[TextField(name="title")]
    )
    assert create_argv(s)[-4:] == ["$.title", "AS", "title", "TEXT"]
    assert "PREFIX" not in create_argv(s)


def test_differences_ignore_unreported_and_defaults() -> None:
    """key_separator, EPSILON and explicit defaults never count as differences."""
    a = _schema()
    b = msgspec.structs.replace(
        a, index=msgspec.structs.replace(a.index, key_separator="|", skip_initial_scan=False)
    )
    assert reported_differences(a, b) == []
    c = msgspec.structs.replace(a, fields=a.fields[:2])
    assert reported_differences(a, c) == ["field 'v': missing"]
    assert reported_differences(c, a) == ["field 'v': not expected"]


names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=8)
text_attrs = st.builds(
    TextAttrs,
    weight=st.sampled_from([1.0, 0.5, 2.0, 3.25]),
    no_stem=st.booleans(),
    phonetic_matcher=st.sampled_from([None, "dm:en", "dm:fr"]),
    sortable=st.booleans(),
    index_missing=st.booleans(),
)
tag_attrs = st.builds(
    TagAttrs,
    separator=st.sampled_from([None, ",", "|", ";"]),
    case_sensitive=st.booleans(),
    sortable=st.booleans(),
)
vector_attrs = st.one_of(
    st.builds(
        VectorAttrs,
        dims=st.integers(1, 4096),
        algorithm=st.just("hnsw"),
        datatype=st.sampled_from(["float32", "float16", "bfloat16", "float64"]),
        distance_metric=st.sampled_from(["cosine", "l2", "ip"]),
        m=st.none() | st.integers(2, 64),
        ef_runtime=st.none() | st.integers(1, 500),
    ),
    st.builds(
        VectorAttrs,
        dims=st.integers(1, 4096),
        algorithm=st.just("flat"),
        block_size=st.none() | st.integers(1, 4096),
    ),
)
fields = st.lists(
    st.one_of(
        st.builds(TextField, name=names, path=st.none() | names, attrs=text_attrs),
        st.builds(TagField, name=names, attrs=tag_attrs),
        st.builds(VectorField, name=names, attrs=vector_attrs),
    ),
    max_size=6,
    unique_by=lambda f: f.name,
)
schemas = st.builds(
    IndexSchema,
    index=st.builds(
        IndexSettings,
        name=names,
        prefix=st.one_of(names, st.lists(names, min_size=2, max_size=3)),
        key_separator=st.sampled_from([":", "|", "-"]),
        storage_type=st.sampled_from(["hash", "json"]),
        stopwords=st.none() | st.lists(names, max_size=3),
        score=st.none() | st.sampled_from([0.5, 0.25]),
    ),
    fields=fields,
)


@given(schemas)
def test_yaml_round_trip(schema: IndexSchema) -> None:
    """dump_schema → load_schema returns an equal schema, and reported_differences is empty."""
    loaded = load_schema(dump_schema(schema))
    assert loaded == schema
    assert reported_differences(schema, loaded) == []
