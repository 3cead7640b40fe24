"""Client construction from a URL, and the one place a URL's secret is masked."""

from __future__ import annotations

import os
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit

import redis
import redis.asyncio

from ftctl.errors import ConnectionFailed, UsageError

DEFAULT_URL = "redis://localhost:6379"


def resolve_url(url: str | None) -> str:
    """The URL to use: the given one, then ``$REDIS_URL``, then ``redis://localhost:6379``."""
    return url or os.environ.get("REDIS_URL") or DEFAULT_URL


def mask_url(url: str) -> str:
    """The URL with its user and password replaced by ``***`` (safe to log and persist)."""
    parts = urlsplit(url)
    if parts.password is None and parts.username is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, f"***@{host}", parts.path, parts.query, parts.fragment))


def client_url(client: redis.Redis | redis.asyncio.Redis) -> str:
    """Where a client given without a URL connects, as a URL to record in a journal.

    Built from the pool's connection settings, so it never holds the password; a Unix
    socket client gives ``unix://<path>``.
    """
    kwargs = client.connection_pool.connection_kwargs
    if "path" in kwargs:
        return f"unix://{kwargs['path']}"
    return f"redis://{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}/{kwargs.get('db', 0)}"


def _check_scheme(url: str) -> None:
    if urlsplit(url).scheme not in {"redis", "rediss", "unix"}:
        raise UsageError(
            f"'{mask_url(url)}' is not a Redis URL",
            "use redis://host:port, rediss://host:port or unix:///path.sock",
        )


_CREDENTIALS_REFUSED = (
    redis.AuthenticationError,
    # AUTH with a user name against a server without ACLs (Redis < 6)
    redis.exceptions.AuthenticationWrongNumberOfArgsError,
)
"""What PING raises when the server refuses the URL's user or password. AuthenticationError
subclasses ConnectionError, so these must be caught before :data:`_UNREACHABLE`."""

_UNREACHABLE = (redis.ConnectionError, redis.TimeoutError, OSError)


def _credentials_refused(url: str, exc: Exception) -> ConnectionFailed:
    return ConnectionFailed(
        f"Redis at {mask_url(url)} refused the credentials: {exc}",
        "check the user and password in the URL",
    )


def _unreachable(url: str, exc: Exception) -> ConnectionFailed:
    return ConnectionFailed(
        f"cannot reach Redis at {mask_url(url)}: {exc}",
        "start Redis (ftctl server start) or pass --url / set REDIS_URL",
    )


def connect(url: str | None = None, *, protocol: int = 3) -> redis.Redis:
    """A sync client (raw bytes replies) that has answered PING."""
    resolved = resolve_url(url)
    _check_scheme(resolved)
    client = redis.Redis.from_url(resolved, protocol=protocol, decode_responses=False)
    try:
        client.ping()
    except _CREDENTIALS_REFUSED as exc:
        client.close()
        raise _credentials_refused(resolved, exc) from None
    except _UNREACHABLE as exc:
        client.close()
        raise _unreachable(resolved, exc) from None
    return client


async def async_connect(url: str | None = None, *, protocol: int = 3) -> redis.asyncio.Redis:
    """An asyncio client (raw bytes replies) that has answered PING."""
    resolved = resolve_url(url)
    _check_scheme(resolved)
    client = redis.asyncio.Redis.from_url(resolved, protocol=protocol, decode_responses=False)
    try:
        await client.ping()
    except _CREDENTIALS_REFUSED as exc:
        await client.aclose()
        raise _credentials_refused(resolved, exc) from None
    except _UNREACHABLE as exc:
        await client.aclose()
        raise _unreachable(resolved, exc) from None
    return client


ClientT = TypeVar("ClientT", redis.Redis, redis.asyncio.Redis)


def given_client(redis_client: ClientT | None, client: ClientT | None) -> ClientT | None:
    """The caller's client, passed as ``redis_client=`` (RedisVL's name) or ``client=``.

    ``client=`` is kept as an alias where the API first had it; giving two different clients
    is a :class:`UsageError`, since it is not clear which server the caller means.
    """
    if redis_client is not None and client is not None and redis_client is not client:
        raise UsageError(
            "two different clients were given (redis_client= and client=)",
            "pass one, as redis_client=",
        )
    return redis_client if redis_client is not None else client
