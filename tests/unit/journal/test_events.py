"""Events: stable tags, msgpack round trips, schema evolution."""

from __future__ import annotations

import ast
import re
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest

import ftctl.journal
from ftctl.journal import (
    EVENT_TYPES,
    BatchDone,
    CheckFailed,
    CheckPassed,
    ConflictRecorded,
    Event,
    KeysEnumerated,
    Note,
    RunFinished,
    RunInterrupted,
    RunStarted,
    SegmentRef,
    StepFinished,
    StepSkipped,
    StepStarted,
    decode_event,
    encode_event,
    segment_refs,
)
from ftctl.journal.events import (
    STEP_NAMES,
    BaselineQuery,
    BatchIndexEntry,
    BatchIndexFinished,
    BatchIndexInterrupted,
    BatchIndexStarted,
    BatchRunStarted,
    BatchStarted,
    CutoverApproved,
    CutoverDone,
    EnumerationRestarted,
    KeysGone,
    PaceChanged,
    QueryBaseline,
    QueryCompared,
    RunPaused,
    RunResumed,
    ServerChanged,
    ServerSeen,
    ShadowCreated,
    ShadowReady,
    StepsReopened,
    VectorsRejected,
    step_of,
)

REF = SegmentRef(number=7, size=123, crc32=0xDEADBEEF)
AT = datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)

SAMPLES: list[Event] = [
    RunStarted(
        seq=1,
        at=AT,
        run_id="r1",
        kind="apply",
        index_name="idx",
        plan_yaml="version: 1\nmode: drop_recreate\n",
        plan_sha256="ab" * 32,
        mode="drop_recreate",
        options={"batch_size": 500, "async": False, "ratio": 0.5, "who": "me"},
        redis_url="redis://:***@localhost:6379",
        ftctl_version="0.1.0",
    ),
    StepStarted(seq=2, at=AT, step="enumerate"),
    StepFinished(seq=3, at=AT, step="enumerate", counts={"keys": 10}),
    StepSkipped(seq=4, at=AT, step="quantize", reason="no datatype change"),
    BatchDone(seq=5, at=AT, step="backup", batch=0, keys=10, segment=REF, counts={"bytes": 4}),
    KeysEnumerated(seq=6, at=AT, segment=REF, batch=0, keys=10),
    CheckPassed(seq=7, at=AT, check="doc_count"),
    CheckFailed(seq=8, at=AT, check="knn", detail="2 not found", count=2),
    ConflictRecorded(seq=9, at=AT, step="rename_keys", keys=[b"k:\x00\xff"], reason="exists"),
    Note(seq=10, at=AT, message="aof off", data={"n": 1}),
    RunInterrupted(seq=11, at=AT, step="backup", batch=3),
    RunFinished(seq=12, at=AT, result="failed", error="knn check failed"),
    BatchStarted(
        seq=13,
        at=AT,
        batch_id="batch_1",
        plan_path="/p/batch_plan.yaml",
        backup_dir="/b",
        failure_policy="fail_fast",
        indexes=[
            BatchIndexEntry(name="a", applicable=True, plan_path="/p/a.yaml", plan_sha256="cd"),
            BatchIndexEntry(name="b", applicable=False, skip_reason="field not found"),
        ],
    ),
    BatchIndexStarted(
        seq=14, at=AT, name="a", position=1, total=1, journal="/b/a", plan_sha256="cd"
    ),
    BatchIndexFinished(seq=15, at=AT, name="a", status="failed", result="failed", error="boom"),
    BatchIndexInterrupted(seq=16, at=AT, name="a", error="ctrl+c"),
    ShadowCreated(seq=17, at=AT, step="shadow_create", index="docs__ftctl_1", serving="docs"),
    ShadowReady(seq=18, at=AT, step="shadow_wait", index="docs__ftctl_1", num_docs=3),
    CutoverApproved(seq=19, at=AT),
    CutoverDone(
        seq=20, at=AT, step="cutover", dropped="docs", index="docs__ftctl_1", names=["docs"]
    ),
    VectorsRejected(
        seq=21,
        at=AT,
        step="backup",
        batch=2,
        field="emb",
        kind="unconvertible",
        count=3,
        keys=[b"doc:\x00"],
        detail="1 finite values would overflow",
    ),
    ServerSeen(seq=22, at=AT, run_id="abc"),
    EnumerationRestarted(seq=24, at=AT, reason="NUL keys"),
    KeysGone(seq=25, at=AT, step="quantize", keys=[b"doc:9"]),
    StepsReopened(seq=26, at=AT, steps=["restore_vectors"], reason="--force"),
    ServerChanged(seq=23, at=AT, previous="abc", current="def"),
    RunPaused(seq=27, at=AT, step="expand"),
    RunResumed(seq=28, at=AT, step="expand"),
    PaceChanged(
        seq=29, at=AT, step="contract", change="slowed", batch=10, sleep_ms=20.0, latency_ms=61.5
    ),
    QueryBaseline(
        seq=30,
        at=AT,
        index="docs",
        queries=[
            BaselineQuery(
                name="near 7",
                query="*=>[KNN 3 @v $vec]",
                target_query="*=>[KNN 3 @v $vec]",
                k=3,
                min_overlap=0.9,
                vector_from_key="doc:7",
                vector=b"\x00\x00\x80?",
                datatype="float32",
                ids=[b"doc:7", b"doc:\xff"],
                scores=[0.0, 0.25],
                total=2,
            )
        ],
    ),
    QueryCompared(
        seq=31,
        at=AT,
        name="near 7",
        index="docs__ftctl_1",
        k=3,
        passed=False,
        overlap=0.5,
        hits=1,
        expected=2,
        count_before=2,
        count_after=2,
        min_overlap=0.9,
        missing=[b"doc:\xff"],
        added=[b"doc:8"],
    ),
    BatchRunStarted(
        seq=1,
        at=AT,
        run_id="r2",
        batch_id="batch_1",
        plan_yaml="version: 1\n",
        plan_sha256="ef" * 32,
        mode="drop_recreate",
    ),
]

