"""No credential leaves ftctl: every workflow through the CLI against a password-protected
server, once per form in which redis-py reads a secret from a URL, then a grep of every file
ftctl wrote and every line it printed for the passwords and the user; error paths too.

DESIGN.md §5c: ftctl never writes a credential into a log, a plan, a report or the journal.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
import redis
import zstandard
from click.testing import CliRunner, Result
from helpers import INDEX, source

from ftctl.cli import cli
from ftctl.drivers import mask_url
from ftctl.journal import Journal
from ftctl.journal.events import BatchRunStarted, RunStarted
from ftctl.plan import dump_plan, load_plan, patch_from_builtins
from ftctl.plan.batch import load_batch_plan
from ftctl.planner import MigrationPlanner
from ftctl.server import EmbeddedServer, free_port

PASSWORD = "S3cr3t-Zq9@/:#"
"""The default user's password (``requirepass``); its reserved characters must be encoded."""
ACL_USER = "ops-Kx7q"
ACL_PASSWORD = "Acl-W8v2@/:#"
WRONG = "Wr0ng-Pq4@/:#"
SECRETS = [ACL_USER, WRONG, *(p for s in (PASSWORD, ACL_PASSWORD) for p in (s, quote(s, safe="")))]
"""What no file or output may hold: each password raw and percent-encoded, and the user."""
NEEDLES = sorted({*SECRETS, "S3cr3t-Zq9", "Acl-W8v2", "Wr0ng-Pq4"})
"""Plus each password's distinctive head, which catches a password cut in two."""

FLOAT16 = {
    "version": 1,
    "changes": {"update_fields": [{"name": "emb", "attrs": {"datatype": "float16"}}]},
}
HNSW_M = {"version": 1, "changes": {"update_fields": [{"name": "emb", "attrs": {"m": 8}}]}}


@pytest.fixture(scope="module")
def locked() -> Iterator[tuple[int, redis.Redis]]:
    """A server of its own whose default user needs PASSWORD, with an ACL user ACL_USER
    (password ACL_PASSWORD, every key and command); yields its port and an admin client."""
    with EmbeddedServer() as server:
        setup = redis.Redis(host="127.0.0.1", port=server.port)
        setup.acl_setuser(
            ACL_USER,
            enabled=True,
            passwords=[f"+{ACL_PASSWORD}"],
            keys=["*"],
            channels=["*"],
            commands=["+@all"],
        )
        setup.config_set("requirepass", PASSWORD)
        setup.close()
        admin = redis.Redis(host="127.0.0.1", port=server.port, password=PASSWORD, protocol=3)
        yield server.port, admin
        admin.close()


def _form(form: str, port: int) -> str:
    """The URL of ``form``: each way redis-py takes the user and the password."""
    pw, acl_pw = quote(PASSWORD, safe=""), quote(ACL_PASSWORD, safe="")
    return {
        "userinfo": f"redis://:{pw}@127.0.0.1:{port}/0",
        "password-query": f"redis://127.0.0.1:{port}/0?password={pw}",
        "username-password-query": (
            f"redis://127.0.0.1:{port}/0?username={ACL_USER}&password={acl_pw}"
        ),
        "acl-user": f"redis://{ACL_USER}:{acl_pw}@127.0.0.1:{port}/0",
    }[form]


class _Ftctl:
    """Runs ftctl commands with one URL and log format, keeping everything they print."""

    def __init__(self, url: str, log_format: str, *, via_env: bool = False) -> None:
        self.url = url
        self.via_env = via_env
        self.log_format = log_format
        self.printed: list[str] = []

    def __call__(self, *args: str, expect: int = 0) -> Result:
        head = [] if self.via_env else ["--url", self.url]
        argv = [*head, "--log-format", self.log_format, "-v", *args]
        result = CliRunner().invoke(
            cli, argv, env={"REDIS_URL": self.url if self.via_env else None}
        )
        self.printed += [result.stdout, result.stderr]
        assert result.exit_code == expect, (args, result.output, result.exception)
        assert "Traceback" not in result.output
        return result


def _files(root: Path) -> Iterator[tuple[Path, bytes]]:
    """Every file under ``root`` as bytes; zstd segments also decompressed."""
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        yield path, data
        if path.suffix == ".zst":
            reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data))
            yield path, reader.read()


