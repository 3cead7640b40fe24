"""Document rewrites from scripted replies: what each batch sends and how it journals."""

from __future__ import annotations

import hashlib

import numpy as np
from helpers import ft_info_reply

from ftctl.journal.events import BatchDone, ConflictRecorded, KeysGone
from ftctl.journal.segments import SegmentPayload, pack_field
from ftctl.plan.codecs import convert_many
from ftctl.schema.ftinfo import parse_ft_info
from ftctl.steps import scripts
from ftctl.steps.rewrite import convert_block, journal_batch, quantize_batch, rename_keys_batch
from ftctl.steps.spec import Conversion, PrefixChange, RunSpec
from ftctl.testing import ScriptedRedis

DIMS = 4
F16 = Conversion(backup_field="emb", field="vec", source="float32", target="float16", dims=DIMS)


def _spec() -> RunSpec:
    schema = parse_ft_info(ft_info_reply()).schema
    return RunSpec(
        source_index="docs",
        target_index="docs",
        storage_type="hash",
        source_schema=schema,
        target_schema=schema,
        prefix_change=PrefixChange(old="doc:", new="item:"),
        conversions=[F16],
    )


def _sha1(value: bytes) -> str:
    return hashlib.sha1(value).hexdigest()


def _vectors(count: int) -> list[bytes]:
    rng = np.random.default_rng(3)
    return [rng.standard_normal(DIMS).astype(np.float32).tobytes() for _ in range(count)]


def test_convert_block_skips_absent_and_wrong_size_vectors() -> None:
    """Valid originals get their exact conversion; an absent field or a vector of the wrong
    size (one the source index could not hold) gets None (= leave it alone)."""
    a, b = _vectors(2)
    converted = convert_block([a, None, b"\x00" * 3, b], F16)
    assert converted == [
        *convert_many([a], "float32", "float16", DIMS),
        None,
        None,
        convert_many([b], "float32", "float16", DIMS)[0],
    ]


def test_quantize_batch_writes_from_backup_under_final_names() -> None:
    """quantize converts the backed-up bytes, compare-and-sets them on the renamed keys and
    field (never forced), and journals a conflict with its final key name before the batch.
    Without HSETEX on the server, the batch is one script call."""
    a, b = _vectors(2)
    scripted = ScriptedRedis([("EVAL *", [scripts.WRITTEN, scripts.CONFLICT])])
    scripted.segments.append(
        SegmentPayload(
            keys=[b"doc:1", b"doc:2"],
            fields={"emb": pack_field([a, b], dtype="float32", dims=DIMS)},
        )
    )
    done = scripted.run(quantize_batch(_spec(), 4, 0, watch=False))  # type: ignore[arg-type]
    (command,) = scripted.sent
    wanted = convert_many([a, b], "float32", "float16", DIMS)
    assert command == (
        "EVAL", scripts.CAS_HSET, 2, b"item:1", b"item:2",
        "0", 1, "vec", _sha1(a), wanted[0], _sha1(b), wanted[1],
    )  # fmt: skip
    conflict, batch = scripted.recorded
    assert conflict == ConflictRecorded(step="quantize", keys=[b"item:2"], reason=conflict.reason)
    assert batch == BatchDone(
        step="quantize", batch=4, keys=2, counts={"written": 1, "conflicts": 1}
    )
    assert done == batch


def test_rename_keys_batch_pairs_source_and_destination() -> None:
    """rename_keys sends (old, new) key pairs to the RENAMENX script; "already" and "absent"
    are counted, not conflicts; a key absent under both names is journaled as gone."""
    scripted = ScriptedRedis([("EVAL *", [scripts.ALREADY, scripts.ABSENT])])
    scripted.segments.append(SegmentPayload(keys=[b"doc:1", b"doc:2"]))
    scripted.run(rename_keys_batch(_spec(), 0, 0))  # type: ignore[arg-type]
    (command,) = scripted.sent
    assert command == ("EVAL", scripts.RENAME_KEYS, 4, b"doc:1", b"item:1", b"doc:2", b"item:2")
    gone, batch = scripted.recorded
    assert gone == KeysGone(step="rename_keys", keys=[b"doc:2"])
    assert batch.counts == {"already": 1, "absent": 1}


def test_a_segment_goes_to_redis_in_batch_size_chunks() -> None:
    """A segment holds segment_batches x batch_size keys; its keys go to the server one
    script call per batch_size keys, and one BatchDone records the whole segment."""
    import msgspec

    spec = msgspec.structs.replace(_spec(), batch_size=2)
    assert spec.segment_size == 8
    keys = [f"doc:{i}".encode() for i in range(5)]
    scripted = ScriptedRedis(
        [
            ("EVAL *", [scripts.WRITTEN] * 2),
            ("EVAL *", [scripts.WRITTEN] * 2),
            ("EVAL *", [scripts.WRITTEN]),
        ]
    )
    scripted.segments.append(SegmentPayload(keys=keys))
    scripted.run(rename_keys_batch(spec, 0, 0))  # type: ignore[arg-type]
    assert [command[2] for command in scripted.sent] == [4, 4, 2]
    (batch,) = scripted.recorded
    assert batch.keys == 5 and batch.counts == {"written": 5}


def test_quantize_batch_with_hsetex_watches_reads_and_sets_only_matching_keys() -> None:
    """With HSETEX, the batch WATCHes its keys and reads the field, then writes (keeping the
    field's TTL) only the key that still holds its original; the other is a conflict."""
    a, b = _vectors(2)
    wanted = convert_many([a, b], "float32", "float16", DIMS)
    scripted = ScriptedRedis(
        [
            ("WATCH item:1 item:2", b"OK"),
            ("HGET item:1 vec", a),
            ("HGET item:2 vec", b"someone else"),
            ("MULTI", b"OK"),
            ("HSETEX item:1 KEEPTTL FIELDS 1 vec *", b"QUEUED"),
            ("EXEC", [1]),
        ]
    )
    scripted.segments.append(
        SegmentPayload(
            keys=[b"doc:1", b"doc:2"],
            fields={"emb": pack_field([a, b], dtype="float32", dims=DIMS)},
        )
    )
    done = scripted.run(quantize_batch(_spec(), 0, 0, watch=True))  # type: ignore[arg-type]
    scripted.assert_done()
    assert scripted.sent[4][-1] == wanted[0]
    conflict, done_event = scripted.recorded
    assert conflict.keys == [b"item:2"]
    assert done == done_event and done.counts == {"written": 1, "conflicts": 1}


def test_a_batch_journals_its_compare_and_set_retries_beside_its_statuses() -> None:
    """Retries and script fall-backs (counted by cas.write, since a step cannot log) go into
    the batch's counts, where the run's log and ``journal inspect`` find them."""
    scripted = ScriptedRedis([])
    done = scripted.run(
        journal_batch(
            "quantize",
            3,
            [b"doc:0", b"doc:1"],
            [scripts.WRITTEN, scripts.WRITTEN],
            "unused: no conflict",
            extra={"cas_retries": 2, "cas_fallbacks": 1},
        )
    )
    assert done.counts == {"written": 2, "cas_retries": 2, "cas_fallbacks": 1}
    assert scripted.recorded == [done]
