"""Connecting: a refused password and an unreachable server give different one-line errors,
the same from the sync and the asyncio client, and neither shows the URL's secret."""

from __future__ import annotations

from typing import Any

import pytest
import redis
import redis.asyncio

from ftctl.drivers import async_connect, connect, given_client
from ftctl.errors import ConnectionFailed, UsageError

URL = "redis://alice:s3cret@db.example:6380/0"

CASES = [
    pytest.param(
        redis.AuthenticationError("WRONGPASS invalid username-password pair"),
        "refused the credentials",
        id="wrong-password",
    ),
    pytest.param(
        redis.exceptions.AuthenticationWrongNumberOfArgsError("wrong number of arguments"),
        "refused the credentials",
        id="user-on-a-server-without-acls",
    ),
    pytest.param(redis.ConnectionError("Connection refused"), "cannot reach", id="refused"),
    pytest.param(redis.TimeoutError("Timeout connecting"), "cannot reach", id="timeout"),
]


class _FakeClient:
    """A client whose PING fails with ``error``; records whether it was closed."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.closed = False

    def ping(self) -> None:
        raise self.error

    def close(self) -> None:
        self.closed = True


class _FakeAsyncClient:
    """The asyncio twin of :class:`_FakeClient`."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.closed = False

    async def ping(self) -> None:
        raise self.error

    async def aclose(self) -> None:
        self.closed = True


def _fake(monkeypatch: pytest.MonkeyPatch, cls: Any, client: object) -> None:
    monkeypatch.setattr(cls, "from_url", lambda url, **kwargs: client)


def _check(err: ConnectionFailed, expected: str, client: _FakeClient | _FakeAsyncClient) -> None:
    assert expected in err.message
    assert "s3cret" not in err.one_line() and "alice" not in err.one_line()
    assert "***@db.example:6380" in err.message
    assert client.closed


@pytest.mark.parametrize(("error", "expected"), CASES)
def test_sync_connect_names_the_cause(
    monkeypatch: pytest.MonkeyPatch, error: Exception, expected: str
) -> None:
    """A refused password says so (it subclasses ConnectionError, so its branch comes first)."""
    client = _FakeClient(error)
    _fake(monkeypatch, redis.Redis, client)
    with pytest.raises(ConnectionFailed) as caught:
        connect(URL)
    _check(caught.value, expected, client)


@pytest.mark.parametrize(("error", "expected"), CASES)
async def test_async_connect_names_the_cause_like_sync(
    monkeypatch: pytest.MonkeyPatch, error: Exception, expected: str
) -> None:
    """The asyncio client gives the same message as the sync one for the same failure."""
    client = _FakeAsyncClient(error)
    _fake(monkeypatch, redis.asyncio.Redis, client)
    with pytest.raises(ConnectionFailed) as caught:
        await async_connect(URL)
    _check(caught.value, expected, client)


def test_given_client_takes_either_name_once() -> None:
    """redis_client= (RedisVL's name) and its alias client= name the same argument: either
    one, or both with the same client, is that client; none is None."""
    one = redis.Redis()
    assert given_client(one, None) is one
    assert given_client(None, one) is one
    assert given_client(one, one) is one
    assert given_client(None, None) is None


def test_given_client_refuses_two_different_clients() -> None:
    """Two different clients would leave it unclear which server is meant: UsageError."""
    with pytest.raises(UsageError, match="two different clients"):
        given_client(redis.Redis(), redis.Redis())
