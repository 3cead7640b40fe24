"""Fixtures of the unit tests: nothing here starts or needs a server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fakestore import FakeStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[FakeStore]:
    """An empty fakeredis keyspace, the real sync driver on it, a fresh journal."""
    made = FakeStore(tmp_path / "backup")
    yield made
    made.close()
