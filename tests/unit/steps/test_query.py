"""The query encoder's sans-IO core: formats from FT.INFO, encoding per datatype, the cache
on a fake clock, and the KNN search that retries once after the blob-size error."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ftctl.errors import RedisCommandError, UsageError
from ftctl.plan.codecs import CodecError, decode, dequantize, encode
from ftctl.plan.quantization import QuantizationParams
from ftctl.schema.ftinfo import parse_ft_info
from ftctl.steps.effects import ReplyError
from ftctl.steps.query import (
    FormatCache,
    IndexFormat,
    encode_document_vector,
    encode_vector,
    index_format,
    is_blob_size_error,
    knn_command,
    search,
)
from ftctl.testing import ScriptedRedis, commands_matching

DIMS = 4
BLOB_ERROR = ReplyError(
    "Error parsing vector similarity query: query vector blob size (16) does not match "
    "index's expected size (8)."
)
INT8 = QuantizationParams(scheme="symmetric", scale=0.01)
UINT8 = QuantizationParams(scheme="affine", scale=0.01, zero_point=128.0)


def ft_info(
    index: str = "docs__a",
    datatype: str = "FLOAT32",
    *,
    identifier: str = "emb",
    key_type: str = "HASH",
) -> dict[bytes, Any]:
    """A RESP3 FT.INFO reply of an index with a TEXT field and one vector field ``emb``
    read from ``identifier`` (a temporary field during an online datatype change)."""
    return {
        b"index_name": index.encode(),
        b"index_definition": {b"key_type": key_type.encode(), b"prefixes": [b"doc:"]},
        b"attributes": [
            {b"identifier": b"title", b"attribute": b"title", b"type": b"TEXT", b"flags": []},
            {
                b"identifier": identifier.encode(),
                b"attribute": b"emb",
                b"type": b"VECTOR",
                b"algorithm": b"FLAT",
                b"data_type": datatype.encode(),
                b"dim": DIMS,
                b"distance_metric": b"L2",
                b"flags": [],
            },
        ],
        b"num_docs": 3,
    }


def fmt(datatype: str = "FLOAT32", **kwargs: Any) -> IndexFormat:
    info = ft_info(datatype=datatype, **kwargs)
    return index_format("docs", parse_ft_info(info))


def search_reply(*hits: tuple[bytes, bytes]) -> dict[bytes, Any]:
    """A RESP3 FT.SEARCH reply returning only the distance of each hit."""
    return {
        b"total_results": len(hits),
        b"results": [
            {b"id": key, b"extra_attributes": {b"vector_distance": distance}, b"values": []}
            for key, distance in hits
        ],
        b"attributes": [],
        b"format": b"STRING",
        b"warning": [],
    }


VECTOR = [0.5, -0.25, 1.0, 0.125]


# --- recognising the error ---------------------------------------------------------------


def test_the_blob_size_error_is_recognised_in_every_form() -> None:
    """The server's refusal of a query blob's size is recognised as a reply error, an
    exception (what redis-py raises) or its text; other errors are not."""
    assert is_blob_size_error(BLOB_ERROR)
    assert is_blob_size_error(Exception(BLOB_ERROR.message))
    assert is_blob_size_error(
        "query vector blob size (8) does not match index's expected size (16)"
    )
    assert not is_blob_size_error(ReplyError("Unknown index name"))
    assert not is_blob_size_error("Syntax error at offset 3 near KNN")


# --- the format of the index behind a name -------------------------------------------------


def test_the_format_names_the_index_behind_the_name_and_where_it_reads_vectors() -> None:
    """An alias resolves to its index; a shadow index that reads the vector from a temporary
    field keeps the attribute name queries use, with the temporary field as its path."""
    shadow = index_format(
        "docs", parse_ft_info(ft_info("docs__b", "FLOAT16", identifier="emb__ftctl_t"))
    )
    assert (shadow.name, shadow.index, shadow.storage_type) == ("docs", "docs__b", "hash")
    assert list(shadow.vectors) == ["emb"]
    field = shadow.vector("emb")
    assert (field.path, field.datatype, field.dims, field.size) == ("emb__ftctl_t", "float16", 4, 8)
    assert shadow.vector("emb__ftctl_t") is field


def test_an_unknown_vector_field_is_a_usage_error_naming_the_known_ones() -> None:
    """A field the index does not have as a vector (unknown, or not a vector) is refused
    with the index's vector fields in the hint."""
    with pytest.raises(UsageError) as caught:
        fmt().vector("title")
    assert "docs__a" in caught.value.message and caught.value.hint == "its vector fields: emb"