EXPECTED_TAGS = {
    "RunStarted": "run_started",
    "StepStarted": "step_started",
    "StepFinished": "step_finished",
    "StepSkipped": "step_skipped",
    "BatchDone": "batch_done",
    "KeysEnumerated": "keys_enumerated",
    "CheckPassed": "check_passed",
    "CheckFailed": "check_failed",
    "ConflictRecorded": "conflict_recorded",
    "Note": "note",
    "RunInterrupted": "interrupted",
    "RunFinished": "run_finished",
    "ShadowCreated": "shadow_created",
    "ShadowReady": "shadow_ready",
    "CutoverApproved": "cutover_approved",
    "CutoverDone": "cutover_done",
    "BatchRunStarted": "batch_run_started",
    "VectorsRejected": "vectors_rejected",
    "ServerSeen": "server_seen",
    "EnumerationRestarted": "enumeration_restarted",
    "KeysGone": "keys_gone",
    "StepsReopened": "steps_reopened",
    "ServerChanged": "server_changed",
    "BatchStarted": "batch_started",
    "BatchIndexStarted": "batch_index_started",
    "BatchIndexFinished": "batch_index_finished",
    "BatchIndexInterrupted": "batch_index_interrupted",
    "RunPaused": "run_paused",
    "RunResumed": "run_resumed",
    "PaceChanged": "pace_changed",
    "QueryBaseline": "query_baseline",
    "QueryCompared": "query_compared",
}


def test_tags_are_explicit_stable_and_unique() -> None:
    """Every event class carries an explicit snake_case tag; the known tags never change."""
    tags = {cls.__name__: cls.__struct_config__.tag for cls in EVENT_TYPES}
    for name, tag in tags.items():
        assert isinstance(tag, str) and re.fullmatch(r"[a-z][a-z0-9_]*", tag), name
        assert tag != name, f"{name} relies on the implicit class-name tag"
    assert len(set(tags.values())) == len(tags)
    for name, tag in EXPECTED_TAGS.items():
        assert tags[name] == tag, f"tag of {name} changed: old journals would not load"


def test_samples_cover_every_event_type() -> None:
    """The round-trip samples include one instance of every concrete event class."""
    assert {type(e) for e in SAMPLES} == set(EVENT_TYPES)


@pytest.mark.parametrize("event", SAMPLES, ids=lambda e: type(e).__name__)
def test_event_round_trips_through_msgpack(event: Event) -> None:
    """encode_event/decode_event give back an equal event of the same class, time zone kept."""
    decoded = decode_event(encode_event(event))
    assert decoded == event
    assert type(decoded) is type(event)
    assert decoded.at is not None and decoded.at.tzinfo is not None


