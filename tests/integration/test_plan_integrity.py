"""A reviewed plan applies only as reviewed, on the server it was made for (issue 13.7).

Edited plans (``lossy: false``, ``supported: true``) and plans carried to another server with
the same schema are refused before anything runs (exit 2, Redis and the backup dir
untouched), unless the user says so explicitly; even then a plan whose derived values
contradict its own schemas never runs. A restart of the same server is not another server.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
import redis
from click.testing import CliRunner, Result
from helpers import INDEX, patch, snapshot, source, state

from ftctl.cli import cli
from ftctl.errors import RefusedError
from ftctl.executor import MigrationExecutor
from ftctl.plan import dump_plan, load_plan
from ftctl.planner import MigrationPlanner
from ftctl.server import EmbeddedServer

TO_INT8 = patch(update_fields=[{"name": "emb", "attrs": {"datatype": "int8"}}])
ADD_TAG = patch(add_fields=[{"name": "color", "type": "tag"}])
DIMS_CHANGE = patch(update_fields=[{"name": "emb", "attrs": {"dims": 16}}])


def _write(tmp_path: Path, text: str, name: str = "plan.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _apply(url: str, plan_file: Path, backup: Path, *flags: str) -> Result:
    return CliRunner().invoke(
        cli,
        ["--url", url, "migrate", "apply", "--plan", str(plan_file), "--backup-dir",
         str(backup), *flags],
    )  # fmt: skip


def test_an_edited_lossy_flag_is_refused_with_or_without_allow_edited_plan(
    r: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    """``lossy: true`` → ``lossy: false`` on an int8 quantization used to skip the data-loss
    acknowledgement: now the digest refuses it, and --allow-edited-plan does not help
    because the lossiness is recomputed from the schemas. Nothing changes in Redis."""
    source(r, "hash")
    made = MigrationPlanner().create_plan(INDEX, redis_url=redis_url, schema_patch=TO_INT8)
    text = dump_plan(made).decode()
    assert "lossy: true" in text
    plan_file = _write(tmp_path, text.replace("lossy: true", "lossy: false"))
    before = state(r)
    edited = _apply(redis_url, plan_file, tmp_path / "b")
    assert edited.exit_code == 2, edited.output
    assert edited.stderr.startswith(
        "error: the plan was edited after it was made: its content does not match its digest"
    )
    assert "--allow-edited-plan" in edited.stderr
    allowed = _apply(redis_url, plan_file, tmp_path / "b", "--allow-edited-plan")
    assert allowed.exit_code == 2, allowed.output
    assert "the plan contradicts itself: vector_changes 'emb' float32→int8 says lossy: false" in (
        allowed.stderr
    )
    assert state(r) == before
    assert not (tmp_path / "b").exists()


def test_an_edited_supported_flag_is_refused(
    r: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    """A blocked plan (dims change) edited to ``supported: true`` with its reasons removed:
    refused for the edit, and with --allow-edited-plan for what its schemas imply."""
    source(r, "hash")
    made = MigrationPlanner().create_plan(INDEX, redis_url=redis_url, schema_patch=DIMS_CHANGE)
    assert not made.supported
    forged = msgspec.structs.replace(
        made,
        diff_classification=msgspec.structs.replace(
            made.diff_classification, supported=True, blocked_reasons=[]
        ),
    )
    plan_file = _write(tmp_path, dump_plan(forged).decode())
    before = state(r)
    assert "edited after it was made" in _apply(redis_url, plan_file, tmp_path / "b").stderr
    allowed = _apply(redis_url, plan_file, tmp_path / "b", "--allow-edited-plan")
    assert allowed.exit_code == 2
    assert "the plan's own schemas are blocked: field 'emb': vector dims change 8 → 16" in (
        allowed.stderr
    )
    assert state(r) == before


def test_an_edit_that_contradicts_nothing_applies_when_allowed(
    r: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    """An edited warning text: refused by default, applied with --allow-edited-plan."""
    source(r, "hash")
    made = MigrationPlanner().create_plan(INDEX, redis_url=redis_url, schema_patch=ADD_TAG)
    text = dump_plan(made).decode().replace("Index downtime", "Reviewed: index downtime", 1)
    plan_file = _write(tmp_path, text)
    assert _apply(redis_url, plan_file, tmp_path / "b").exit_code == 2
    applied = _apply(redis_url, plan_file, tmp_path / "b", "--allow-edited-plan")
    assert applied.exit_code == 0, applied.output


@pytest.fixture
def other() -> Iterator[EmbeddedServer]:
    """A second server with the same index and the same documents (another environment)."""
    with EmbeddedServer() as server:
        client = redis.Redis.from_url(server.url, protocol=3)
        source(client, "hash")
        client.close()
        yield server


def test_a_plan_for_another_server_is_refused_unless_allowed(
    r: redis.Redis, redis_url: str, other: EmbeddedServer, tmp_path: Path
) -> None:
    """Planned on the session server, applied to a server with the same schema and data:
    refused naming both addresses; --allow-other-server applies it."""
    source(r, "hash")
    made = MigrationPlanner().create_plan(INDEX, redis_url=redis_url, schema_patch=ADD_TAG)
    assert made.server is not None and made.server.run_id
    plan_file = _write(tmp_path, dump_plan(made).decode())
    there = redis.Redis.from_url(other.url, protocol=3)
    before = state(there)
    refused = _apply(other.url, plan_file, tmp_path / "b")
    assert refused.exit_code == 2, refused.output
    assert refused.stderr.startswith("error: the plan was made against another server")
    assert f"this server is 127.0.0.1:{other.port}" in refused.stderr
    assert "--allow-other-server" in refused.stderr
    assert state(there) == before and not (tmp_path / "b").exists()
    allowed = _apply(other.url, plan_file, tmp_path / "b", "--allow-other-server")
    assert allowed.exit_code == 0, allowed.output
    there.close()


def test_a_restarted_server_is_the_same_server(tmp_path: Path) -> None:
    """The server restarts between plan and apply (new run_id, same address, same index,
    the sampled keys still there): the plan applies without any option."""
    with EmbeddedServer(directory=tmp_path / "redis", persistence=True) as server:
        client = redis.Redis.from_url(server.url, protocol=3)
        source(client, "hash")
        made = MigrationPlanner().create_plan(INDEX, redis_url=server.url, schema_patch=ADD_TAG)
        client.save()
        client.close()
        server.stop()
        server.start()
        client = redis.Redis.from_url(server.url, protocol=3)
        assert client.info("server")["run_id"] != made.server.run_id  # type: ignore[union-attr]
        before = snapshot(client)
        report = MigrationExecutor().apply(made, redis_url=server.url, backup_dir=tmp_path / "b")
        assert report.result == "succeeded", report.error
        assert snapshot(client) == before
        client.close()


def test_a_plan_without_digest_or_server_applies(
    r: redis.Redis, redis_url: str, other: EmbeddedServer, tmp_path: Path
) -> None:
    """A plan without ``digest:`` and ``server:`` (RedisVL's, an earlier release's) is
    applied without those checks — even on another server — but still re-validated."""
    source(r, "hash")
    made = MigrationPlanner().create_plan(INDEX, redis_url=redis_url, schema_patch=ADD_TAG)
    unsealed = msgspec.structs.replace(made, digest="", server=None)
    text = dump_plan(unsealed).decode()
    assert "digest:" not in text and "server:" not in text
    report = MigrationExecutor().apply(
        load_plan(text.encode()), redis_url=other.url, backup_dir=tmp_path / "b"
    )
    assert report.result == "succeeded", report.error
    lossy = MigrationPlanner().create_plan(INDEX, redis_url=redis_url, schema_patch=TO_INT8)
    forged = _write(
        tmp_path,
        dump_plan(msgspec.structs.replace(lossy, digest="", server=None))
        .decode()
        .replace("lossy: true", "lossy: false"),
        "forged.yaml",
    )
    with pytest.raises(RefusedError, match="contradicts itself"):
        MigrationExecutor().apply(forged, redis_url=redis_url, backup_dir=tmp_path / "c")


def test_rerunning_apply_resumes_without_asking_about_the_server(
    r: redis.Redis, redis_url: str, other: EmbeddedServer, tmp_path: Path
) -> None:
    """The identity is checked when the journal is created: once a run on another server
    was allowed, re-running the same apply resumes its journal without the option (the
    journal tracks the server from then on)."""
    source(r, "hash")
    made = MigrationPlanner().create_plan(INDEX, redis_url=redis_url, schema_patch=ADD_TAG)
    backup = tmp_path / "b"
    with pytest.raises(RefusedError, match="another server"):
        MigrationExecutor().apply(made, redis_url=other.url, backup_dir=backup)
    first = MigrationExecutor().apply(
        made, redis_url=other.url, backup_dir=backup, allow_other_server=True
    )
    assert first.result == "succeeded", first.error
    again = MigrationExecutor().apply(made, redis_url=other.url, backup_dir=backup)
    assert again.result == "succeeded", again.error
