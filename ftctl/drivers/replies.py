"""Reply normalisation: Redis errors become values or FtctlErrors, once, here."""

from __future__ import annotations

from collections.abc import Sequence

import redis

from ftctl.errors import ConnectionFailed
from ftctl.steps.effects import ReplyError


def wrap_replies(replies: Sequence[object]) -> list[object]:
    """Pipeline replies with each ``ResponseError`` turned into a :class:`ReplyError` value."""
    for reply in replies:
        if isinstance(reply, redis.RedisError) and not isinstance(reply, redis.ResponseError):
            raise translate_connection_error(reply)
    return [value_of(reply) for reply in replies]


def value_of(reply: object) -> object:
    """One raw reply with error replies, also those one level inside an array (EXEC's), as
    :class:`ReplyError` values."""
    if isinstance(reply, redis.ResponseError):
        return ReplyError(str(reply))
    if isinstance(reply, list) and any(isinstance(r, redis.ResponseError) for r in reply):
        return [ReplyError(str(r)) if isinstance(r, redis.ResponseError) else r for r in reply]
    return reply


def translate_connection_error(exc: BaseException) -> ConnectionFailed:
    return ConnectionFailed(
        f"lost the connection to Redis: {exc}",
        "check the server; re-running the same command resumes from the journal",
    )
