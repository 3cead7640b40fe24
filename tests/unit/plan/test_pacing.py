"""Pacing settings: bounds, inheritance (given → journaled → defaults), journal round trip."""

from __future__ import annotations

import pytest

from ftctl.errors import UsageError
from ftctl.plan.pacing import DEFAULT_MAX_CPU, DEFAULT_MAX_LATENCY_MS, Pacing


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ({"max_latency_ms": 0}, "max latency must be a positive number"),
        ({"max_latency_ms": -5}, "max latency must be a positive number"),
        ({"max_cpu": 0}, "max CPU must be a share of one core"),
        ({"max_cpu": 1.5}, "max CPU must be a share of one core"),
    ],
)
def test_out_of_bounds_settings_are_usage_errors(given: dict[str, float], says: str) -> None:
    """A latency that is not positive or a CPU share outside (0, 1] is bad input (exit 2)
    with a hint, before anything runs."""
    with pytest.raises(UsageError, match=says) as raised:
        Pacing(**given)  # type: ignore[arg-type]
    assert raised.value.exit_code == 2 and raised.value.hint


def test_settings_given_win_then_the_journal_then_the_defaults() -> None:
    """Fields left None inherit: a resume that passes only --max-cpu keeps the latency target
    its apply was given; what nobody gave is the default."""
    journaled = Pacing(max_latency_ms=20.0, probe_query="@module:{json}")
    given = Pacing(max_cpu=0.5)
    full = given.over(journaled).resolved()
    assert full == Pacing(
        max_latency_ms=20.0, max_cpu=0.5, probe_query="@module:{json}", throttle=True
    )
    assert Pacing().resolved() == Pacing(
        max_latency_ms=DEFAULT_MAX_LATENCY_MS,
        max_cpu=DEFAULT_MAX_CPU,
        probe_query="",
        throttle=True,
    )
    assert Pacing(throttle=False).over(Pacing(throttle=True)).throttle is False


def test_journaled_options_round_trip_and_old_runs_have_none() -> None:
    """The resolved settings go into run_started.options and come back equal; a run of an
    earlier release journaled none of them (all inherited)."""
    full = Pacing(max_latency_ms=12.5, max_cpu=0.3, throttle=False).resolved()
    options = {"batch_size": 500, **full.as_options()}
    assert Pacing.from_options(options) == full
    assert Pacing.from_options({"batch_size": 500, "workers": 1}) == Pacing()


def test_describe_names_the_probe_and_the_limits() -> None:
    """The one line plan and run output show."""
    line = Pacing().describe()
    assert "KNN 10" in line and "50 ms" in line and "80%" in line
    assert "'@t:{x}'" in Pacing(probe_query="@t:{x}", max_latency_ms=7).describe()
    assert Pacing(throttle=False).describe().startswith("not throttled")
