"""Reports and the inspect timeline are pure projections of journal events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec

from ftctl.journal.events import (
    AnyEvent,
    BatchDone,
    CheckFailed,
    CheckPassed,
    ConflictRecorded,
    KeysEnumerated,
    PaceChanged,
    QueryBaseline,
    QueryCompared,
    RunFinished,
    RunPaused,
    RunResumed,
    RunStarted,
    SegmentRef,
    StepFinished,
    StepStarted,
)
from ftctl.journal.inspect import inspect_rows
from ftctl.journal.report import project_benchmark, project_report
from ftctl.steps.tables import marks_for

APPLY = marks_for("drop_recreate", "apply")
ROLLBACK = marks_for("drop_recreate", "rollback")

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def _stamp(events: list[AnyEvent]) -> list[AnyEvent]:
    import msgspec

    return [
        msgspec.structs.replace(e, seq=i + 1, at=T0 + timedelta(seconds=i))
        for i, e in enumerate(events)
    ]


def _run(kind: str = "apply") -> RunStarted:
    return RunStarted(
        run_id="r1",
        kind=kind,
        index_name="docs",
        plan_yaml="",
        plan_sha256="abc",
        mode="drop_recreate",
    )


def _apply_events(validation_ok: bool = True) -> list[AnyEvent]:
    ref = SegmentRef(number=1, size=100, crc32=7)
    check: AnyEvent = (
        CheckPassed(check="doc_count", detail="ok")
        if validation_ok
        else CheckFailed(check="doc_count", detail="3 != 4", count=1)
    )
    return _stamp(
        [
            _run(),
            StepStarted(step="enumerate"),
            KeysEnumerated(segment=ref, batch=0, keys=4),
            StepFinished(step="enumerate"),
            StepStarted(step="drop"),
            StepFinished(step="drop"),
            StepStarted(step="quantize"),
            ConflictRecorded(step="quantize", keys=[b"doc:3"], reason="changed"),
            BatchDone(step="quantize", batch=0, keys=4, counts={"written": 3, "conflicts": 1}),
            StepFinished(step="quantize"),
            StepStarted(step="wait"),
            StepFinished(step="wait"),
            StepStarted(step="validate"),
            check,
            StepFinished(step="validate"),
            RunFinished(result="succeeded" if validation_ok else "failed"),
        ]
    )


def test_report_is_a_deterministic_projection() -> None:
    """The same events always give the same report (files can be regenerated at any time)."""
    events = _apply_events()
    assert project_report(events, APPLY, backup_dir="/b/docs") == project_report(
        events, APPLY, backup_dir="/b/docs"
    )


def test_report_timings_downtime_and_conflicts() -> None:
    """Downtime spans drop start → wait end; conflicts are counted and named."""
    report = project_report(_apply_events(), APPLY, backup_dir="/b/docs", warnings=["w"])
    assert report.result == "succeeded"
    assert report.timings.downtime_duration_seconds == 7.0  # seq 5 (drop) → seq 12 (wait end)
    assert report.conflicts == 1 and report.conflict_sample == ["doc:3"]
    assert report.benchmark_summary.documents == 4
    assert report.backup.segments == 1 and report.backup.segment_bytes == 100
    assert report.warnings == ["w"]
    assert any("written by others" in action for action in report.manual_actions)


def test_latest_validation_attempt_wins() -> None:
    """A failed validation followed by a passing re-run reports the passing checks."""
    failed = _apply_events(validation_ok=False)
    rerun = _stamp(
        [
            *failed,
            _run(),
            StepStarted(step="validate"),
            CheckPassed(check="doc_count", detail="ok"),
            StepFinished(step="validate"),
            RunFinished(result="succeeded"),
        ]
    )
    assert project_report(failed, APPLY).validation.doc_count_match is False
    report = project_report(rerun, APPLY)
    assert report.validation.doc_count_match is True and report.result == "succeeded"


def test_rollback_report_uses_rollback_runs_only() -> None:
    """kind='rollback' projects only the rollback runs; apply's steps are not in it."""
    events = _stamp(
        [
            *_apply_events(),
            _run("rollback"),
            StepStarted(step="drop_target"),
            StepFinished(step="drop_target"),
            StepStarted(step="wait_source"),
            StepFinished(step="wait_source"),
            RunFinished(result="rolled_back"),
        ]
    )
    report = project_report(events, ROLLBACK, kind="rollback")
    assert report.result == "rolled_back"
    assert set(report.timings.steps) == {"drop_target", "wait_source"}
    assert report.timings.downtime_duration_seconds == 3.0


