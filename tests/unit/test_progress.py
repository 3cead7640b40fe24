"""The rate/ETA meter behind progress lines: no rate from ~0 elapsed, resumed work not counted."""

from __future__ import annotations

import pytest

from ftctl.progress import MIN_SPAN, WINDOW, Meter, duration


def test_no_rate_until_the_window_spans_min_span() -> None:
    """A tick right after the origin gives no rate at all, never documents / ~0 seconds
    (the 800,000,000/s first tick), and no ETA."""
    meter = Meter(100.0, total=50_000)
    meter.update(100.0 + 1e-6, 500)
    assert meter.rate is None and meter.eta is None
    assert meter.fields()["rate"] is None
    meter.update(100.0 + 2 * MIN_SPAN, 1_000)
    assert meter.rate == pytest.approx(1_000 / (2 * MIN_SPAN))


def test_rate_and_eta_from_the_work_since_the_origin() -> None:
    """2,000 documents in 2 s: 1,000/s, and 8,000 left take 8 s."""
    meter = Meter(10.0, total=10_000)
    meter.update(11.0, 1_000)
    meter.update(12.0, 2_000)
    assert meter.rate == pytest.approx(1_000)
    assert meter.eta == pytest.approx(8.0)
    assert meter.fields() == {
        "done": 2_000,
        "total": 10_000,
        "percent": 20.0,
        "rate": 1_000.0,
        "eta_s": 8.0,
        "elapsed_s": 2.0,
    }


def test_a_resumed_step_counts_only_this_runs_work() -> None:
    """The origin holds what earlier runs did: 30,000 of 50,000 already done, 1,000 more in
    one second is 1,000/s (not 31,000/s), and the 19,000 left take 19 s."""
    meter = Meter(0.0, done=30_000, total=50_000)
    meter.update(1.0, 31_000)
    assert meter.rate == pytest.approx(1_000)
    assert meter.eta == pytest.approx(19.0)
    assert meter.fields()["percent"] == 62.0


def test_the_rate_follows_the_last_window() -> None:
    """After a slow start the rate is that of the last WINDOW seconds, not of the whole step
    (an index build that speeds up gets an honest ETA)."""
    meter = Meter(0.0, total=1_000_000)
    meter.update(WINDOW, 1_000)  # slow: 1,000 in the first window
    for second in range(1, int(WINDOW) + 1):
        meter.update(WINDOW + second, 1_000 + 10_000 * second)
    assert meter.rate == pytest.approx(10_000, rel=0.05)


def test_eta_is_zero_once_done_and_unknown_without_a_total() -> None:
    """Reaching the total is ETA 0; with no total there is a rate but no ETA or percent."""
    meter = Meter(0.0, total=100)
    meter.update(1.0, 100)
    assert meter.eta == 0.0
    open_ended = Meter(0.0)
    open_ended.update(1.0, 50)
    assert open_ended.rate == pytest.approx(50)
    assert open_ended.eta is None and open_ended.fields()["percent"] is None


def test_a_count_that_goes_back_gives_no_rate() -> None:
    """num_docs can dip while the server reindexes: no negative rate, no ETA."""
    meter = Meter(0.0, done=10, total=100)
    meter.update(1.0, 5)
    assert meter.rate is None and meter.eta is None


def test_durations_read_as_humans_write_them() -> None:
    """Seconds under a minute, then minutes and seconds, then hours and minutes."""
    assert [duration(s) for s in (None, 4.4, 187, 7_500)] == ["?", "4s", "3m07s", "2h05m"]
