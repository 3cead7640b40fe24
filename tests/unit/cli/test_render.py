"""Rendering helpers of the CLI: the index state line of ``index info``."""

from __future__ import annotations

import math

import pytest

from ftctl.cli.render import indexing_state


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