# --- encoding per datatype -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("datatype", "wire"),
    [("FLOAT64", "<f8"), ("FLOAT32", "<f4"), ("FLOAT16", "<f2")],
)
def test_float_datatypes_encode_little_endian(datatype: str, wire: str) -> None:
    """A float query vector becomes the index datatype's little-endian bytes, DIM of them."""
    blob = encode_vector(fmt(datatype), "emb", VECTOR, {})
    assert blob == np.asarray(VECTOR, dtype=wire).tobytes()


def test_bfloat16_is_the_top_half_of_float32() -> None:
    """bfloat16 blobs hold the upper 16 bits of each float32 (exact for these values)."""
    blob = encode_vector(fmt("BFLOAT16"), "emb", np.asarray(VECTOR, dtype=np.float32), {})
    halves = (np.asarray(VECTOR, dtype="<f4").view("<u4") >> 16).astype("<u2")
    assert blob == halves.tobytes()


@given(
    st.lists(
        st.floats(min_value=-1e4, max_value=1e4, allow_nan=False), min_size=DIMS, max_size=DIMS
    ),
    st.sampled_from(["FLOAT64", "FLOAT32", "FLOAT16", "BFLOAT16"]),
)
def test_any_float_vector_encodes_as_the_migration_codec_does(
    values: list[float], datatype: str
) -> None:
    """For every float datatype the query blob is exactly what the migration's codec writes
    for the same values (documents and queries agree byte for byte)."""
    blob = encode_vector(fmt(datatype), "emb", values, {})
    assert blob == encode(np.asarray([values]), datatype.lower())


def test_int8_and_uint8_need_the_plans_quantization_parameters() -> None:
    """An int8/uint8 field is encoded with the parameters given for it (the plan's), and
    refused with a hint naming where they come from when none were given."""
    for datatype, params in (("INT8", INT8), ("UINT8", UINT8)):
        with pytest.raises(UsageError) as caught:
            encode_vector(fmt(datatype), "emb", VECTOR, {})
        assert "quantization_params(plan)" in caught.value.hint
        blob = encode_vector(fmt(datatype), "emb", VECTOR, {"emb": params})
        assert blob == encode(np.asarray([VECTOR]), datatype.lower(), params)
        back = dequantize(decode(blob, datatype, DIMS), datatype, params)[0]
        assert np.allclose(back, VECTOR, atol=params.scale / 2)


def test_float_fields_ignore_quantization_parameters() -> None:
    """Parameters given for a field that is (again, after a rollback) a float are unused."""
    assert (
        encode_vector(fmt("FLOAT32"), "emb", VECTOR, {"emb": INT8})
        == np.asarray(VECTOR, dtype="<f4").tobytes()
    )


def test_a_vector_of_the_wrong_shape_or_kind_is_refused() -> None:
    """A vector must be DIM numbers (one row of a 2-d array is accepted); anything else is a
    UsageError; a value float16 cannot hold is the codec's refusal."""
    assert encode_vector(fmt(), "emb", np.asarray([VECTOR]), {}) == encode_vector(
        fmt(), "emb", VECTOR, {}
    )
    for bad in ([1.0, 2.0], [VECTOR, VECTOR], ["a", "b", "c", "d"]):
        with pytest.raises(UsageError):
            encode_vector(fmt(), "emb", bad, {})
    with pytest.raises(CodecError):
        encode_vector(fmt("FLOAT16"), "emb", [1e6, 0.0, 0.0, 0.0], {})


