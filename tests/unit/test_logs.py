"""One logging pipeline: ftctl's events and other libraries' records, console or JSON, on stderr."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator

import pytest
import structlog

from ftctl import logs


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Each test configures logging its way; the process's logging is put back after."""
    root = logging.getLogger()
    handlers, root_level = list(root.handlers), root.level
    levels = {n: logging.getLogger(n).level for n in ("ftctl", "redis", logs.PROGRESS_LOGGER)}
    config = structlog.get_config()
    yield
    logs.show_status(None)
    root.handlers[:] = handlers
    root.setLevel(root_level)
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)
    structlog.configure(**config)
    logs._live = False


def _lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return capsys.readouterr().err.splitlines()


def test_json_is_one_object_per_line_for_ftctl_and_for_redis_py(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """With ``json``, an ftctl event (its bound fields included) and a plain stdlib record
    from redis-py (%-formatted) both come out as one JSON object per line, with ``event``,
    ``level``, ``logger`` and ``timestamp``."""
    logs.configure("json")
    logs.get_logger("ftctl.run").bind(index="docs", run_id="r1").info("step started", step="wait")
    logging.getLogger("redis.connection").warning("lost %s after %d tries", "conn", 3)
    first, second = (json.loads(line) for line in _lines(capsys))
    assert first["event"] == "step started"
    assert (first["index"], first["run_id"], first["step"]) == ("docs", "r1", "wait")
    assert (first["level"], first["logger"]) == ("info", "ftctl.run")
    assert second["event"] == "lost conn after 3 tries"
    assert (second["level"], second["logger"]) == ("warning", "redis.connection")
    assert first["timestamp"].endswith("Z") and second["timestamp"].endswith("Z")


def test_console_is_the_default(capsys: pytest.CaptureFixture[str]) -> None:
    """Without a format: a human line with the event, the logger and key=value fields."""
    logs.configure()
    logs.get_logger("ftctl.run").info("step started", step="wait")
    (line,) = _lines(capsys)
    assert "step started" in line and "[ftctl.run]" in line and "step=wait" in line
    assert not line.startswith("{")


def test_quiet_writes_errors_only(capsys: pytest.CaptureFixture[str]) -> None:
    """``-q``: nothing but errors, ftctl's or another library's (a cron job mails only
    when something failed)."""
    logs.configure("console", -1)
    log = logs.get_logger("ftctl.run")
    log.info("run started")
    logs.get_logger(logs.PROGRESS_LOGGER).info("progress", done=1)
    log.warning("check failed")
    logging.getLogger("redis").warning("retrying")
    log.error("run failed")
    logging.getLogger("redis").error("connection lost")
    lines = _lines(capsys)
    assert len(lines) == 2
    assert "run failed" in lines[0] and "connection lost" in lines[1]


def test_verbose_adds_ftctl_debug_and_twice_every_library_debug(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``-v`` shows ftctl's debug lines (every batch), not other libraries'; ``-vv`` both."""
    for verbosity, expected in ((0, []), (1, ["batch done"]), (2, ["batch done", "read"])):
        logs.configure("json", verbosity)
        logs.get_logger("ftctl.run").debug("batch done")
        logging.getLogger("redis.connection").debug("read")
        assert [json.loads(line)["event"] for line in _lines(capsys)] == expected


def test_context_variables_reach_every_record(capsys: pytest.CaptureFixture[str]) -> None:
    """Fields bound for a run (index, run_id) are on every line written while it runs,
    redis-py's records included."""
    logs.configure("json")
    with structlog.contextvars.bound_contextvars(index="docs", run_id="r9"):
        logs.get_logger("ftctl.drivers.wire").warning("wire fast path unavailable")
        logging.getLogger("redis").warning("retrying")
    for line in _lines(capsys):
        assert {"index": "docs", "run_id": "r9"}.items() <= json.loads(line).items()


def test_fields_named_like_log_record_attributes_are_kept(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``name`` or ``module`` would make logging raise; they are renamed, not lost."""
    logs.configure("json")
    logs.get_logger("ftctl.batch").info("batch index started", name="a_idx", module="m")
    (line,) = _lines(capsys)
    assert json.loads(line)["name_"] == "a_idx" and json.loads(line)["module_"] == "m"


def test_an_unconfigured_library_prints_nothing_on_stdout(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Embedded without the CLI, ftctl leaves output to the application's logging: with
    logging untouched, info goes nowhere, a warning takes logging's last-resort stderr, and
    stdout stays clean."""
    root = logging.getLogger()
    root.handlers[:] = []
    root.setLevel(logging.WARNING)
    logging.getLogger("ftctl").setLevel(logging.NOTSET)
    log = logs.get_logger("ftctl.run")
    log.info("run started", index="docs")
    log.warning("journal locked", index="docs")
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == "journal locked\n"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_live_line_only_on_a_console_terminal_not_quiet(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The live progress line is for humans at a terminal: not in JSON, not with ``-q``, not
    when stderr is a file (CI, nohup, cron get periodic log lines instead)."""
    monkeypatch.setattr(sys, "stderr", _Terminal())
    logs.configure("console", 0)
    assert logs.live_progress()
    logs.configure("json", 0)
    assert not logs.live_progress()
    logs.configure("console", -1)
    assert not logs.live_progress()
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    logs.configure("console", 0)
    assert not logs.live_progress()


def test_log_lines_go_above_the_live_line_and_progress_lines_give_way(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """While a status line shows, a log line clears it, is written, and the status line is
    drawn again below; periodic progress records are dropped (the line says it live) and
    come back once the line is cleared."""
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    logs.configure("json", 0)
    progress = logs.get_logger(logs.PROGRESS_LOGGER)
    logs.show_status("wait  1/2 docs")
    logs.get_logger("ftctl.run").info("check passed")
    progress.info("progress", done=1)
    logs.show_status(None)
    progress.info("progress", done=2)
    written = terminal.getvalue()
    drawn, above, cleared = written.split("\r\x1b[K")[1:]
    assert drawn == "wait  1/2 docs"
    assert json.loads(above.splitlines()[0])["event"] == "check passed"
    assert above.endswith("\nwait  1/2 docs")
    (after,) = cleared.splitlines()
    assert json.loads(after)["event"] == "progress" and json.loads(after)["done"] == 2


def test_console_lines_escape_terminal_control_characters(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """An index name is chosen by whoever can write to Redis: on the console its escape
    sequences, newlines and bells are shown escaped, never sent to the terminal."""
    logs.configure()
    logs.get_logger("ftctl.test").info("plan made", index="evil\x1b[31m\nname\x07")
    (line,) = _lines(capsys)
    assert "\x1b[31m" not in line and "\x07" not in line
    assert "evil\\x1b[31m\\nname\\x07" in line
