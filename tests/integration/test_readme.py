"""The README's quick start and Python example work as written."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import redis
from click.testing import CliRunner

from ftctl import MigrationExecutor, MigrationPlanner, rollback
from ftctl.cli import cli

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "fixtures"


def _quick_start() -> str:
    """The README's Quick start shell block, verbatim."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1]
    found = re.search(r"```sh\n(.*?)```", section, re.S)
    assert found is not None
    return found.group(1)


def _checkout(destination: Path) -> Path:
    """The files a fresh clone has (tracked, or new and not ignored), as they are now."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, check=True, capture_output=True,
    ).stdout.decode().split("\0")  # fmt: skip
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)
    return destination


def test_readme_quick_start_runs_verbatim_from_a_fresh_checkout(tmp_path: Path) -> None:
    """``pip install '.[server]'`` in a copy of the checkout, then every line of the Quick
    start as written: real documents are planned, applied online, cut over, inspected and
    rolled back. (The new virtual environment sees this one's packages through a ``.pth``
    file, so pip installs ftctl itself and downloads nothing else.)"""
    clone = _checkout(tmp_path / "ftctl")
    script = _quick_start()
    assert script.startswith("python3 -m venv .venv && . .venv/bin/activate\n")
    subprocess.run([sys.executable, "-m", "venv", str(clone / ".venv")], check=True)
    purelib = Path(sysconfig.get_paths(vars={"base": str(clone / ".venv")})["purelib"])
    (purelib / "_ftctl_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("REDIS_URL", "PYTHONPATH", "VIRTUAL_ENV")
    }
    env["FTCTL_SERVER_DIR"] = str(tmp_path / "server")
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script.replace("python3 -m venv .venv && ", "")],
        cwd=clone, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    installed = subprocess.run(
        [str(clone / ".venv" / "bin" / "python"), "-c", "import ftctl; print(ftctl.__file__)"],
        capture_output=True, text=True, check=True, cwd=tmp_path, env=env,
    ).stdout  # fmt: skip
    assert installed.startswith(str(clone / ".venv")), installed  # the package pip installed
    assert "Loaded 3,000 documents (sentence embeddings) into index 'demo_docs'" in out
    assert "Mode: online" in out and "Supported: True" in out
    assert "Result: awaiting_cutover" in out
    assert "Documents: 3,000" in out
    assert "Result: succeeded" in out and "Cut-over at" in out
    assert "run_finished" in out
    assert "Result: rolled_back" in out


def _load(r: redis.Redis, count: int = 50) -> None:
    import numpy as np

    vectors = np.load(FIXTURES / "embeddings" / "minilm-384-3000.npy")[:count]
    pipe = r.pipeline(transaction=False)
    for i, vector in enumerate(vectors):
        pipe.hset(
            f"doc:{i}", mapping={"text": f"text {i}", "module": "m", "embedding": vector.tobytes()}
        )
    pipe.execute()


def test_readme_python_example(redis_url: str, r: redis.Redis, tmp_path: Path) -> None:
    """The README's Python snippet plans, applies and reports; rollback restores the bytes."""
    runner = CliRunner()
    created = runner.invoke(
        cli,
        [
            "--url",
            redis_url,
            "index",
            "create",
            "--schema",
            str(FIXTURES / "schemas" / "demo_docs.yaml"),
        ],
    )
    assert created.exit_code == 0, created.output
    _load(r)
    original = r.hget("doc:7", "embedding")
    patch = FIXTURES / "patches" / "demo_quantize_add_field.yaml"
    plan = MigrationPlanner().create_plan("demo_docs", redis_url=redis_url, schema_patch_path=patch)
    report = MigrationExecutor().apply(plan, redis_url=redis_url, backup_dir=tmp_path / "backups")
    assert report.result == "succeeded"
    assert report.timings.downtime_duration_seconds > 0
    assert rollback(tmp_path / "backups", redis_url=redis_url).result == "rolled_back"
    assert r.hget("doc:7", "embedding") == original