def test_document_vectors_are_the_query_bytes_for_hash_and_refused_for_json() -> None:
    """A HASH document holds the same bytes a query sends; a JSON index is refused: its
    documents hold arrays of numbers, which no datatype change rewrites."""
    assert encode_document_vector(fmt("FLOAT16"), "emb", VECTOR, {}) == encode_vector(
        fmt("FLOAT16"), "emb", VECTOR, {}
    )
    json_format = index_format("docs", parse_ft_info(ft_info(identifier="$.emb", key_type="JSON")))
    with pytest.raises(UsageError) as caught:
        encode_document_vector(json_format, "emb", VECTOR, {})
    assert "arrays of numbers" in caught.value.message


# --- the cache on a fake clock -------------------------------------------------------------


def test_the_cache_reads_once_then_again_after_max_age() -> None:
    """The format is read on first use, reused while younger than max_age, read again once
    it is that old; reload reads whatever the age and invalidate forgets it."""
    cache = FormatCache("docs", max_age=10.0)
    scripted = ScriptedRedis(
        [
            ("FT.INFO docs", ft_info("docs__a")),
            ("FT.INFO docs", ft_info("docs__b", "FLOAT16")),
            ("FT.INFO docs", ft_info("docs__b", "FLOAT16")),
            ("FT.INFO docs", ft_info("docs__c", "BFLOAT16")),
        ]
    )
    assert cache.cached(0.0) is None
    assert scripted.run(cache.current(100.0)).index == "docs__a"
    assert scripted.run(cache.current(109.9)).index == "docs__a"  # no command sent
    assert len(scripted.sent) == 1
    assert scripted.run(cache.current(110.0)).index == "docs__b"
    assert scripted.run(cache.reload(110.5)).vector("emb").datatype == "float16"
    cache.invalidate()
    assert cache.cached(110.6) is None and cache.last is None
    assert scripted.run(cache.current(110.6)).index == "docs__c"
    scripted.assert_done()


def test_max_age_zero_reads_every_time_and_infinity_only_when_told() -> None:
    """max_age=0 reads FT.INFO on every use; math.inf keeps the first read until reload."""
    always = FormatCache("docs", max_age=0.0)
    scripted = ScriptedRedis([("FT.INFO docs", ft_info())] * 2)
    scripted.run(always.current(1.0))
    scripted.run(always.current(1.0))
    scripted.assert_done()
    never = FormatCache("docs", max_age=math.inf)
    scripted = ScriptedRedis([("FT.INFO docs", ft_info())])
    scripted.run(never.current(0.0))
    assert never.cached(1e12) is not None
    scripted.assert_done()


def test_a_read_that_started_earlier_does_not_replace_a_later_one() -> None:
    """Two callers refreshing at once: the format read at the later time is the one kept."""
    cache = FormatCache("docs", max_age=60.0)
    ScriptedRedis([("FT.INFO docs", ft_info("docs__b"))]).run(cache.reload(20.0))
    ScriptedRedis([("FT.INFO docs", ft_info("docs__a"))]).run(cache.reload(10.0))
    assert cache.last is not None and cache.last.index == "docs__b"


def test_a_negative_or_nan_max_age_is_refused() -> None:
    """max_age is a number of seconds >= 0."""
    for bad in (-1.0, math.nan):
        with pytest.raises(UsageError):
            FormatCache("docs", max_age=bad)


def test_an_unknown_name_is_a_usage_error() -> None:
    """A name that resolves to no index raises UsageError (as ``ftctl index info``)."""
    with pytest.raises(UsageError):
        ScriptedRedis([("FT.INFO nope", ReplyError("Unknown index name"))]).run(
            FormatCache("nope", max_age=1.0).current(0.0)
        )


# --- the KNN command and its reply ---------------------------------------------------------


def test_the_knn_command_binds_the_vector_and_sorts_by_distance() -> None:
    """The query runs KNN on the filter through the name, binds the vector as $vector
    next to the caller's params, returns the distance first, limits to k."""
    command = knn_command(
        "docs",
        fmt().vector("emb"),
        b"BLOB",
        k=3,
        filter="@title:$word",
        return_fields=["title"],
        params={"word": "hello"},
    )
    assert command == (
        "FT.SEARCH",
        "docs",
        "(@title:$word)=>[KNN 3 @emb $vector AS vector_distance]",
        "PARAMS",
        4,
        "vector",
        b"BLOB",
        "word",
        "hello",
        "SORTBY",
        "vector_distance",
        "RETURN",
        2,
        "vector_distance",
        "title",
        "LIMIT",
        0,
        3,
        "DIALECT",
        2,
    )


