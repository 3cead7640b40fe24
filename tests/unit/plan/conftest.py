"""Fixtures of the pure planning tests."""

from __future__ import annotations

import pytest
from planfixtures import make_snapshot

from ftctl.plan.live import LiveSnapshot


@pytest.fixture
def snapshot() -> LiveSnapshot:
    """A hash index 'products' on 'doc:' with text, tag, numeric and a float32 HNSW vector."""
    return make_snapshot()
