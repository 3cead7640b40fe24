"""Schema round trips on the real server: FT.CREATE → FT.INFO → parse → render → twin."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
import redis

from ftctl.schema import (
    IndexSchema,
    TagField,
    TextField,
    create_argv,
    load_schema,
    parse_ft_info,
    reported_differences,
)
from ftctl.schema.ftinfo import _pairs

CORPUS = sorted((Path(__file__).parents[2] / "fixtures" / "schemas" / "roundtrip").glob("*.yaml"))
DEFINITION_KEYS = ("index_options", "index_definition", "attributes", "stopwords_list")


@pytest.fixture
def client(redis_url: str, protocol: int) -> Iterator[redis.Redis]:
    """A raw-bytes client speaking ``protocol`` on a flushed server."""
    c = redis.Redis.from_url(redis_url, protocol=protocol)
    c.flushall()
    yield c
    c.flushall()
    c.close()


def _definition(reply: object) -> dict[str, object]:
    """The parts of an FT.INFO reply that describe the schema (stopwords as a sorted list)."""
    info = _pairs(reply)
    out = {k: info.get(k) for k in DEFINITION_KEYS}
    if isinstance(out["stopwords_list"], list):
        out["stopwords_list"] = sorted(out["stopwords_list"])
    return out


def _twin(client: redis.Redis, schema: IndexSchema, twin: str) -> tuple[object, object]:
    """Create ``schema`` then a twin from its parsed FT.INFO; return both raw replies."""
    client.execute_command(*create_argv(schema))
    first = client.execute_command("FT.INFO", schema.name)
    live = parse_ft_info(first).schema
    client.execute_command(*create_argv(live, name=twin))
    second = client.execute_command("FT.INFO", twin)
    return first, second


def test_corpus_is_large_enough() -> None:
    """The round-trip corpus has at least 25 differently shaped indexes, hash and JSON."""
    schemas = [load_schema(p) for p in CORPUS]
    assert len(schemas) >= 25
    assert {s.storage_type for s in schemas} == {"hash", "json"}
    kinds = {type(f).__name__ for s in schemas for f in s.fields}
    assert kinds == {
        "TextField",
        "TagField",
        "NumericField",
        "GeoField",
        "GeoShapeField",
        "VectorField",
    }


@pytest.mark.parametrize("path", CORPUS, ids=[p.stem for p in CORPUS])
def test_corpus_round_trip(client: redis.Redis, path: Path) -> None:
    """Schema → FT.CREATE → FT.INFO → parse → render → twin: both FT.INFO describe the same index."""
    schema = load_schema(path)
    first, second = _twin(client, schema, f"{schema.name}-twin")
    assert _definition(first) == _definition(second)
    live = parse_ft_info(first).schema
    assert reported_differences(schema, live) == []
    twin = parse_ft_info(second).schema
    assert twin.index.name == f"{schema.name}-twin"
    assert (
        msgspec.structs.replace(twin, index=msgspec.structs.replace(twin.index, name=schema.name))
        == live
    )
    # What the server does not report comes back marked, never as a silent default.
    assert "index.key_separator" in live.unreported
    for f in schema.fields:
        if isinstance(f, TextField) and f.attrs.phonetic_matcher is not None:
            assert f"fields.{f.name}.attrs.phonetic_matcher" in live.unreported


RAW_JSON = [
    "FT.CREATE", "raw", "ON", "JSON", "PREFIX", "2", "p1:", "p2:",
    "FILTER", "@n>0", "LANGUAGE", "spanish", "LANGUAGE_FIELD", "$.lang",
    "SCORE", "0.5", "PAYLOAD_FIELD", "$.pl",
    "SCHEMA",
    "$.title", "AS", "t", "TEXT", "PHONETIC", "dm:es",
    "$.tags[*]", "AS", "tags", "TAG",
    "$.n", "AS", "n", "NUMERIC",
    "$.area", "AS", "area", "GEOSHAPE", "FLAT",
    "$.v", "AS", "v", "VECTOR", "HNSW", "8", "TYPE", "FLOAT32", "DIM", "4",
    "DISTANCE_METRIC", "COSINE", "EF_RUNTIME", "30",
]  # fmt: skip
RAW_HASH = [
    "FT.CREATE", "rawh", "ON", "HASH", "PREFIX", "3", "h1:", "h2:", "h3:",
    "FILTER", "@n>0", "LANGUAGE", "german", "LANGUAGE_FIELD", "lang",
    "SCORE", "0.25", "SCORE_FIELD", "sc", "PAYLOAD_FIELD", "pl", "SKIPINITIALSCAN",
    "SCHEMA", "title", "AS", "t", "TEXT", "n", "NUMERIC", "shape", "AS", "s", "GEOSHAPE",
    "vec", "AS", "v", "VECTOR", "FLAT", "8", "TYPE", "FLOAT32", "DIM", "4",
    "DISTANCE_METRIC", "L2", "BLOCK_SIZE", "64",
]  # fmt: skip


def test_raw_json_index_survives_unchanged(client: redis.Redis) -> None:
    """A raw FT.CREATE (FILTER, LANGUAGE[_FIELD], SCORE, PAYLOAD_FIELD, prefixes, AS, GEOSHAPE,
    JSON TAG without SEPARATOR) round-trips unchanged; unreported options are marked."""
    client.execute_command(*RAW_JSON)
    first = client.execute_command("FT.INFO", "raw")
    schema = parse_ft_info(first).schema
    idx = schema.index
    assert idx.storage_type == "json"
    assert schema.prefixes == ["p1:", "p2:"]
    assert (idx.filter, idx.language, idx.language_field) == ("@n>0", "spanish", "$.lang")
    assert idx.score is not None and math.isclose(idx.score, 0.5)
    assert idx.payload_field == "$.pl"
    tags = schema.field("tags")
    assert isinstance(tags, TagField)
    assert tags.path == "$.tags[*]" and tags.attrs.separator is None
    title = schema.field("t")
    assert title is not None and title.path == "$.title"
    assert "fields.t.attrs.phonetic_matcher" in schema.unreported
    assert "fields.v.attrs.ef_runtime" in schema.unreported
    client.execute_command(*create_argv(schema, name="raw-twin"))
    second = client.execute_command("FT.INFO", "raw-twin")
    assert _definition(first) == _definition(second)
    assert reported_differences(schema, parse_ft_info(second).schema) == []


def test_raw_hash_index_survives_unchanged(client: redis.Redis) -> None:
    """A raw hash FT.CREATE with AS names, SCORE_FIELD and three prefixes round-trips unchanged."""
    client.execute_command(*RAW_HASH)
    first = client.execute_command("FT.INFO", "rawh")
    schema = parse_ft_info(first).schema
    assert schema.prefixes == ["h1:", "h2:", "h3:"]
    assert [(f.name, f.path) for f in schema.fields] == [
        ("t", "title"),
        ("n", None),
        ("s", "shape"),
        ("v", "vec"),
    ]
    assert schema.index.score_field == "sc"
    assert "index.skip_initial_scan" in schema.unreported
    assert "fields.v.attrs.block_size" in schema.unreported
    client.execute_command(*create_argv(schema, name="rawh-twin"))
    second = client.execute_command("FT.INFO", "rawh-twin")
    assert _definition(first) == _definition(second)


def test_differences_are_reported(client: redis.Redis) -> None:
    """reported_differences names a changed reported option and ignores unreported ones."""
    schema = load_schema(CORPUS[0])
    client.execute_command(*create_argv(schema))
    live = parse_ft_info(client.execute_command("FT.INFO", schema.name)).schema
    changed = msgspec.structs.replace(
        schema,
        index=msgspec.structs.replace(schema.index, key_separator="|", no_hl=True),
        fields=[
            TextField(
                name="title",
                attrs=msgspec.structs.replace(
                    TextField(name="x").attrs, sortable=True, phonetic_matcher="dm:en"
                ),
            )
        ],
    )
    diffs = reported_differences(changed, live)
    assert diffs == [
        "index.no_hl: expected True, found False",
        "field 'title': attrs.sortable expected True, found False",
    ]
