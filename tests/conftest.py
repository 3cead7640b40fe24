"""Shared fixtures: one real Redis 8 + Search for the whole session.

The server comes from ``FTCTL_TEST_REDIS_URL`` when set (e.g. docker compose), else from the
embedded launcher. When neither works the integration tests fail loudly; they never skip.

Every test that needs the server is marked ``integration`` here, in one place, so
``pytest -m "not integration"`` runs without one (see :func:`pytest_collection_modifyitems`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from ftctl.server import EmbeddedServer

SERVER_DIRS = tuple(Path(__file__).parent / name for name in ("integration", "crash"))
"""Test directories whose tests all run against the real server (some start their own)."""


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark ``integration`` every test under :data:`SERVER_DIRS` and any other test that asks
    for ``redis_url`` (directly or through ``r``): ``-m "not integration"`` deselects them
    before any fixture is set up, so no server is started or contacted."""
    for item in items:
        in_server_dir = any(item.path.is_relative_to(d) for d in SERVER_DIRS)
        if in_server_dir or "redis_url" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """URL of the session's real server (started here unless FTCTL_TEST_REDIS_URL is set)."""
    url = os.environ.get("FTCTL_TEST_REDIS_URL")
    if url:
        yield url
        return
    with EmbeddedServer() as server:
        yield server.url


@pytest.fixture(params=[3, 2], ids=["resp3", "resp2"])
def protocol(request: pytest.FixtureRequest) -> int:
    """Both RESP versions, for tests that must hold under either."""
    value: int = request.param
    return value


@pytest.fixture
def r(redis_url: str) -> Iterator[redis.Redis]:
    """A RESP3 raw-bytes client on a flushed server (indexes and keys gone after the test)."""
    client = redis.Redis.from_url(redis_url, protocol=3)
    client.flushall()
    yield client
    client.flushall()
    client.close()
