"""What the server does to a run: stalls, lost connections, lost writes (issue 12, 5 and 6).

Each test has a server of its own (started here), since it pauses, kills or rewinds it.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from helpers import DIMS, INDEX, expected_after, patch, plan, snapshot, source

from ftctl.errors import Interrupted
from ftctl.executor import MigrationExecutor, rollback
from ftctl.journal import Journal
from ftctl.journal.events import ServerChanged, StepStarted
from ftctl.server import EmbeddedServer

CHANGES = patch(
    index={"prefix": "item:"},
    rename_fields=[{"old_name": "title", "new_name": "headline"}],
    update_fields=[{"name": "emb", "attrs": {"datatype": "float16"}}],
)


@pytest.fixture
def own(tmp_path: Path) -> Iterator[EmbeddedServer]:
    """A persistent server of this test's own, in ``tmp_path/redis``."""
    with EmbeddedServer(directory=tmp_path / "redis", persistence=True) as server:
        yield server


def _client(server: EmbeddedServer, **kwargs: object) -> redis.Redis:
    return redis.Redis.from_url(server.url, protocol=3, **kwargs)  # type: ignore[arg-type]


def test_a_stall_longer_than_redis_pys_default_timeout_is_not_a_failure(
    own: EmbeddedServer, tmp_path: Path
) -> None:
    """CLIENT PAUSE for 7 s in the middle of the rewrites (redis-py gives up after 5 s by
    default): the run's own connections wait, and the migration succeeds."""
    r = _client(own)
    source(r, "hash")
    made = plan(own.url, CHANGES)
    expected = expected_after(
        snapshot(r), prefix=("doc:", "item:"), renames=[("title", "headline")], datatype="float16"
    )
    paused: list[float] = []

    def pause_once(step: str, done: int, total: int) -> None:
        if step == "rename_keys" and not paused:
            paused.append(time.monotonic())
            _client(own).execute_command("CLIENT", "PAUSE", "7000", "ALL")

    report = MigrationExecutor().apply(
        made, redis_url=own.url, backup_dir=tmp_path / "b", batch_size=10,
        accept_data_loss=True, progress_callback=pause_once,
    )  # fmt: skip

    assert paused and report.result == "succeeded", report.error
    assert time.monotonic() - paused[0] >= 6.5
    assert snapshot(r) == expected


def test_a_lost_connection_reconnects_and_resumes_from_the_journal(
    own: EmbeddedServer, tmp_path: Path
) -> None:
    """With a client whose reads time out after 1 s and the server paused for 3 s, batches
    fail with a timeout: the run reconnects, resumes from the journal, and succeeds with the
    exact result of an undisturbed run."""
    r = _client(own)
    source(r, "hash")
    made = plan(own.url, CHANGES)
    expected = expected_after(
        snapshot(r), prefix=("doc:", "item:"), renames=[("title", "headline")], datatype="float16"
    )
    impatient = redis.Redis.from_url(own.url, protocol=2, socket_timeout=1.0)
    paused: list[bool] = []

    def pause_once(step: str, done: int, total: int) -> None:
        if step == "quantize" and not paused:
            paused.append(True)
            _client(own).execute_command("CLIENT", "PAUSE", "3000", "WRITE")

    report = MigrationExecutor().apply(
        made, client=impatient, backup_dir=tmp_path / "b", batch_size=10,
        accept_data_loss=True, progress_callback=pause_once,
    )  # fmt: skip

    assert report.result == "succeeded", report.error
    assert snapshot(r) == expected
    started = [e.step for e in Journal.read(tmp_path / "b" / INDEX) if isinstance(e, StepStarted)]
    assert len(started) > len(set(started))  # a step was resumed after the timeout


def test_a_server_that_stays_away_fails_the_run_naming_the_setting(
    own: EmbeddedServer, tmp_path: Path
) -> None:
    """A server gone for good ends the run after --reconnect-timeout with a one-line error
    that names the setting and how to resume (exit 1: the run had started)."""
    r = _client(own)
    source(r, "hash")
    made = plan(own.url, CHANGES)
    killed = threading.Event()
    once = threading.Lock()  # progress may be called from several threads at once

    def kill_during_quantize(step: str, done: int, total: int) -> None:
        if step == "quantize":
            with once:
                if not killed.is_set():
                    own.stop()
                    killed.set()

    report = MigrationExecutor().apply(
        made, redis_url=own.url, backup_dir=tmp_path / "b", batch_size=10,
        accept_data_loss=True, progress_callback=kill_during_quantize, reconnect_timeout=1.5,
    )  # fmt: skip

    assert report.result == "failed"
    assert "did not answer for 1.5 s" in report.error
    assert "--reconnect-timeout" in report.error


def test_resume_redoes_what_a_rewound_server_lost(own: EmbeddedServer, tmp_path: Path) -> None:
    """An apply stops after its rewrites; the server then restarts from an RDB older than
    the journal (acknowledged writes lost: the index and the documents are the original
    again). Resume notices another server, does the drop and the rewrites again from the
    backup, and ends exactly where an undisturbed run ends; rollback then restores the
    original (0.1's resume trusted the journal and could never finish)."""
    r = _client(own)
    source(r, "hash")
    original = snapshot(r)
    made = plan(own.url, CHANGES)
    expected = expected_after(
        original, prefix=("doc:", "item:"), renames=[("title", "headline")], datatype="float16"
    )
    r.save()
    assert own.directory is not None
    old_rdb = tmp_path / "old.rdb"
    shutil.copy(own.directory / "dump.rdb", old_rdb)
    backup = tmp_path / "b"

    def stop_after_quantize(step: str, done: int, total: int) -> None:
        if step == "quantize" and done == total:
            raise KeyboardInterrupt

    with pytest.raises(Interrupted):
        MigrationExecutor().apply(
            made, redis_url=own.url, backup_dir=backup, batch_size=10, accept_data_loss=True,
            progress_callback=stop_after_quantize,
        )  # fmt: skip
    own.stop()
    shutil.copy(old_rdb, own.directory / "dump.rdb")
    own.start()
    r = _client(own)
    deadline = time.monotonic() + 10
    while INDEX.encode() not in r.execute_command("FT._LIST") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert snapshot(r) == original

    resumed = MigrationExecutor().resume(backup, redis_url=own.url)

    assert resumed.result == "succeeded", resumed.error
    assert any(isinstance(e, ServerChanged) for e in Journal.read(backup / INDEX))
    assert snapshot(r) == expected
    assert len(r.hget("item:3", "emb") or b"") == DIMS * 2
    assert rollback(backup, redis_url=own.url).result == "rolled_back"
    assert snapshot(r) == original
