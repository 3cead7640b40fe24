"""Rendering helpers of the CLI: the live progress line (drawn only when live, rate from a
window after the first tick) and the index state line of ``index info``."""

from __future__ import annotations

import math

import pytest

from ftctl import logs
from ftctl.cli import render
from ftctl.cli.render import Progress
from ftctl.schema.ftinfo import indexing_state


class _Screen:
    """Collects what the progress line draws, on a clock the test moves."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.now = 50.0
        self.drawn: list[str | None] = []
        monkeypatch.setattr(render.time, "monotonic", lambda: self.now)
        monkeypatch.setattr(logs, "show_status", self.drawn.append)


def test_the_first_tick_has_no_rate_then_rate_and_eta_appear(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The first tick (a batch already done) shows the count and no rate, never
    documents / ~0 s; once the ticks span MIN_SPAN the rate and ETA follow."""
    screen = _Screen(monkeypatch)
    progress = Progress(enabled=True)
    progress("quantize", 500, 50_000)
    assert screen.drawn[-1] is not None
    assert "500/50,000 docs" in screen.drawn[-1] and "-/s" in screen.drawn[-1]
    assert "ETA ?" in screen.drawn[-1]
    screen.now += 2.0
    progress("quantize", 2_500, 50_000)
    line = screen.drawn[-1]
    assert line is not None and "1,000/s" in line and "ETA 48s" in line and "5.0%" in line
    progress.close()
    assert screen.drawn[-1] is None


def test_a_resumed_step_rates_only_this_runs_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """The first tick of a resumed step already counts earlier runs' 30,000 documents;
    the rate is what this run adds."""
    screen = _Screen(monkeypatch)
    progress = Progress(enabled=True)
    progress("quantize", 30_000, 50_000)
    screen.now += 4.0
    progress("quantize", 32_000, 50_000)
    line = screen.drawn[-1]
    assert line is not None and "500/s" in line and "ETA 36s" in line


def test_redraws_are_throttled_and_a_new_step_starts_afresh(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """At most one redraw per REDRAW seconds (the last tick of a step always); a new step
    gets its own meter."""
    screen = _Screen(monkeypatch)
    progress = Progress(enabled=True)
    progress("backup", 500, 1_000)
    progress("backup", 600, 1_000)
    assert len(screen.drawn) == 1
    progress("backup", 1_000, 1_000)
    assert len(screen.drawn) == 2
    screen.now += 1.0
    progress("wait", 10, 1_000)
    line = screen.drawn[-1]
    assert line is not None and line.startswith("wait") and "-/s" in line


def test_nothing_is_drawn_unless_live(monkeypatch: pytest.MonkeyPatch) -> None:
    """Off a terminal, in JSON or with -q (logs.live_progress() false) it stays silent:
    the run's periodic progress log lines take over."""
    screen = _Screen(monkeypatch)
    monkeypatch.setattr(logs, "_live", False)
    progress = Progress()
    progress("quantize", 500, 1_000)
    progress.close()
    assert screen.drawn == []


def test_an_index_that_is_not_indexing_is_ready() -> None:
    """indexing 0 is ready, whatever percent_indexed says (it may lag or exceed 1)."""
    assert indexing_state(False, 1.0) == "ready"
    assert indexing_state(False, 2.17) == "ready"
    assert indexing_state(False, 0.4) == "ready"


@pytest.mark.parametrize(
    ("fraction", "shown"),
    [
        (0.0, "indexing (0%)"),
        (0.004833, "indexing (0%)"),
        (0.5, "indexing (50%)"),
        (0.736, "indexing (73%)"),
        (0.999, "indexing (99%)"),
        (1.0, "indexing (99%)"),
        (1.54, "indexing (99%)"),
        (2.1744833333333333, "indexing (99%)"),
        (-0.1, "indexing (0%)"),
    ],
)
def test_indexing_share_is_a_clamped_rounded_down_percentage(fraction: float, shown: str) -> None:
    """percent_indexed is a 0..1 fraction of keys scanned over the keys present when the scan
    began; writes during the scan push it past 1 (2.17 seen on RediSearch 2.10). While
    indexing, the share shown stays within 0..99% and never rounds up to a finished 100%."""
    assert indexing_state(True, fraction) == shown


def test_an_undefined_share_shows_no_number() -> None:
    """A NaN percent_indexed shows just 'indexing', not 'nan%'."""
    assert indexing_state(True, math.nan) == "indexing"
