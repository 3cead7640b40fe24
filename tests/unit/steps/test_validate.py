"""validate from scripted replies: each check is an event, any failure fails the run."""

from __future__ import annotations

import json

import msgspec
import numpy as np
from helpers import ft_info_reply

from ftctl.journal.events import CheckFailed, CheckPassed
from ftctl.journal.segments import SegmentPayload
from ftctl.plan.codecs import encode
from ftctl.schema.ftinfo import parse_ft_info
from ftctl.schema.model import VectorField, from_builtins
from ftctl.steps.effects import ReplyError
from ftctl.steps.spec import DocFieldRename, RunSpec
from ftctl.steps.validate import _query_vector, document_checks, validate
from ftctl.testing import ScriptedRedis


def _spec() -> RunSpec:
    schema = parse_ft_info(ft_info_reply()).schema
    return RunSpec(
        source_index="docs",
        target_index="docs",
        storage_type="hash",
        source_schema=schema,
        target_schema=schema,
    )


def _validate(scripted: ScriptedRedis, expected_docs: int = 5) -> bool:
    spec = _spec()
    passed: bool = scripted.run(
        validate(
            spec,
            schema=spec.target_schema,
            expected_docs=expected_docs,
            source_failures=0,
            key_segments=[],
            backup_segments=[],
            conflicts=0,
        )
    )
    return passed


def test_missing_target_fails_schema_match() -> None:
    """A target index that does not exist fails validation with schema_match, nothing else."""
    scripted = ScriptedRedis([("FT.INFO docs", ReplyError("Unknown index name"))])
    assert not _validate(scripted)
    (failed,) = scripted.recorded
    assert isinstance(failed, CheckFailed) and failed.check == "schema_match"


def test_doc_count_counts_failures_and_must_match() -> None:
    """doc_count compares num_docs + hash_indexing_failures with the enumeration; a new
    indexing failure fails indexing_failures too."""
    scripted = ScriptedRedis(
        [
            ("FT.INFO docs", ft_info_reply(num_docs=4, failures=1)),
            ("FT.SEARCH docs * NOCONTENT *", {b"total_results": 0, b"results": []}),
        ]
    )
    assert not _validate(scripted, expected_docs=5)
    checks = {e.check: e for e in scripted.recorded}
    assert isinstance(checks["doc_count"], CheckPassed)
    assert isinstance(checks["indexing_failures"], CheckFailed)
    assert isinstance(checks["schema_match"], CheckPassed)


def test_query_vector_skips_vectors_the_index_cannot_hold() -> None:
    """KNN self-checks use only stored vectors of the field's size: a wrong-size hash blob or
    JSON list (an indexing failure) is not a query, a right one is (JSON re-encoded)."""
    raw = {
        "index": {"name": "docs", "prefix": "doc:", "storage_type": "hash"},
        "fields": [
            {"name": "emb", "type": "vector",
             "attrs": {"dims": 4, "algorithm": "flat", "datatype": "float16"}},
        ],
    }  # fmt: skip
    hash_schema = from_builtins(raw)
    json_schema = from_builtins({**raw, "index": {**raw["index"], "storage_type": "json"}})
    (f,) = hash_schema.vector_fields()
    assert isinstance(f, VectorField)
    good = np.ones(4, dtype=np.float16).tobytes()
    assert _query_vector(hash_schema, f, good) == good
    assert _query_vector(hash_schema, f, b"\x01\x02\x03") is None
    assert _query_vector(hash_schema, f, None) is None
    assert _query_vector(json_schema, f, json.dumps([[1, 2, 3, 4]]).encode()) == encode(
        [[1, 2, 3, 4]], "float16"
    )
    assert _query_vector(json_schema, f, json.dumps([[1, 2, 3]]).encode()) is None


def test_document_checks_report_keys_checked_only_when_asked() -> None:
    """With ``progress`` (validation on its own) each key segment checked advances the
    step's count; inside ``wait`` (no ``progress``) the index build is what is reported."""
    segments = [SegmentPayload(keys=[b"doc:0", b"doc:1"]), SegmentPayload(keys=[b"doc:2"])]
    for progress in (True, False):
        scripted = ScriptedRedis([("EXISTS doc:0 doc:1", 2), ("EXISTS doc:2", 0)])
        scripted.segments.extend(segments)
        checks = scripted.run(document_checks(_spec(), [0, 1], [], progress=progress))
        assert checks == [("keys_exist", 1, "1 enumerated keys missing under their final name")]
        advances = [p.advance for p in scripted.progressed]
        assert advances == ([2, 1] if progress else [])


def test_old_json_paths_are_found_only_where_they_answer_a_type() -> None:
    """After a JSON rename, a document counts as written through its old path only when
    JSON.TYPE of the old path answers a type; RESP3's ``[[]]`` (no match) once counted every
    renamed document, failing every validation run with a RESP3 client."""
    json_spec = msgspec.structs.replace(
        _spec(), storage_type="json", field_renames=[DocFieldRename(old="$.title", new="$.head")]
    )
    scripted = ScriptedRedis(
        [
            ("EXISTS doc:0 doc:1", 2),
            ("JSON.TYPE doc:0 $.title", [[]]),
            ("JSON.TYPE doc:1 $.title", [[b"string"]]),
        ]
    )
    scripted.segments.append(SegmentPayload(keys=[b"doc:0", b"doc:1"]))

    checks = scripted.run(document_checks(json_spec, [0], []))

    assert [(name, count) for name, count, _ in checks] == [
        ("keys_exist", 0),
        ("old_names_unused", 1),
    ]
    assert "e.g. doc:1" in checks[1][2]
