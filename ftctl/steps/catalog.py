"""Index catalog operations behind ``ftctl index``: list (by public name), info, create, delete
(sans-IO)."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec

from ftctl.errors import RedisCommandError, RefusedError, UsageError
from ftctl.plan.names import public_names
from ftctl.schema.ftinfo import IndexInfo, parse_ft_info
from ftctl.schema.model import IndexSchema
from ftctl.schema.render import create_argv
from ftctl.steps.effects import Commands, ReplyError, Step, single
from ftctl.steps.history import decode_record, delete_history, history_key, write_history
from ftctl.steps.names import resolve
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


class PublicIndex(msgspec.Struct, frozen=True, kw_only=True):
    """An index by the names users know: ``names`` (public first, see
    :func:`~ftctl.plan.names.public_names`) and ``index``, its real name (FT._LIST's)."""

    index: str
    aliases: list[str] = msgspec.field(default_factory=list)
    """The aliases ftctl's schema history records that resolve to it now."""

    @property
    def names(self) -> list[str]:
        return public_names(self.index, self.aliases)

    @property
    def name(self) -> str:
        """The first public name: how listings show the index."""
        return self.names[0]


def public_indexes() -> Step[list[PublicIndex]]:
    """Every index with the aliases ftctl keeps for it, sorted by public name.

    RediSearch cannot list aliases: those come from ftctl's schema history, each checked to
    still resolve to its index (an alias someone moved or deleted is left out).
    """
    names = yield from list_indexes()
    replies: list[object] = []
    if names:
        replies = yield Commands([("GET", history_key(n)) for n in names])
    recorded = {n: decode_record(r) for n, r in zip(names, replies, strict=True)}
    aliases = {n: (r.aliases if r is not None else []) for n, r in recorded.items()}
    wanted = list(dict.fromkeys(a for found in aliases.values() for a in found))
    resolved = dict(zip(wanted, (yield from resolve(wanted)), strict=True))
    out = [
        PublicIndex(index=n, aliases=[a for a in found if resolved.get(a) == n])
        for n, found in aliases.items()
    ]
    return sorted(out, key=lambda p: (p.name, p.index))


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