def test_benchmark_throughput_per_step() -> None:
    """The benchmark report gives docs/s of batched steps from event timestamps."""
    bench = project_benchmark(_apply_events(), APPLY)
    assert bench.steps["quantize"].batches == 1
    assert bench.steps["quantize"].docs_per_second == round(4 / 3, 1)


def test_inspect_rows_one_per_event() -> None:
    """journal inspect shows every event with its step, batch and counts."""
    events = _apply_events()
    rows = inspect_rows(events)
    assert [r.seq for r in rows] == list(range(1, len(events) + 1))
    batch = next(r for r in rows if r.event == "batch_done")
    assert batch.step == "quantize" and batch.batch == 0 and batch.counts["conflicts"] == 1
    conflict = next(r for r in rows if r.event == "conflict_recorded")
    assert "doc:3" in conflict.detail and conflict.keys == 1
    assert inspect_rows(events, index="other") == []


def test_document_checks_journaled_while_the_index_builds_are_reported() -> None:
    """keys_exist and vector_bytes come from the apply's wait step, the rest from validate;
    a fresh wait (a new validation) supersedes the earlier ones."""
    base = [e for e in _apply_events() if not isinstance(e, RunFinished)]
    at_wait = next(i for i, e in enumerate(base) if getattr(e, "step", "") == "wait")
    events = _stamp(
        [
            *base[: at_wait + 1],
            CheckFailed(check="keys_exist", detail="1 missing", count=1),
            CheckPassed(check="vector_bytes", detail="ok"),
            *base[at_wait + 1 :],
            RunFinished(result="failed"),
        ]
    )
    validation = project_report(events, APPLY).validation
    assert validation.keys_exist is False
    assert validation.vector_sample_match is True
    assert validation.doc_count_match is True


def _redisvl_events() -> list[AnyEvent]:
    ref = SegmentRef(number=1, size=100, crc32=7)
    return _stamp(
        [
            _run(),
            StepStarted(step="enumerate"),
            KeysEnumerated(segment=ref, batch=0, keys=4),
            StepFinished(step="enumerate"),
            StepStarted(step="backup"),
            BatchDone(step="backup", batch=0, keys=4, segment=ref),
            StepFinished(step="backup"),
            StepStarted(step="drop"),
            StepFinished(step="drop"),
            StepStarted(step="quantize"),
            BatchDone(step="quantize", batch=0, keys=4),
            StepFinished(step="quantize"),
            StepStarted(step="create"),
            StepFinished(step="create"),
            StepStarted(step="wait"),
            CheckPassed(check="keys_exist", detail="0 enumerated keys missing"),
            StepFinished(step="wait"),
            StepStarted(step="validate"),
            CheckPassed(check="schema_match", detail="matches the plan"),
            CheckPassed(check="doc_count", detail="num_docs + hash_indexing_failures = 4"),
            CheckPassed(check="indexing_failures", detail="1 failures (source had 3)"),
            StepFinished(step="validate"),
            CheckPassed(check="key_sample", detail="0 of 2 sampled keys missing"),
            CheckPassed(check="functional:wildcard_search", detail="Wildcard search returned 4"),
            CheckFailed(check="fetch:9", detail="Document not found (doc:9)", count=1),
            RunFinished(result="failed", error="validation failed: fetch:9: Document not found"),
        ]
    )


