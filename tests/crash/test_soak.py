"""Smoke test of the random-kill soak (``bench/soak.py``): it runs, kills, recovers, checks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SOAK = Path(__file__).resolve().parents[2] / "bench" / "soak.py"


def test_soak_with_two_kills_recovers_every_migration_byte_for_byte(redis_url: str) -> None:
    """Two random kills (small data, the session's server): every migration is recovered
    and its documents match the expected state byte for byte; the summary says so."""
    argv = [sys.executable, str(SOAK), "--kills", "2", "--docs", "100", "--seed", "7"]
    done = subprocess.run(
        [*argv, "--url", redis_url], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    lines = done.stdout.splitlines()
    kills = next(line for line in lines if line.startswith("kills: "))
    assert int(kills.split()[1]) >= 2
    checks = next(line for line in lines if line.startswith("byte-exact checks: "))
    assert " 0 failed " in checks and not checks.startswith("byte-exact checks: 0 passed")
    assert any(line.startswith("wall time: ") for line in lines)
