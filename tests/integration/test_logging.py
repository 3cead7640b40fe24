"""What a user sees of a run on stderr: JSON lines, quiet runs, progress when redirected.

Each test runs the real ``ftctl`` console script in a subprocess, as a user, CI or cron
would, so stderr is the process's own (not a test runner's capture) and is not a terminal.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import pytest
import redis
from helpers import patch, plan, source, wait_indexed

from ftctl.plan import dump_plan
from ftctl.planner import MigrationPlanner

FTCTL = Path(sys.executable).with_name("ftctl")
FLOAT16 = {"update_fields": [{"name": "emb", "attrs": {"datatype": "float16"}}]}
PASSWORD = "s3cret-in-the-url"
USER = "ftctl-logging-test"


def ftctl(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``ftctl argv…`` in a subprocess, stdout and stderr captured apart."""
    return subprocess.run(
        [str(FTCTL), *argv],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture
def secret_url(r: redis.Redis, redis_url: str) -> Iterator[str]:
    """The server's URL with a user and password in it (an ACL user made for the test)."""
    r.execute_command("ACL", "SETUSER", USER, "on", f">{PASSWORD}", "~*", "&*", "+@all")
    parts = urlsplit(redis_url)
    yield urlunsplit(parts._replace(netloc=f"{USER}:{PASSWORD}@{parts.netloc}"))
    r.execute_command("ACL", "DELUSER", USER)


def _json_lines(stderr: str) -> list[dict[str, Any]]:
    lines = stderr.splitlines()
    assert lines, "nothing on stderr"
    return [json.loads(line) for line in lines]  # fails on any line that is not one object


def test_json_verbose_plan_and_apply_write_one_object_per_line_and_no_password(
    r: redis.Redis, secret_url: str, tmp_path: Path
) -> None:
    """``--log-format json -v``: planning logs its mode decision and why; apply writes
    only JSON objects on stderr, each with ``event``; every line of the run carries
    ``index``, ``run_id`` and ``step``, debug lines (each batch) included; the password of
    ``--url`` appears nowhere, the masked URL does."""
    source(r, "hash")
    patch_file, plan_file = tmp_path / "patch.yaml", tmp_path / "plan.yaml"
    patch_file.write_text(json.dumps({"version": 1, "changes": FLOAT16}))
    planned = ftctl(
        "--url", secret_url, "--log-format", "json", "migrate", "plan", "--index", "docs",
        "--schema-patch", str(patch_file), "--plan-out", str(plan_file), "--mode", "auto",
        "--immediate-cutover",
    )  # fmt: skip
    assert planned.returncode == 0, planned.stderr
    (decision,) = [e for e in _json_lines(planned.stderr) if e["event"] == "plan made"]
    assert decision["requested_mode"] == "auto" and decision["mode"] == "online"
    assert decision["strategy"] == "expand"
    assert decision["reason"] and decision["index"] == "docs"

    applied = ftctl(
        "--url", secret_url, "--log-format", "json", "-v", "migrate", "apply",
        "--plan", str(plan_file), "--backup-dir", str(tmp_path / "b"), "--accept-data-loss",
        "--batch-size", "20",
    )  # fmt: skip
    assert applied.returncode == 0, applied.stderr
    events = _json_lines(applied.stderr)
    assert all("event" in e and "level" in e and "timestamp" in e for e in events)
    run = [e for e in events if e.get("logger") in ("ftctl.run", "ftctl.progress")]
    assert run == events  # nothing but the run's lines in a healthy apply
    for event in run:
        assert event["index"] == "docs" and event["run_id"] and event["step"], event
    assert len({e["run_id"] for e in run}) == 1
    names = [e["event"] for e in run]
    assert names[0] == "run started" and names[-1] == "run finished"
    assert {"step started", "step finished", "batch done", "check passed"} <= set(names)
    assert run[0]["url"].startswith("redis://***@")
    for output in (planned.stdout, planned.stderr, applied.stdout, applied.stderr):
        assert PASSWORD not in output and USER not in output


def test_quiet_writes_nothing_on_success_and_only_the_error_on_failure(
    r: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    """``-q``: a successful apply leaves stderr empty; one refused by its preflight (the
    source changed after planning) writes the error and nothing else."""
    source(r, "hash")
    plan_file = tmp_path / "plan.yaml"
    plan_file.write_bytes(dump_plan(plan(redis_url, patch(**FLOAT16))))
    ok = ftctl(
        "--url", redis_url, "-q", "migrate", "apply", "--plan", str(plan_file),
        "--backup-dir", str(tmp_path / "ok"), "--accept-data-loss",
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert ok.stderr == ""

    r.flushall()
    source(r, "hash")
    plan_file.write_bytes(dump_plan(plan(redis_url, patch(**FLOAT16))))
    r.execute_command("FT.ALTER", "docs", "SCHEMA", "ADD", "color", "TAG")
    refused = ftctl(
        "--url", redis_url, "-q", "migrate", "apply", "--plan", str(plan_file),
        "--backup-dir", str(tmp_path / "refused"), "--accept-data-loss",
    )  # fmt: skip
    assert refused.returncode == 2
    (line,) = refused.stderr.splitlines()
    assert line.startswith("error: preflight refused") and "source schema mismatch" in line


DOCS_50K = 50_000
INTERVAL = 0.05
"""Seconds between progress lines in the redirected run: each step of a 50k apply takes
0.1 to a few seconds here, so the default of 5 s would give most of them no line at all."""
LONG = 4 * INTERVAL
"""A step that took this long must have written a progress line with rate and ETA."""
_FIELD = re.compile(r"\b(\w+)=('[^']*'|\S+)")
_ANSI = re.compile(r"\x1b\[")


def _load_50k(r: redis.Redis) -> None:
    """50,000 hashes: an 8-dim float32 vector and a tag, under a FLAT index, fully indexed."""
    r.execute_command(
        "FT.CREATE", "big", "ON", "HASH", "PREFIX", "1", "big:", "SCHEMA", "tag", "TAG",
        "emb", "VECTOR", "FLAT", "6", "TYPE", "FLOAT32", "DIM", "8", "DISTANCE_METRIC", "L2",
    )  # fmt: skip
    vectors = np.random.default_rng(7).standard_normal((DOCS_50K, 8)).astype(np.float32)
    pipe = r.pipeline(transaction=False)
    for i, vector in enumerate(vectors):
        pipe.hset(f"big:{i}", mapping={"tag": f"t{i % 7}", "emb": vector.tobytes()})
        if i % 5_000 == 4_999:
            pipe.execute()
    pipe.execute()
    assert not wait_indexed(r, "big", timeout=120).stats.indexing


def _console_fields(line: str) -> dict[str, str]:
    return {k: v.strip("'") for k, v in _FIELD.findall(line)}


def test_a_redirected_50k_apply_logs_progress_with_rate_and_eta_for_every_long_step(
    r: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    """stdout and stderr to a file (CI, nohup, cron): plain console lines, no live line;
    every step that lasts a while writes periodic ``progress`` lines with a rate and an ETA
    (the index build's with ``percent_indexed``), and each step with documents ends with
    its documents per second."""
    _load_50k(r)
    made = MigrationPlanner().create_plan(
        "big",
        redis_url=redis_url,
        schema_patch=patch(update_fields=[{"name": "emb", "attrs": {"datatype": "float16"}}]),
    )
    plan_file = tmp_path / "plan.yaml"
    plan_file.write_bytes(dump_plan(made))
    out = tmp_path / "out.log"
    started = time.monotonic()
    with out.open("w") as sink:
        done = subprocess.run(
            [str(FTCTL), "--url", redis_url, "migrate", "apply", "--plan", str(plan_file),
             "--backup-dir", str(tmp_path / "b"), "--accept-data-loss"],
            stdout=sink, stderr=subprocess.STDOUT, timeout=600,
            env={**os.environ, "FTCTL_PROGRESS_INTERVAL": str(INTERVAL)},
        )  # fmt: skip
    seconds = time.monotonic() - started
    text = out.read_text()
    assert done.returncode == 0, text
    assert not _ANSI.search(text) and "\r" not in text

    finished = {
        f["step"]: f
        for f in map(_console_fields, text.splitlines())
        if "step finished" in text and "step" in f and "seconds" in f
    }
    for step in ("enumerate", "backup", "quantize", "wait"):
        assert int(finished[step]["docs"]) == DOCS_50K and float(finished[step]["rate"]) > 0
    progress: dict[str, list[dict[str, str]]] = {}
    for line in text.splitlines():
        if " progress " in line and "[ftctl.progress]" in line:
            fields = _console_fields(line)
            progress.setdefault(fields["step"], []).append(fields)
    long_steps = [s for s, f in finished.items() if float(f["seconds"]) >= LONG]
    assert "wait" in long_steps, (seconds, finished)
    for step in long_steps:
        measured = [p for p in progress.get(step, []) if p["rate"] != "None"]
        assert measured, f"{step}: no progress line with a rate in {seconds:.1f}s\n{text}"
        assert all(float(p["rate"]) > 0 and float(p["eta_s"]) >= 0 for p in measured)
        assert all(int(p["total"]) == DOCS_50K for p in measured)
    assert all("percent_indexed" in p for p in progress["wait"])