def _assert_no_secret(text: str | bytes, where: object) -> None:
    blob = text if isinstance(text, bytes) else text.encode()
    found = [n for n in NEEDLES if n.encode() in blob or n.lower().encode() in blob.lower()]
    assert not found, f"{found} in {where}"


def _recorded_urls(root: Path) -> list[str]:
    """``redis_url`` of every run start in every journal under ``root``."""
    urls = []
    for log in root.rglob("journal.log"):
        for event in Journal.read(log.parent):
            if isinstance(event, RunStarted | BatchRunStarted):
                urls.append(event.redis_url)
    return urls


@pytest.mark.parametrize("log_format", ["console", "json"])
@pytest.mark.parametrize(
    "form", ["userinfo", "password-query", "username-password-query", "acl-user"]
)
def test_no_secret_in_any_file_or_output(
    locked: tuple[int, redis.Redis],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    form: str,
    log_format: str,
) -> None:
    """plan, apply, validate, report, journal inspect, rollback, batch-plan, batch-apply,
    batch-status and an online (shadow) apply --async and rollback, all at -v, leave no
    password or user in any plan, batch plan, report, state file, journal or segment, nor in
    stdout or stderr; the URL each file records is the masked one."""
    port, admin = locked
    admin.flushall()
    source(admin)
    monkeypatch.chdir(tmp_path)  # a default output path lands here too, and is grepped
    url = _form(form, port)
    ftctl = _Ftctl(url, log_format, via_env=form == "acl-user")
    (tmp_path / "float16.yaml").write_bytes(json.dumps(FLOAT16).encode())
    (tmp_path / "hnsw.yaml").write_bytes(json.dumps(HNSW_M).encode())

    ftctl("index", "listall")
    ftctl("index", "info", "--index", INDEX)
    ftctl("migrate", "plan", "--index", INDEX, "--schema-patch", "float16.yaml",
          "--plan-out", "plan.yaml", "--mode", "drop_recreate")  # fmt: skip
    ftctl("migrate", "apply", "--plan", "plan.yaml", "--backup-dir", "bk", "--accept-data-loss",
          "--report-out", "report.yaml", "--benchmark-out", "bench.yaml")  # fmt: skip
    ftctl("migrate", "validate", "--plan", "plan.yaml", "--report-out", "validate.yaml")
    ftctl("migrate", "report", "--backup-dir", "bk", "--report-out", "report-again.yaml")
    ftctl("migrate", "journal", "inspect", "--backup-dir", "bk")
    ftctl("migrate", "journal", "inspect", "--backup-dir", "bk", "--json")
    ftctl("migrate", "rollback", "--backup-dir", "bk")
    ftctl("migrate", "batch-plan", "--indexes", INDEX, "--schema-patch", "float16.yaml",
          "--plan-out", "batch/batch_plan.yaml")  # fmt: skip
    ftctl("migrate", "batch-apply", "--plan", "batch/batch_plan.yaml", "--backup-dir", "bbk",
          "--state", "batch/state.yaml", "--report-dir", "batch/reports",
          "--accept-data-loss")  # fmt: skip
    ftctl("migrate", "batch-status", "--state", "batch/state.yaml")
    ftctl("migrate", "batch-status", "--state", "batch/state.yaml", "--json")
    ftctl("migrate", "plan", "--index", INDEX, "--schema-patch", "hnsw.yaml",
          "--plan-out", "online.yaml", "--mode", "online")  # fmt: skip
    ftctl("migrate", "apply", "--plan", "online.yaml", "--backup-dir", "obk", "--async",
          "--report-out", "online_report.yaml")  # fmt: skip
    ftctl("migrate", "rollback", "--backup-dir", "obk", "--async")
    ftctl("migrate", "journal", "inspect", "--backup-dir", "obk", "--json")

    written = list(_files(tmp_path))
    kinds = {p.suffix for p, _ in written}
    assert {".yaml", ".log", ".zst"} <= kinds, kinds
    for path, data in written:
        _assert_no_secret(data, path)
    printed = "".join(ftctl.printed)
    _assert_no_secret(printed, "the output")
    masked = mask_url(url)
    assert "***" in masked
    assert load_plan(tmp_path / "plan.yaml").redis_url == masked
    assert load_plan(tmp_path / "online.yaml").mode == "online"
    assert load_batch_plan(tmp_path / "batch/batch_plan.yaml").redis_url == masked
    recorded = _recorded_urls(tmp_path)
    assert len(recorded) >= 6 and masked in recorded
    # a batch records each index's run with its connection's address, which has no secret
    assert all(u == masked or u == f"redis://127.0.0.1:{port}/0" for u in recorded)
    assert "run started" in printed  # the logs were captured, at debug level
    if log_format == "json":
        assert any(line.startswith("{") and '"event"' in line for line in printed.splitlines())


