"""Index catalog operations behind ``ftctl index``: list, info, create, delete (sans-IO)."""

from __future__ import annotations

from datetime import UTC, datetime

from ftctl.errors import RedisCommandError, RefusedError, UsageError
from ftctl.schema.ftinfo import IndexInfo, parse_ft_info
from ftctl.schema.model import IndexSchema
from ftctl.schema.render import create_argv
from ftctl.steps.effects import Commands, ReplyError, Step, single
from ftctl.steps.history import delete_history, write_history
from ftctl.steps.replies import is_unknown_index, text
from ftctl.text import printable


def list_indexes() -> Step[list[str]]:
    """The index names on the server, sorted.

    A name that is not UTF-8 is decoded with ``surrogateescape``: passed back to ftctl it
    names the same index; shown to a human it goes through :func:`ftctl.text.printable`.
    """
    reply = single((yield Commands([("FT._LIST",)])))
    if isinstance(reply, ReplyError):
        raise RedisCommandError("FT._LIST", reply.message, "is the search module loaded?")
    names = reply if isinstance(reply, list | set | tuple) else []
    return sorted(
        n.decode("utf-8", "surrogateescape") if isinstance(n, bytes) else text(n) for n in names
    )


def index_info(name: str) -> Step[IndexInfo]:
    """FT.INFO of ``name`` parsed; an unknown index is a UsageError with a hint."""
    reply = single((yield Commands([("FT.INFO", name)])))
    if is_unknown_index(reply):
        raise UsageError(f"index '{printable(name)}' does not exist", "run 'ftctl index listall'")
    if isinstance(reply, ReplyError):
        raise RedisCommandError("FT.INFO", reply.message)
    return parse_ft_info(reply)


def create_with_history(schema: IndexSchema, *, version: str = "") -> Step[None]:
    """FT.CREATE ``schema`` (refused if the name is taken) and record it as schema history."""
    if schema.name in (yield from list_indexes()):
        raise RefusedError(
            f"index '{printable(schema.name)}' already exists",
            "delete it first (ftctl index delete) or change index.name",
        )
    reply = single((yield Commands([tuple(create_argv(schema))])))
    if isinstance(reply, ReplyError):
        raise UsageError(f"the server refused the schema: {reply.message}", "fix the schema file")
    yield from write_history(
        schema, updated_at=datetime.now(UTC).isoformat(), ftctl_version=version
    )


def delete_keeping_documents(name: str) -> Step[None]:
    """FT.DROPINDEX without DD; refused through an alias; forgets the schema history."""
    info = yield from index_info(name)
    if info.index_name != name:
        raise RefusedError(
            f"'{printable(name)}' is an alias of index '{printable(info.index_name)}'; "
            "refusing to drop through an alias",
            f"run 'ftctl index delete --index {printable(info.index_name)}' to drop the index itself",
        )
    reply = single((yield Commands([("FT.DROPINDEX", name)])))
    if isinstance(reply, ReplyError):
        raise RedisCommandError("FT.DROPINDEX", reply.message)
    yield from delete_history(name)