def test_the_knn_command_refuses_k_below_one_and_a_clashing_param() -> None:
    """k must be positive; ``$vector`` is the query vector's parameter name."""
    with pytest.raises(UsageError):
        knn_command("docs", fmt().vector("emb"), b"", k=0)
    with pytest.raises(UsageError):
        knn_command("docs", fmt().vector("emb"), b"", k=1, params={"vector": b""})


def test_resp2_and_resp3_replies_give_the_same_hits() -> None:
    """Hits come nearest first with their distance and the returned fields, from RESP3
    maps and RESP2 flat lists alike."""
    resp3 = search_reply((b"doc:2", b"0.5"), (b"doc:1", b"1.5"))
    resp2 = [2, b"doc:2", [b"vector_distance", b"0.5"], b"doc:1", [b"vector_distance", b"1.5"]]
    results = []
    for reply in (resp3, resp2):
        scripted = ScriptedRedis([("FT.INFO docs", ft_info()), ("FT.SEARCH docs *", reply)])
        results.append(scripted.run(search(FormatCache("docs", max_age=5), 0.0, "emb", VECTOR, {})))
    for result in results:
        assert result.total == 2
        assert [(h.id, h.distance, h.fields) for h in result.hits] == [
            ("doc:2", 0.5, {}),
            ("doc:1", 1.5, {}),
        ]
        assert (result.index, result.datatype, result.retried) == ("docs__a", "float32", False)


# --- search through a cut-over -------------------------------------------------------------


def test_a_blob_size_error_reads_the_format_again_and_retries_once() -> None:
    """The cached format is fresh but stale in fact (the alias moved): the server refuses
    the float32 blob, the format is read again, the second attempt sends float16 and its
    result is returned, marked as retried."""
    cache = FormatCache("docs", max_age=3600.0)
    ScriptedRedis([("FT.INFO docs", ft_info("docs__a"))]).run(cache.current(0.0))
    scripted = ScriptedRedis(
        [
            ("FT.SEARCH docs *", BLOB_ERROR),
            ("FT.INFO docs", ft_info("docs__b", "FLOAT16", identifier="emb__ftctl_t")),
            ("FT.SEARCH docs *", search_reply((b"doc:7", b"0"))),
        ]
    )
    result = scripted.run(search(cache, 1.0, "emb", VECTOR, {}))
    scripted.assert_done()
    first, second = commands_matching(scripted.sent, "FT.SEARCH *")
    assert first[6] == np.asarray(VECTOR, dtype="<f4").tobytes()
    assert second[6] == np.asarray(VECTOR, dtype="<f2").tobytes()
    assert (result.index, result.datatype, result.retried) == ("docs__b", "float16", True)
    assert [h.id for h in result.hits] == ["doc:7"]
    assert cache.last is not None and cache.last.index == "docs__b"


def test_a_second_refusal_raises_without_a_third_attempt() -> None:
    """When the blob is refused again after the format was read anew, the search raises
    RedisCommandError with the server's message; it does not loop."""
    scripted = ScriptedRedis(
        [
            ("FT.INFO docs", ft_info()),
            ("FT.SEARCH docs *", BLOB_ERROR),
            ("FT.INFO docs", ft_info()),
            ("FT.SEARCH docs *", BLOB_ERROR),
        ]
    )
    with pytest.raises(RedisCommandError) as caught:
        scripted.run(search(FormatCache("docs", max_age=5), 0.0, "emb", VECTOR, {}))
    scripted.assert_done()
    assert "blob size" in caught.value.reply and "even after" in caught.value.hint


def test_other_errors_raise_at_once_without_reading_the_format() -> None:
    """An error reply that is not the blob-size refusal is raised as it is, no retry."""
    scripted = ScriptedRedis(
        [("FT.INFO docs", ft_info()), ("FT.SEARCH docs *", ReplyError("Syntax error"))]
    )
    with pytest.raises(RedisCommandError, match="Syntax error"):
        scripted.run(search(FormatCache("docs", max_age=5), 0.0, "emb", VECTOR, {}))
    scripted.assert_done()