# --- error paths ----------------------------------------------------------------------------


def _error_urls(port: int) -> list[tuple[str, str, str]]:
    closed = free_port()
    pw, acl_pw, wrong = (quote(s, safe="") for s in (PASSWORD, ACL_PASSWORD, WRONG))
    return [
        ("wrong-password", f"redis://:{wrong}@127.0.0.1:{port}/0", "refused the credentials"),
        ("wrong-password-query", f"redis://127.0.0.1:{port}/0?password={wrong}",
         "refused the credentials"),
        ("wrong-acl-password", f"redis://{ACL_USER}:{wrong}@127.0.0.1:{port}/0",
         "refused the credentials"),
        ("wrong-acl-password-query",
         f"redis://127.0.0.1:{port}/0?username={ACL_USER}&password={wrong}",
         "refused the credentials"),
        ("bad-port", f"redis://{ACL_USER}:{acl_pw}@127.0.0.1:{PASSWORD[:4]}/0",
         "is not a valid Redis URL"),
        ("unencoded-slash", f"redis://{ACL_USER}:Acl-W8v2/x@127.0.0.1:{port}/0",
         "is not a valid Redis URL"),
        ("unknown-option", f"redis://127.0.0.1:{port}/0?password={pw}&token={pw}",
         "is not a valid Redis URL"),
        ("unreachable", f"redis://:{pw}@127.0.0.1:{closed}/0", "cannot reach Redis"),
        ("unreachable-query", f"redis://127.0.0.1:{closed}/0?password={pw}", "cannot reach Redis"),
        ("unreachable-unix", f"unix://{ACL_USER}:{acl_pw}@/nonexistent/ftctl.sock?db=0",
         "cannot reach Redis"),
    ]  # fmt: skip


@pytest.mark.parametrize("log_format", ["console", "json"])
def test_connection_errors_are_one_masked_line_and_exit_2(
    locked: tuple[int, redis.Redis], tmp_path: Path, log_format: str
) -> None:
    """A wrong password (default or ACL user, user info or query), a bad port, a password
    with an unencoded '/', an unknown option, and an unreachable host or socket: each command
    that connects (index, plan, batch-plan, apply, apply --async) exits 2 with one 'error:'
    line naming the masked URL, no traceback, and no password or user anywhere it printed."""
    port, admin = locked
    admin.flushall()
    source(admin)
    patch = tmp_path / "float16.yaml"
    patch.write_bytes(json.dumps(FLOAT16).encode())
    plan_file = tmp_path / "plan.yaml"
    planned = MigrationPlanner().create_plan(
        INDEX, redis_client=admin, schema_patch=patch_from_builtins(FLOAT16)
    )
    plan_file.write_bytes(dump_plan(planned))
    commands = [
        ["index", "listall"],
        ["migrate", "plan", "--index", INDEX, "--schema-patch", str(patch),
         "--plan-out", str(tmp_path / "p.yaml")],
        ["migrate", "batch-plan", "--indexes", INDEX, "--schema-patch", str(patch),
         "--plan-out", str(tmp_path / "b.yaml")],
        ["migrate", "apply", "--plan", str(plan_file), "--backup-dir", str(tmp_path / "bk"),
         "--accept-data-loss"],
        ["migrate", "apply", "--plan", str(plan_file), "--backup-dir", str(tmp_path / "bk"),
         "--accept-data-loss", "--async"],
    ]  # fmt: skip
    for name, url, expected in _error_urls(port):
        for args in commands:
            ftctl = _Ftctl(url, log_format)
            result = ftctl(*args, expect=2)
            errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
            assert len(errors) == 1 and expected in errors[0], (name, args, result.stderr)
            assert mask_url(url) in errors[0]
            assert isinstance(result.exception, SystemExit)
            _assert_no_secret("".join(ftctl.printed), (name, args))
    assert not (tmp_path / "bk").exists() and not (tmp_path / "p.yaml").exists()