def test_report_carries_redisvl_fields() -> None:
    """The report has RedisVL's fields with RedisVL's meaning: per-phase durations (None for
    phases that did not run), key_sample_exists, indexing_failures_delta (a decrease is
    negative), query_checks by RedisVL's names, one error line per failed check,
    documents_indexed_per_second over the index build, and backup_paths naming the journal
    directory when vectors were backed up."""
    report = project_report(
        _redisvl_events(), APPLY, backup_dir="/b/docs", kind="apply", target_index="docs_v2"
    )
    assert (report.source_index, report.target_index) == ("docs", "docs_v2")
    t = report.timings
    assert t.drop_duration_seconds == 1.0 and t.quantize_duration_seconds == 2.0
    assert t.recreate_duration_seconds == 1.0 and t.initial_indexing_duration_seconds == 2.0
    assert t.validation_duration_seconds == 4.0
    assert t.field_rename_duration_seconds is None and t.key_rename_duration_seconds is None
    assert t.steps["backup"] == 2.0
    v = report.validation
    assert v.key_sample_exists is True and v.indexing_failures_delta == -2
    assert [(c.name, c.passed) for c in v.query_checks] == [
        ("functional:wildcard_search", True),
        ("fetch:9", False),
    ]
    assert v.errors == ["fetch:9: Document not found (doc:9)"]
    assert report.benchmark_summary.documents_indexed_per_second == 2.0
    assert report.backup.backup_dir == "/b" and report.backup.backup_paths == ["/b/docs"]


def test_report_without_backup_or_checks_has_redisvl_defaults() -> None:
    """An index-only run backs up nothing (backup_paths empty); a run refused before its
    validation has key_sample_exists False and its error as the one line of errors."""
    done = project_report(_apply_events(), APPLY, backup_dir="/b/docs")
    assert done.backup.backup_paths == [] and done.validation.key_sample_exists is True
    refused = project_report(
        _stamp([_run(), RunFinished(result="refused", error="source changed")]), APPLY
    )
    assert refused.validation.key_sample_exists is False
    assert refused.validation.errors == ["source changed"]
    assert refused.timings.drop_duration_seconds is None
    assert refused.benchmark_summary.documents_indexed_per_second is None


def test_validation_report_unpacks_as_redisvl_tuple() -> None:
    """A ValidationReport is a full report that also unpacks as RedisVL's
    (validation, target_info, duration)."""
    from ftctl.journal.report import ValidationReport

    report = ValidationReport(index_name="docs", target_info={"num_docs": 4})
    validation, info, duration = report
    assert validation is report.validation and info == {"num_docs": 4} and duration == 0.0


def _paced_events(*, resumed: bool = True) -> list[AnyEvent]:
    start = msgspec.structs.replace(
        _run(),
        mode="online",
        options={"max_latency_ms": 50.0, "max_cpu": 0.8, "probe_query": "", "throttle": True},
    )
    events: list[AnyEvent] = [
        start,
        StepStarted(step="expand"),
        PaceChanged(step="expand", change="slowed", batch=250, latency_ms=80.0, cpu=0.5),
        PaceChanged(step="expand", change="slowed", batch=10, sleep_ms=40.0, latency_ms=65.0),
        PaceChanged(step="expand", change="recovered", batch=500, latency_ms=3.0),
        RunPaused(step="expand"),
        StepFinished(step="expand"),  # a second between stamps: held 2 s once resumed
    ]
    if resumed:
        events += [RunResumed(step="expand"), RunFinished(result="succeeded")]
    return _stamp(events)


def test_the_report_says_how_a_run_paced_and_paused() -> None:
    """Slowdowns (lowest batch, longest pause, highest latency measured at one), the
    settings of the run, and the pauses with how long they held."""
    pacing = project_report(_paced_events(), APPLY).pacing
    assert pacing is not None
    assert (pacing.max_latency_ms, pacing.max_cpu, pacing.throttle) == (50.0, 0.8, True)
    assert (pacing.slowed, pacing.lowest_batch, pacing.longest_sleep_ms) == (2, 10, 40.0)
    assert pacing.highest_latency_ms == 80.0
    assert (pacing.pauses, pacing.paused_seconds, pacing.paused) == (1, 2.0, False)