def test_tag_is_written_under_type() -> None:
    """The wire form is a msgpack map with the tag under "type" (readable by any msgpack tool)."""
    raw = msgspec.msgpack.decode(encode_event(StepStarted(step="drop")))
    assert raw["type"] == "step_started"
    assert raw["step"] == "drop"


def test_old_record_without_new_fields_decodes_with_defaults() -> None:
    """A record written before a defaulted field existed still decodes (schema evolution)."""
    old = msgspec.msgpack.encode(
        {"type": "batch_done", "seq": 4, "step": "backup", "batch": 1, "keys": 3}
    )
    event = decode_event(old)
    assert isinstance(event, BatchDone)
    assert event.segment is None and event.counts == {} and event.at is None


def test_unknown_tag_is_a_validation_error() -> None:
    """A record of an event type this version does not know is rejected, not misread."""
    with pytest.raises(msgspec.ValidationError):
        decode_event(msgspec.msgpack.encode({"type": "from_the_future", "seq": 1}))


def test_base_event_cannot_be_encoded() -> None:
    """Only members of AnyEvent may be written: the untagged base class is refused."""
    with pytest.raises(TypeError, match="not a journal event"):
        encode_event(Event())


def test_segment_refs_finds_references_by_type() -> None:
    """segment_refs returns the segments an event references and nothing for others."""
    assert segment_refs(SAMPLES[4]) == [REF]
    assert segment_refs(SAMPLES[5]) == [REF]
    assert segment_refs(BatchDone(step="backup", batch=0, keys=0)) == []
    assert segment_refs(SAMPLES[0]) == []


def test_defaults_are_not_shared_between_instances() -> None:
    """A default dict belongs to its event (no shared mutable default)."""
    a = StepFinished(step="drop")
    b = StepFinished(step="create")
    assert a.counts is not b.counts


@pytest.mark.parametrize(
    ("field", "raw"),
    [
        ("step", {"type": "step_started", "seq": 1, "step": "not_a_step"}),
        ("result", {"type": "run_finished", "seq": 1, "result": "great"}),
        ("status", {"type": "batch_index_finished", "seq": 1, "name": "a", "status": "meh"}),
        (
            "kind",
            {
                "type": "run_started",
                "seq": 1,
                "run_id": "r",
                "kind": "fly",
                "index_name": "i",
                "plan_yaml": "",
                "plan_sha256": "",
                "mode": "drop_recreate",
            },
        ),
    ],
)
def test_closed_sets_refuse_unknown_values(field: str, raw: dict[str, object]) -> None:
    """Step names, results, batch statuses and run kinds are Literals: a value outside the
    set is refused when read, instead of flowing into a projection as an unknown string."""
    with pytest.raises(msgspec.ValidationError, match=field):
        decode_event(msgspec.msgpack.encode(raw))


def test_batch_journal_of_the_previous_release_still_decodes() -> None:
    """Batch journals written before BatchRunStarted start with a RunStarted of kind batch."""
    old = msgspec.msgpack.encode(
        {
            "type": "run_started", "seq": 1, "run_id": "r", "kind": "batch",
            "index_name": "batch_20250101_000000_abcd", "plan_yaml": "", "plan_sha256": "",
            "mode": "drop_recreate",
        }
    )  # fmt: skip
    event = decode_event(old)
    assert isinstance(event, RunStarted) and event.kind == "batch"


def test_step_of_names_the_step_of_every_event_that_has_one() -> None:
    """Events with a step field report it; keys_enumerated belongs to enumerate; run-level
    and batch events belong to no step."""
    for event in SAMPLES:
        expected = getattr(event, "step", None) or None
        if isinstance(event, KeysEnumerated | EnumerationRestarted):
            expected = "enumerate"
        assert step_of(event) == expected, type(event).__name__
    assert step_of(RunInterrupted(step="")) is None
    assert "enumerate" in STEP_NAMES


def test_journal_package_depends_only_on_errors() -> None:
    """ftctl.journal imports no redis, steps, drivers or plan (dependencies point one way)."""
    forbidden = ("redis", "ftctl.steps", "ftctl.drivers", "ftctl.plan", "ftctl.schema", "pickle")
    package = Path(ftctl.journal.__file__).parent
    seen: set[str] = set()
    for source in package.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Import):
                seen.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                seen.add(node.module)
    assert "ftctl.errors" in seen
    bad = sorted(m for m in seen if m.startswith(forbidden))
    assert bad == []
