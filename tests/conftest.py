"""Shared fixtures: one real Redis 8 + Search for the whole session.

The server comes from ``FTCTL_TEST_REDIS_URL`` when set (e.g. docker compose), else from the
embedded launcher. When neither works the integration tests fail loudly; they never skip.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import redis

from ftctl.server import EmbeddedServer


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
