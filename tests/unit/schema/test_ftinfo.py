"""FT.INFO parsing on recorded RESP2 and RESP3 replies (fixtures/replies, no server)."""

from __future__ import annotations

import base64
import json
import math
from pathlib import Path
from typing import Any

import pytest

from ftctl.errors import UsageError
from ftctl.schema import (
    GeoShapeField,
    NumericField,
    TagField,
    TextField,
    VectorField,
    create_argv,
    parse_ft_info,
    reported_differences,
)

REPLIES = Path(__file__).parents[3] / "fixtures" / "replies"


def _decode(value: Any) -> Any:
    """Inverse of fixtures/replies/record.py's encoding (no pickle)."""
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if isinstance(value, dict):
        ((tag, inner),) = value.items()
        if tag == "b":
            return base64.b64decode(inner)
        if tag == "f":
            return float(inner)
        if tag == "s":
            return inner
        if tag == "m":
            return {_decode(k): _decode(v) for k, v in inner}
        raise ValueError(tag)
    return value


def _reply(name: str, protocol: int) -> object:
    return _decode(json.loads((REPLIES / f"ft_info_{name}_resp{protocol}.json").read_text()))


@pytest.mark.parametrize("protocol", [2, 3])
def test_hash_all_options(protocol: int) -> None:
    """Every reported option of the hash fixture is parsed, the same under RESP2 and RESP3."""
    info = parse_ft_info(_reply("hash_all_options", protocol))
    s = info.schema
    idx = s.index
    assert info.index_name == "hash_all_options"
    assert s.prefixes == ["a:", "b:"]
    assert (idx.filter, idx.language, idx.language_field) == ("@n>1", "german", "lang")
    assert idx.score == 0.5 and idx.score_field == "sc" and idx.payload_field == "pl"
    assert idx.max_text_fields and idx.no_offsets and idx.no_hl and idx.no_fields
    assert idx.no_freqs
    assert sorted(idx.stopwords or []) == ["bar", "foo"]
    title = s.field("t")
    assert isinstance(title, TextField) and title.path == "title"
    assert title.attrs.weight == 2.0 and title.attrs.no_stem and title.attrs.withsuffixtrie
    assert title.attrs.sortable and title.attrs.unf
    assert title.attrs.index_missing and title.attrs.index_empty
    body = s.field("body")
    assert isinstance(body, TextField) and body.attrs.no_index and not body.attrs.unf
    tag = s.field("tg")
    assert isinstance(tag, TagField) and tag.attrs.separator == ";" and tag.attrs.case_sensitive
    n = s.field("n")
    assert isinstance(n, NumericField) and n.attrs.sortable and n.attrs.index_missing
    gs = s.field("gs")
    assert isinstance(gs, GeoShapeField) and gs.attrs.coord_system == "flat"
    v = s.field("v")
    assert isinstance(v, VectorField)
    assert (v.attrs.algorithm, v.attrs.m, v.attrs.ef_construction) == ("hnsw", 8, 100)
    assert v.attrs.ef_runtime is None and v.attrs.index_missing
    v2 = s.field("v2")
    assert isinstance(v2, VectorField)
    assert (v2.attrs.datatype, v2.attrs.distance_metric) == ("float16", "l2")
    assert set(s.unreported) == {
        "index.key_separator",
        "index.skip_initial_scan",
        "fields.t.attrs.phonetic_matcher",
        "fields.body.attrs.phonetic_matcher",
        "fields.v.attrs.initial_cap",
        "fields.v.attrs.ef_runtime",
        "fields.v.attrs.epsilon",
        "fields.v2.attrs.initial_cap",
        "fields.v2.attrs.block_size",
    }
    assert info.stats.vector_index_sz_mb > 0
    assert not info.stats.indexing and info.stats.percent_indexed == 1.0
    assert math.isnan(info.stats.records_per_doc_avg)


