"""Failures caused by the data, a damaged backup or an edited plan never leave an index down.

Each test reproduces a failure reported against 0.1 on the real server: the run must refuse
before the first destructive step (exit 2, nothing changed, the culprit named) or, where the
user chose so, go on and say what it left untouched.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest
import redis
from click.testing import CliRunner
from helpers import DIMS, INDEX, RUNNERS, info, patch, plan, run_apply, source, state

from ftctl.cli import cli
from ftctl.errors import RefusedError
from ftctl.executor import MigrationExecutor, rollback
from ftctl.journal import Journal
from ftctl.journal.events import CheckFailed, RunFinished, VectorsRejected
from ftctl.plan.models import dump_plan, load_plan
from ftctl.planner import MigrationPlanner
from ftctl.steps import rewrite

F16 = patch(update_fields=[{"name": "emb", "attrs": {"datatype": "float16"}}])


def _overflowing(r: redis.Redis, key: str = "doc:7") -> bytes:
    """Give ``key`` a float32 vector float16 cannot hold (what a planner sample can miss)."""
    big = np.full(DIMS, 1e6, dtype=np.float32).tobytes()
    r.hset(key, "emb", big)
    return big


@pytest.mark.parametrize("runner", [RUNNERS[0], RUNNERS[3]])
def test_unconvertible_vector_refuses_before_the_drop(
    r: redis.Redis, redis_url: str, tmp_path: Path, runner: str
) -> None:
    """A vector the target datatype cannot hold, written after planning, is found by the
    backup: the run refuses at preflight with exit 2 naming the key, the index still
    serves, and nothing in Redis changed (0.1 dropped the index and failed mid-quantize)."""
    source(r, "hash")
    made = plan(redis_url, F16)
    _overflowing(r)
    before = state(r)

    with pytest.raises(RefusedError, match=r"cannot be converted.*doc:7.*--skip-invalid-vectors"):
        run_apply(runner, made, redis_url=redis_url, backup_dir=tmp_path)

    assert state(r) == before
    assert info(r).index_name == INDEX
    events = Journal.read(tmp_path / INDEX)
    rejected = [e for e in events if isinstance(e, VectorsRejected)]
    assert [(e.kind, e.keys) for e in rejected] == [("unconvertible", [b"doc:7"])]
    assert isinstance(events[-1], RunFinished) and events[-1].result == "refused"
    assert not any(getattr(e, "step", None) == "drop" for e in events)


def test_skip_invalid_vectors_leaves_them_untouched_and_says_so(
    r: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    """With --skip-invalid-vectors the run goes on: the bad vector keeps its bytes, every
    other is converted, validation accounts for the one document the target cannot index,
    and a rollback restores everything (no conversion is recomputed)."""
    source(r, "hash")
    made = plan(redis_url, F16)
    big = _overflowing(r)
    before = state(r)

    report = run_apply(
        RUNNERS[0], made, redis_url=redis_url, backup_dir=tmp_path, skip_invalid_vectors=True
    )

    assert report.result == "succeeded", (report.error, report.validation.checks)
    assert r.hget("doc:7", "emb") == big
    assert len(r.hget("doc:8", "emb") or b"") == DIMS * 2
    assert rollback(tmp_path, redis_url=redis_url).result == "rolled_back"
    assert state(r) == before


def test_failed_apply_rolls_back_without_converting_again(
    r: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    """A rollback never recomputes the forward conversion: it recognises what the apply
    wrote by the digests the backup recorded, so a value that cannot be converted cannot
    fail it (0.1's rollback failed with the apply's codec error and left no index)."""
    source(r, "hash")
    made = plan(redis_url, F16)
    before = state(r)
    report = run_apply(RUNNERS[0], made, redis_url=redis_url, backup_dir=tmp_path)
    assert report.result == "succeeded"
    # A value no codec could produce now sits where the apply wrote: a later write, kept.
    r.hset("doc:3", "emb", np.full(DIMS, 1e6, dtype=np.float32).tobytes())

    back = rollback(tmp_path, redis_url=redis_url)

    assert back.result == "failed" and back.conflicts == 1  # the later write was kept
    assert info(r).index_name == INDEX
    after = state(r)[0]
    changed = [k for k in before[0] if before[0][k] != after.get(k)]
    assert changed == [b"doc:3"]


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("target_datatype", "FLOAT17", "'emb' float32→FLOAT17 is not a change the plan's schemas"),
        ("target_datatype", "float64", "'emb' float32→float64 is not a change the plan's schemas"),
        ("dims", 9, "'emb' float32→float16 does not match the schemas \\(dims"),
    ],
)
def test_edited_plan_values_are_refused_before_anything(
    r: redis.Redis, redis_url: str, tmp_path: Path, field: str, value: object, words: str
) -> None:
    """A plan whose vector change was edited by hand to values the schemas contradict is
    refused before the journal or Redis is touched (0.1 refused with exit 2 after the drop
    and the renames): for the edit (its digest), and, with allow_edited_plan, for values
    its own schemas contradict."""
    source(r, "hash")
    raw = msgspec.yaml.decode(dump_plan(plan(redis_url, F16)))
    raw["vector_changes"][0][field] = value
    edited = tmp_path / "plan.yaml"
    edited.write_bytes(msgspec.yaml.encode(raw))
    before = state(r)

    for allowed, expected in [(False, "edited after it was made"), (True, words)]:
        with pytest.raises(RefusedError, match=expected):
            MigrationExecutor().apply(
                load_plan(edited),
                redis_url=redis_url,
                backup_dir=tmp_path / "b",
                accept_data_loss=True,
                allow_edited_plan=allowed,
            )

    assert state(r) == before
    assert not (tmp_path / "b").exists()


def test_taken_rename_destination_refuses_before_the_drop(
    r: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    """A document that already has the destination field of a rename would be left
    half-migrated; the preflight finds it and refuses, naming the key."""
    source(r, "hash")
    made = plan(redis_url, patch(rename_fields=[{"old_name": "title", "new_name": "headline"}]))
    r.hset("doc:5", "headline", "already here")
    before = state(r)

    with pytest.raises(RefusedError, match=r"destination of a field rename.*doc:5"):
        run_apply(RUNNERS[0], made, redis_url=redis_url, backup_dir=tmp_path)

    assert state(r) == before


@pytest.mark.parametrize("damage", ["delete", "truncate", "flip"])
def test_damaged_backup_refuses_rollback_before_the_drop(
    r: redis.Redis, redis_url: str, tmp_path: Path, damage: str
) -> None:
    """A deleted, truncated or flipped segment stops the rollback before it drops the
    healthy migrated index (exit 2, nothing changed, the segment named); the journal records
    no rollback step, so once the segment is restored the rollback can run (0.1 left no
    index, half-restored documents, and a journal that refused resume)."""
    source(r, "hash")
    made = plan(redis_url, F16)
    assert run_apply(RUNNERS[0], made, redis_url=redis_url, backup_dir=tmp_path).result == (
        "succeeded"
    )
    migrated = state(r)
    segment = sorted((tmp_path / INDEX / "segments").iterdir())[-1]
    saved = segment.read_bytes()
    match damage:
        case "delete":
            segment.unlink()
        case "truncate":
            segment.write_bytes(segment.read_bytes()[:10])
        case _:
            data = bytearray(segment.read_bytes())
            data[len(data) // 2] ^= 0xFF
            segment.write_bytes(bytes(data))

    result = CliRunner().invoke(
        cli, ["--url", redis_url, "migrate", "rollback", "--backup-dir", str(tmp_path)]
    )

    assert result.exit_code == 2, result.output
    assert segment.name in result.output
    assert "Traceback" not in result.output
    assert state(r) == migrated
    if damage == "flip":  # same size: found by the rollback's own preflight (crc)
        assert "rollback refused, nothing was changed" in result.output
        failed = [e for e in Journal.read(tmp_path / INDEX) if isinstance(e, CheckFailed)]
        assert failed and failed[-1].check == "backup_intact"
    assert info(r).index_name == INDEX  # the migrated index still serves
    segment.write_bytes(saved)
    assert rollback(tmp_path, redis_url=redis_url).result == "rolled_back"


def test_rollback_reads_digests_and_never_calls_the_codec(
    r: redis.Redis, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the codec made to fail after the apply, the rollback still restores every
    vector byte for byte: it compares against the digests the backup recorded."""
    source(r, "hash")
    before = state(r)
    assert run_apply(RUNNERS[1], plan(redis_url, F16), redis_url=redis_url, backup_dir=tmp_path)

    real = rewrite.convert_rows

    def forward_refused(vectors: Any, src: str, dst: str, *args: Any) -> Any:
        # The source validation compares stored float32 with float32: an identity.
        if src.lower() != dst.lower():
            raise AssertionError("the rollback converted a vector again")
        return real(vectors, src, dst, *args)

    monkeypatch.setattr(rewrite, "convert_rows", forward_refused)

    assert rollback(tmp_path, redis_url=redis_url, num_workers=2).result == "rolled_back"
    assert state(r) == before


