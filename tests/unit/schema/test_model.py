"""The schema model: RedisVL YAML loads, dumps stay small, bad input is a UsageError."""

from __future__ import annotations

import pytest

from ftctl.errors import UsageError
from ftctl.schema import (
    IndexSchema,
    IndexSettings,
    TagField,
    TextField,
    VectorField,
    dump_schema,
    load_schema,
)

REDISVL_YAML = b"""
version: '0.1.0'
index:
  name: myindex
  prefix: "doc:"
  storage_type: JSON
fields:
  - name: title
    type: text
  - name: category
    type: TAG
    path: $.cat
    attrs: {separator: "|"}
  - name: embedding
    type: vector
    attrs:
      dims: 384
      algorithm: HNSW
      datatype: FLOAT32
      distance_metric: COSINE
"""


def test_redisvl_schema_loads_and_normalizes_case() -> None:
    """A RedisVL schema file loads; upper-case enum values become lower case."""
    schema = load_schema(REDISVL_YAML)
    assert schema.name == "myindex"
    assert schema.storage_type == "json"
    assert schema.prefixes == ["doc:"]
    assert isinstance(schema.field("title"), TextField)
    tag = schema.field("category")
    assert isinstance(tag, TagField) and tag.attrs.separator == "|"
    (vector,) = schema.vector_fields()
    assert vector.attrs.algorithm == "hnsw"
    assert vector.attrs.datatype == "float32"
    assert vector.attrs.distance_metric == "cosine"
    assert schema.field("missing") is None
    assert schema.unreported == []


def test_dump_round_trips_and_omits_defaults() -> None:
    """dump → load gives the same schema, and defaults are not written."""
    schema = load_schema(REDISVL_YAML)
    text = dump_schema(schema)
    assert load_schema(text) == schema
    assert b"key_separator" not in text
    assert b"weight" not in text
    assert b"version" not in text


def test_field_paths_follow_storage() -> None:
    """A JSON field without path lives at $.<name>; a hash field at its own name."""
    schema = load_schema(REDISVL_YAML)
    title = schema.field("title")
    assert title is not None
    assert schema.field_path(title) == "$.title"
    hash_schema = IndexSchema(
        index=IndexSettings(name="h", prefix=["a:", "b:"]),
        fields=[TextField(name="t", path="title")],
    )
    assert hash_schema.prefixes == ["a:", "b:"]
    assert hash_schema.field_path(hash_schema.fields[0]) == "title"


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        (b"index: [", "not valid YAML"),
        (b"index: {name: x, sortabel: true}", "sortabel"),
        (b"index: {name: x}\nfields: [{name: a, type: blob}]", "not a valid index schema"),
        (b"index: {name: x}\nfields: [{name: a, type: text}, {name: a, type: tag}]", "twice"),
        (
            b"index: {name: x}\nfields: [{name: v, type: vector, attrs: {dims: 4, m: 8}}]",
            "'m' does not apply to algorithm 'flat'",
        ),
        (b"index: {name: x}\nfields: [{name: v, type: vector, attrs: {dims: 0}}]", "dims"),
    ],
)
def test_bad_schema_is_usage_error(data: bytes, needle: str) -> None:
    """Bad YAML or a bad shape raises UsageError with the problem in the message."""
    with pytest.raises(UsageError) as info:
        load_schema(data)
    assert needle in info.value.message


def test_missing_file_names_the_file(tmp_path: object) -> None:
    """A schema path that cannot be read is a UsageError naming the file."""
    with pytest.raises(UsageError, match=r"nope\.yaml"):
        load_schema(f"{tmp_path}/nope.yaml")


def test_vector_field_requires_dims() -> None:
    """A vector field without dims does not load."""
    with pytest.raises(UsageError, match="dims"):
        load_schema(b"index: {name: x}\nfields: [{name: v, type: vector, attrs: {}}]")
    assert VectorField.__struct_config__.tag == "vector"
