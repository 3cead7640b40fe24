"""The embedded server starts, serves Search, and never outlives its owner."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import redis
from click.testing import CliRunner

from ftctl.cli import cli
from ftctl.server import EmbeddedServer


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