ODD_KEYS = [b"doc:nul\x00byte", b"doc:\xff\xfe-not-utf8", b"doc:esc\x1b[31m"]


@pytest.mark.parametrize("runner", [RUNNERS[0], RUNNERS[3]])
def test_keys_of_any_bytes_are_migrated_and_rolled_back(
    r: redis.Redis, redis_url: str, tmp_path: Path, runner: str
) -> None:
    """Keys holding a NUL byte, invalid UTF-8 or a terminal escape are planned, enumerated
    (FT.AGGREGATE cannot return a NUL key: the enumeration starts over with FT.SEARCH),
    moved to the new prefix with their vectors converted, and rolled back byte for byte
    (0.1 left them under the old prefix and reported success)."""
    source(r, "hash")
    vector = np.arange(DIMS, dtype=np.float32).tobytes()
    for key in ODD_KEYS:
        r.hset(key, mapping={"title": "odd", "emb": vector})
    made = plan(redis_url, patch(index={"prefix": "item:"}, **_f16()))
    before = state(r)

    report = run_apply(runner, made, redis_url=redis_url, backup_dir=tmp_path)

    assert report.result == "succeeded", (report.error, report.validation.checks)
    for key in ODD_KEYS:
        moved = b"item:" + key[len(b"doc:") :]
        assert not r.exists(key) and len(r.hget(moved, "emb") or b"") == DIMS * 2
    assert report.benchmark_summary.documents == 60 + len(ODD_KEYS)
    assert rollback(tmp_path, redis_url=redis_url).result == "rolled_back"
    assert state(r) == before


