"""Replies off a redis-py connection (sync or asyncio), without per-command bookkeeping.

redis-py's pipeline spends several microseconds per command in Python (argument checks,
callbacks, per-reply reads); a batch of 500 writes spends more time there than in Redis.
Here a batch is packed by hiredis in one pass and, on a RESP2 connection with the hiredis
parser, its replies are taken straight off the parser's reader (the one place ftctl reaches
into redis-py's internals). Anything else (RESP3 with its push messages, another parser, a
connection class with its own ``read_response`` such as fakeredis') goes through the
connection's ``read_response``, one reply at a time: slower, same replies.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis
import redis.asyncio.connection
import redis.connection

from ftctl.drivers.interpreter import tuning_enabled
from ftctl.drivers.replies import value_of
from ftctl.logs import get_logger

log = get_logger("ftctl.drivers.wire")

try:  # redis-py internals: should a release move them, every reply takes the public path
    from redis._parsers import hiredis as _internals
except ImportError:  # pragma: no cover - depends on the installed redis-py
    _internals = None  # type: ignore[assignment]

SYNC_PARSER: type | None = getattr(_internals, "_HiredisParser", None)
ASYNC_PARSER: type | None = getattr(_internals, "_AsyncHiredisParser", None)
NOT_ENOUGH_DATA: object = getattr(_internals, "NOT_ENOUGH_DATA", None)

_PARSER_READS: tuple[object, ...] = tuple(
    read
    for base in (redis.connection.AbstractConnection, redis.asyncio.connection.AbstractConnection)
    if (read := getattr(base, "read_response", None)) is not None
)
"""redis-py's own ``read_response``s, the ones that read replies through ``_parser``."""


_INTERNALS_MOVED = "redis-py's hiredis parser internals are not where ftctl expects them"

_told: set[tuple[str, str]] = set()


def _slow_path(connection: Any, reason: str) -> None:
    """Log once per process, reason and connection class, that replies take the public
    path. Only a redis-py without the expected internals is worth a warning (every run is
    slower until redis is pinned below 9, see pyproject.toml); a RESP3 or fakeredis
    connection is a choice, logged at debug."""
    told = (reason, type(connection).__name__)
    if told in _told:
        return
    _told.add(told)
    level = log.warning if reason == _INTERNALS_MOVED else log.debug
    level("wire fast path unavailable", reason=reason, connection=told[1])


def _direct_reader(connection: Any, kind: type | None) -> tuple[Any, Any] | None:
    """(parser, hiredis reader) when replies can be taken off the reader directly."""
    parser = getattr(connection, "_parser", None)
    if kind is None or NOT_ENOUGH_DATA is None:
        _slow_path(connection, _INTERNALS_MOVED)
        return None
    if str(getattr(connection, "protocol", 2)) != "2":
        _slow_path(connection, "RESP3 connection (push messages need redis-py's reader)")
        return None
    if getattr(type(connection), "read_response", None) not in _PARSER_READS:
        # fakeredis has no socket
        _slow_path(connection, "the connection class reads its replies itself")
        return None
    if not isinstance(parser, kind):
        _slow_path(connection, f"the connection's parser is {type(parser).__name__}, not hiredis")
        return None
    if not hasattr(parser, "read_from_socket"):
        _slow_path(connection, _INTERNALS_MOVED)
        return None
    reader = getattr(parser, "_reader", None)
    if reader is None:
        _slow_path(connection, "the parser has no reader (not connected)")
        return None
    return parser, reader


@contextmanager
def _no_cycle_collection() -> Iterator[None]:
    """Pause the cyclic garbage collector (switched back on after, unless it was off).

    Leaves it alone while :func:`ftctl.drivers.tuning` is off.
    """
    if not tuning_enabled():
        yield
        return
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


_PLAIN = frozenset({bytes, int, type(None)})
"""Reply types that are never errors and hold no nested errors."""


def _take_buffered(gets: Any, replies: list[object], count: int) -> None:
    """Parse the replies already received, up to ``count`` in all, into ``replies``.

    The cyclic collector is paused meanwhile (never while waiting for the socket): a page of
    5,000 aggregate rows allocates 5,000 lists, every 700 allocations trigger a collection,
    and now and then one walks every object of the process. Parsed replies are plain data
    with no cycles, so the collector has nothing to find in them.
    """
    append = replies.append
    with _no_cycle_collection():
        while len(replies) < count:
            reply = gets()
            if reply is NOT_ENOUGH_DATA:
                return
            if reply.__class__ in _PLAIN:
                append(reply)  # most replies: skip the error checks below
            elif isinstance(reply, redis.ConnectionError):
                raise reply
            else:
                append(value_of(reply))


def read_replies(connection: Any, count: int) -> list[object]:
    """``count`` raw replies, errors as :class:`ReplyError` values."""
    direct = _direct_reader(connection, SYNC_PARSER)
    replies: list[object] = []
    if direct is None:
        for _ in range(count):
            try:
                reply = connection.read_response()
            except redis.ResponseError as exc:
                reply = exc
            replies.append(value_of(reply))
        return replies
    parser, reader = direct
    _take_buffered(reader.gets, replies, count)
    while len(replies) < count:
        parser.read_from_socket()
        _take_buffered(reader.gets, replies, count)
    return replies


async def read_replies_async(connection: Any, count: int) -> list[object]:
    """:func:`read_replies` for a redis.asyncio connection."""
    direct = _direct_reader(connection, ASYNC_PARSER)
    replies: list[object] = []
    if direct is None:
        for _ in range(count):
            try:
                reply = await connection.read_response()
            except redis.ResponseError as exc:
                reply = exc
            replies.append(value_of(reply))
        return replies
    parser, reader = direct
    _take_buffered(reader.gets, replies, count)
    while len(replies) < count:
        await parser.read_from_socket()
        _take_buffered(reader.gets, replies, count)
    return replies