def test_a_run_still_paused_is_reported_with_the_way_out() -> None:
    """A journal that ends paused (Ctrl+C while paused) counts the pause to its last event
    and tells how to remove the flag."""
    report = project_report(_paced_events(resumed=False), APPLY)
    assert report.pacing is not None and report.pacing.paused
    assert report.pacing.paused_seconds == 1.0
    assert any("ftctl migrate unpause" in action for action in report.manual_actions)


def test_runs_that_do_not_pace_have_no_pacing_section() -> None:
    """A drop_recreate journal (no pacing settings journaled) reports ``pacing: null``."""
    assert project_report(_apply_events(), APPLY).pacing is None


def test_inspect_shows_pauses_and_pace_changes() -> None:
    """journal inspect rows name the pause, its end, and what each pace change measured."""
    rows = {r.event: r for r in inspect_rows(_paced_events())}
    assert "paused by an operator" in rows["run_paused"].detail
    assert rows["run_resumed"].step == "expand"
    shown = [r.detail for r in inspect_rows(_paced_events()) if r.event == "pace_changed"]
    assert shown[0] == "slowed: batch 250, sleep 0 ms, latency 80 ms, cpu 50%"
    assert shown[2].startswith("recovered: batch 500")


def _compared(name: str, passed: bool, overlap: float, before: int, after: int) -> QueryCompared:
    return QueryCompared(
        name=name,
        index="docs",
        k=10,
        passed=passed,
        overlap=overlap,
        hits=round(overlap * 10),
        expected=10,
        count_before=before,
        count_after=after,
        min_overlap=0.9,
        missing=[b"doc:\xff"] if overlap < 1 else [],
    )


def test_user_queries_are_reported_from_the_latest_validation() -> None:
    """validation.queries lists each query's latest comparison (overlap, counts, missing ids
    shown as text); a comparison of an earlier validation attempt is superseded; the
    query:<name> checks are in query_checks beside RedisVL's, a failed one in errors; the
    comparison's seconds count as validation; inspect shows both query events."""
    events = _stamp(
        [
            _run(),
            StepStarted(step="query_baseline"),
            QueryBaseline(index="docs", queries=[]),
            StepFinished(step="query_baseline"),
            StepStarted(step="wait"),
            StepStarted(step="query_compare"),
            _compared("stale", True, 1.0, 3, 3),
            StepStarted(step="wait"),  # a resumed validation starts over
            StepStarted(step="query_compare"),
            _compared("near", False, 0.8, 10, 10),
            CheckFailed(check="query:near", detail="overlap@10 0.80", count=1),
            _compared("tag", True, 1.0, 104, 104),
            CheckPassed(check="query:tag", detail="overlap@10 1.00"),
            StepFinished(step="query_compare"),
            RunFinished(result="failed", error="validation failed"),
        ]
    )
    report = project_report(events, APPLY, backup_dir="/b/docs")
    v = report.validation
    assert [(q.name, q.passed, q.overlap) for q in v.queries] == [
        ("near", False, 0.8),
        ("tag", True, 1.0),
    ]
    near = v.queries[0]
    assert (near.k, near.count_before, near.count_after, near.min_overlap) == (10, 10, 10, 0.9)
    assert near.missing == ["doc:\\xff"] and near.index == "docs"
    assert [(c.name, c.passed) for c in v.query_checks] == [
        ("query:near", False),
        ("query:tag", True),
    ]
    assert v.errors == ["query:near: overlap@10 0.80"]
    assert report.timings.validation_duration_seconds == report.timings.steps["query_compare"] == 8
    details = {row.event: row.detail for row in inspect_rows(events)}
    assert details["query_baseline"] == "results on 'docs': "
    assert details["query_compared"] == "tag on 'docs': overlap@10 1.00, results 104 → 104"