def _f16() -> dict[str, object]:
    return {"update_fields": [{"name": "emb", "attrs": {"datatype": "float16"}}]}


def test_filter_index_never_touches_keys_its_filter_excludes(
    r: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    """An index with a FILTER and an indexing failure is enumerated from the index, not by a
    prefix SCAN: the documents the filter excludes keep their bytes (0.1 quantized all
    500 of them)."""
    r.execute_command(
        "FT.CREATE", INDEX, "ON", "HASH", "PREFIX", "1", "doc:", "FILTER", "@kind=='in'",
        "SCHEMA", "title", "TEXT", "emb", "VECTOR", "FLAT", "6", "TYPE", "FLOAT32",
        "DIM", str(DIMS), "DISTANCE_METRIC", "COSINE",
    )  # fmt: skip
    rng = np.random.default_rng(1)
    for i in range(40):
        kind = "in" if i % 2 else "out"
        r.hset(
            f"doc:{i}",
            mapping={
                "kind": kind,
                "title": "t",
                "emb": rng.random(DIMS, dtype=np.float32).tobytes(),
            },
        )
    r.hset("doc:broken", mapping={"kind": "in", "title": "t", "emb": b"\x01\x02"})
    excluded = {k: r.hget(k, "emb") for k in (f"doc:{i}" for i in range(0, 40, 2))}
    made = plan(redis_url, patch(**_f16()))

    report = run_apply(RUNNERS[0], made, redis_url=redis_url, backup_dir=tmp_path)

    assert report.result == "succeeded", (report.error, report.validation.checks)
    assert {k: r.hget(k, "emb") for k in excluded} == excluded
    assert len(r.hget("doc:1", "emb") or b"") == DIMS * 2


def test_prefix_change_onto_another_index_is_blocked_and_refused(
    r: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    """A new prefix another index covers is blocked at planning; an index created on it
    after planning stops the run at preflight, nothing changed (0.1 filled that index with
    indexing failures)."""
    source(r, "hash")
    r.execute_command("FT.CREATE", "others", "PREFIX", "1", "item", "SCHEMA", "x", "TEXT")
    blocked = MigrationPlanner().create_plan(
        INDEX, redis_url=redis_url, schema_patch=patch(index={"prefix": "item:"})
    )
    assert not blocked.supported
    assert any(
        "covered by index 'others'" in b for b in blocked.diff_classification.blocked_reasons
    )
    r.execute_command("FT.DROPINDEX", "others")
    made = plan(redis_url, patch(index={"prefix": "item:"}))
    r.execute_command("FT.CREATE", "others", "PREFIX", "1", "item", "SCHEMA", "x", "TEXT")
    before = state(r)

    with pytest.raises(RefusedError, match="covered by index 'others'"):
        run_apply(RUNNERS[0], made, redis_url=redis_url, backup_dir=tmp_path)

    assert state(r) == before


def test_writes_through_old_names_during_the_run_are_named(
    r: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    """A document written under its old key (or an old field) after the rename moved it is
    an orphan no index reads: validation fails old_names_unused and the report names it
    (0.1 reported success with the orphan under both names)."""
    source(r, "hash")
    made = plan(
        redis_url,
        patch(
            index={"prefix": "item:"},
            rename_fields=[{"old_name": "title", "new_name": "headline"}],
            **_f16(),
        ),
    )
    written: list[str] = []

    def write_through_old_names(step: str, done: int, total: int) -> None:
        if step == "quantize" and not written:
            r.hset("doc:5", "title", "written through the old key")
            r.hset("item:6", "title", "written through the old field")
            written.append(step)

    report = run_apply(
        RUNNERS[0], made, redis_url=redis_url, backup_dir=tmp_path,
        progress_callback=write_through_old_names,
    )  # fmt: skip

    assert written and report.result == "failed"
    check = next(c for c in report.validation.checks if c.check == "old_names_unused")
    assert not check.passed and check.count == 2
    assert "doc:5" in check.detail and "item:6" in check.detail


@pytest.mark.parametrize(
    ("policy", "warned"),
    [
        ("allkeys-lru", "any document"),
        ("volatile-ttl", "documents that have a TTL"),
        ("noeviction", None),
    ],
)
def test_plans_warn_about_an_eviction_policy_that_can_delete_documents(
    r: redis.Redis, redis_url: str, policy: str, warned: str | None
) -> None:
    """With a maxmemory limit, an evicting policy is a plan warning naming the policy, what
    it can evict and the fix; noeviction (and no limit) is not."""
    source(r, "hash")
    before = r.config_get("maxmemory*")
    r.config_set("maxmemory", str(1 << 30))
    r.config_set("maxmemory-policy", policy)
    try:
        for mode in ("drop_recreate", "online"):
            made = MigrationPlanner().create_plan(
                INDEX, redis_url=redis_url, schema_patch=F16, mode=mode
            )
            warnings = made.warnings
            found = [w for w in warnings if w.startswith("Eviction policy")]
            if warned is None:
                assert found == []
            else:
                (line,) = found
                assert f"'{policy}'" in line and warned in line and "1.00 GB" in line
                assert "CONFIG SET maxmemory-policy noeviction" in line
    finally:
        r.config_set("maxmemory", before["maxmemory"])
        r.config_set("maxmemory-policy", before["maxmemory-policy"])


def test_rollback_of_an_apply_that_failed_before_changing_anything_ignores_its_segments(
    r: redis.Redis, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An apply that failed at its preflight changed no document: its rollback reads no
    segment, so a damaged backup segment does not keep that journal from being rolled back
    (it used to be refused forever)."""
    source(r, "hash")
    original = state(r)
    made = plan(redis_url, F16)
    monkeypatch.setenv("FTCTL_FAULT", "after:step_started:preflight")
    monkeypatch.setenv("FTCTL_FAULT_RAISE", "oom")
    failed = run_apply(RUNNERS[0], made, redis_url=redis_url, backup_dir=tmp_path)
    monkeypatch.delenv("FTCTL_FAULT")
    monkeypatch.delenv("FTCTL_FAULT_RAISE")
    assert failed.result == "failed", failed.result
    segment = sorted((tmp_path / INDEX / "segments").iterdir())[-1]
    data = bytearray(segment.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size: only a read of it would notice
    segment.write_bytes(bytes(data))
    assert rollback(tmp_path, redis_url=redis_url).result == "rolled_back"
    assert state(r) == original
