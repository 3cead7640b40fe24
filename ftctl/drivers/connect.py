"""Client construction from a URL, and the one place a URL's secret is masked."""

from __future__ import annotations

import os
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


def connect(url: str | None = None, *, protocol: int = 3) -> redis.Redis:
    """A sync client (raw bytes replies) that has answered PING."""
    resolved = resolve_url(url)
    _check_scheme(resolved)
    client = redis.Redis.from_url(resolved, protocol=protocol, decode_responses=False)
    try:
        client.ping()
    except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
        client.close()
        raise ConnectionFailed(
            f"cannot reach Redis at {mask_url(resolved)}: {exc}",
            "start Redis (ftctl server start) or pass --url / set REDIS_URL",
        ) from None
    except redis.AuthenticationError as exc:
        client.close()
        raise ConnectionFailed(
            f"Redis at {mask_url(resolved)} refused the credentials: {exc}",
            "check the user and password in the URL",
        ) from None
    return client


async def async_connect(url: str | None = None, *, protocol: int = 3) -> redis.asyncio.Redis:
    """An asyncio client (raw bytes replies) that has answered PING."""
    resolved = resolve_url(url)
    _check_scheme(resolved)
    client = redis.asyncio.Redis.from_url(resolved, protocol=protocol, decode_responses=False)
    try:
        await client.ping()
    except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
        await client.aclose()
        raise ConnectionFailed(
            f"cannot reach Redis at {mask_url(resolved)}: {exc}",
            "start Redis (ftctl server start) or pass --url / set REDIS_URL",
        ) from None
    return client