def test_resp2_and_resp3_agree() -> None:
    """RESP2 and RESP3 replies of the same indexes parse to the same schema and stats."""
    for name in ("hash_all_options", "json_defaults"):
        two, three = parse_ft_info(_reply(name, 2)), parse_ft_info(_reply(name, 3))
        assert two.schema == three.schema
        assert two.stats.num_docs == three.stats.num_docs
        assert two.stats.vector_index_sz_mb == three.stats.vector_index_sz_mb


@pytest.mark.parametrize("protocol", [2, 3])
def test_json_defaults(protocol: int) -> None:
    """JSON: a TAG without SEPARATOR parses as the default (None); explicit ',' is kept."""
    s = parse_ft_info(_reply("json_defaults", protocol)).schema
    assert s.storage_type == "json"
    ab, plain, comma = s.field("ab"), s.field("$.t"), s.field("s")
    assert isinstance(ab, TagField) and ab.path == "$.a.b" and ab.attrs.separator is None
    assert isinstance(plain, TagField) and plain.attrs.separator is None
    assert isinstance(comma, TagField) and comma.attrs.separator == ","
    v = s.field("v")
    assert isinstance(v, VectorField) and v.attrs.datatype == "bfloat16"
    assert v.attrs.distance_metric == "ip" and v.attrs.m == 16
    argv = create_argv(s)
    assert argv[argv.index("$.t") : argv.index("$.t") + 2] == ["$.t", "TAG"]
    assert "SEPARATOR" in argv and argv[argv.index("SEPARATOR") + 1] == ","
    assert argv.count("SEPARATOR") == 1
    assert reported_differences(s, s) == []


@pytest.mark.parametrize("reply", [None, [], [b"index_name"], {b"attributes": []}, 42])
def test_malformed_reply_is_usage_error(reply: object) -> None:
    """A reply that is not an FT.INFO reply raises UsageError, not a crash."""
    with pytest.raises(UsageError, match=r"FT\.INFO"):
        parse_ft_info(reply)


def test_vecsim_search_params_read_a_tiered_hnsw_in_both_protocols() -> None:
    """EF_RUNTIME and EPSILON, which FT.INFO does not report, come out of FT.DEBUG
    VECSIM_INFO: from the tiered index's BACKEND_INDEX, RESP2 strings or RESP3 numbers; a
    FLAT index has neither."""
    from ftctl.schema.ftinfo import vecsim_search_params

    backend = [b"ALGORITHM", b"HNSW", b"M", 16, b"EF_RUNTIME", 20, b"EPSILON", b"0.05"]
    resp2 = [b"ALGORITHM", b"TIERED", b"FRONTEND_INDEX", [b"BLOCK_SIZE", 1024],
             b"BACKEND_INDEX", backend]  # fmt: skip
    assert vecsim_search_params(resp2) == {"ef_runtime": 20.0, "epsilon": 0.05}
    resp3 = {b"ALGORITHM": b"TIERED", b"BACKEND_INDEX": {b"EF_RUNTIME": 10, b"EPSILON": 0.01}}
    assert vecsim_search_params(resp3) == {"ef_runtime": 10.0, "epsilon": 0.01}
    assert vecsim_search_params([b"ALGORITHM", b"FLAT", b"BLOCK_SIZE", 1024]) == {}
    assert vecsim_search_params(b"garbage") == {}


def test_explains_phonetic_sees_the_phonetic_branch_only() -> None:
    """FT.EXPLAIN of a term on a PHONETIC field has a ``<CODE(expanded)`` branch; a plain
    field only the stemming one."""
    from ftctl.schema.ftinfo import explains_phonetic

    phonetic = b"@t:UNION {\n  @t:hello\n  @t:<HL(expanded)\n  @t:+hello(expanded)\n}\n"
    plain = "@t:UNION {\n  @t:hello\n  @t:+hello(expanded)\n}\n"
    assert explains_phonetic(phonetic) and not explains_phonetic(plain)
    assert not explains_phonetic(None)
