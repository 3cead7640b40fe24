"""The embedded server starts, serves Search, and never outlives its owner."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner

from ftctl.cli import cli
from ftctl.errors import RefusedError, ServerUnavailable
from ftctl.server import (
    STATE_DIR_ENV,
    EmbeddedServer,
    default_state_dir,
    free_port,
    not_ours,
    private_dir,
    read_record,
    start_detached,
    stop_detached,
)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(") ", 1)[1].startswith("Z"))


def test_embedded_server_has_search_and_json_and_stops() -> None:
    """A started server answers PING with search and ReJSON loaded; stop ends the process."""
    with EmbeddedServer() as server:
        client = redis.Redis.from_url(server.url)
        names = {entry[b"name"] for entry in client.execute_command("MODULE", "LIST")}
        assert {b"search", b"ReJSON"} <= names
        assert server.process is not None
        pid = server.process.pid
        client.close()
    time.sleep(0.1)
    assert not _pid_alive(pid)


def test_server_dies_when_its_owner_is_killed(tmp_path: Path) -> None:
    """SIGKILL of the Python process that started the server takes the server down too."""
    script = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from ftctl.server import EmbeddedServer
        s = EmbeddedServer(directory=Path({str(tmp_path)!r})).start()
        print(s.process.pid, flush=True)
        time.sleep(60)
        """
    )
    owner = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert owner.stdout is not None
    server_pid = int(owner.stdout.readline())
    assert _pid_alive(server_pid)
    owner.send_signal(signal.SIGKILL)
    owner.wait()
    owner.stdout.close()
    deadline = time.monotonic() + 10
    while _pid_alive(server_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _pid_alive(server_pid)


def test_cli_server_start_status_stop(tmp_path: Path) -> None:
    """`ftctl server start` prints a working URL and writes a pidfile; stop removes both."""
    runner = CliRunner()
    started = runner.invoke(cli, ["server", "start", "--dir", str(tmp_path)])
    assert started.exit_code == 0, started.output
    url = started.stdout.strip().splitlines()[0]
    try:
        assert redis.Redis.from_url(url).ping()
        assert (tmp_path / "ftctl-server.pid").exists()
        again = runner.invoke(cli, ["server", "start", "--dir", str(tmp_path)])
        assert again.exit_code == 2 and "already runs" in again.stderr
        status = runner.invoke(cli, ["server", "status", "--dir", str(tmp_path)])
        assert status.exit_code == 0 and url in status.stdout
    finally:
        stopped = runner.invoke(cli, ["server", "stop", "--dir", str(tmp_path)])
    assert stopped.exit_code == 0 and "stopped" in stopped.stdout
    assert not (tmp_path / "ftctl-server.pid").exists()
    status = runner.invoke(cli, ["server", "status", "--dir", str(tmp_path)])
    assert status.exit_code == 1


def test_stop_refuses_a_pidfile_that_names_another_process(tmp_path: Path) -> None:
    """A pidfile naming an unrelated process (a ``sleep``) is never signalled: stop exits 2
    naming what runs there, the process survives and the pidfile stays; status says the
    server is not running and start replaces the stale record."""
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        (tmp_path / "ftctl-server.pid").write_text(f"{sleeper.pid} {free_port()}\n")
        runner = CliRunner()
        stopped = runner.invoke(cli, ["server", "stop", "--dir", str(tmp_path)])
        assert stopped.exit_code == 2, stopped.output
        assert f"not stopping pid {sleeper.pid}" in stopped.stderr
        assert "not the embedded redis-server" in stopped.stderr
        time.sleep(0.2)
        assert sleeper.poll() is None and _pid_alive(sleeper.pid)
        assert (tmp_path / "ftctl-server.pid").exists()
        status = runner.invoke(cli, ["server", "status", "--dir", str(tmp_path)])
        assert status.exit_code == 1 and "not running" in status.stdout
        started = runner.invoke(cli, ["server", "start", "--dir", str(tmp_path)])
        assert started.exit_code == 0, started.output
        stopped = runner.invoke(cli, ["server", "stop", "--dir", str(tmp_path)])
        assert stopped.exit_code == 0 and "stopped" in stopped.stdout
        assert sleeper.poll() is None
    finally:
        sleeper.kill()
        sleeper.wait()


def test_stop_refuses_a_redis_server_on_another_port(tmp_path: Path) -> None:
    """The pid runs the embedded redis-server but not on the port the pidfile records (a
    server someone else started): stop refuses and that server keeps serving."""
    with EmbeddedServer() as other:
        assert other.process is not None
        other_port = free_port()
        (tmp_path / "ftctl-server.pid").write_text(f"{other.process.pid} {other_port}\n")
        record = read_record(tmp_path)
        assert record is not None
        assert not_ours(record) == (
            f"pid {other.process.pid} (redis-server) does not listen on port {other_port}"
        )
        with pytest.raises(RefusedError, match="does not listen on port"):
            stop_detached(tmp_path)
        assert redis.Redis.from_url(other.url).ping()


def test_the_default_state_dir_is_private_to_the_user(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without $FTCTL_SERVER_DIR the pidfile lives in $XDG_RUNTIME_DIR/ftctl-server, else in
    <tmp>/ftctl-server-<uid>, never a directory shared by every user; a state dir someone
    else can write to (or a symbolic link) is refused before anything starts."""
    monkeypatch.delenv(STATE_DIR_ENV, raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    assert default_state_dir() == tmp_path / "ftctl-server"
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    assert default_state_dir() == tmp_path / f"ftctl-server-{os.getuid()}"
    made = private_dir(default_state_dir())
    assert stat.S_IMODE(made.stat().st_mode) == 0o700
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(ServerUnavailable, match="writable by others"):
        start_detached(directory=shared)
    link = tmp_path / "link"
    link.symlink_to(made)
    with pytest.raises(ServerUnavailable, match="not a directory"):
        private_dir(link)
    assert not (shared / "ftctl-server.pid").exists()


def test_search_module_arguments_reach_the_server() -> None:
    """``search_args`` are passed to the Search module (a server configured like a user's)."""
    with EmbeddedServer(search_args=("PARTIAL_INDEXED_DOCS", "1")) as server:
        client = redis.Redis.from_url(server.url)
        reply = client.execute_command("FT.CONFIG", "GET", "PARTIAL_INDEXED_DOCS")
        client.close()
    assert reply in ({b"PARTIAL_INDEXED_DOCS": b"true"}, [[b"PARTIAL_INDEXED_DOCS", b"true"]])
