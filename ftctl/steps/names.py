"""Public names (sans-IO): point the aliases a run keeps at an index, and check they resolve.

The names applications query — the index name planned with and every alias that resolved
to it — are the contract (DESIGN §5b "Names."). ``FT.DROPINDEX`` drops an index's aliases
with it, so every step that drops and (re)creates an index points the kept names at the
index it created, and validation checks each one resolves (``names_resolve``).

RediSearch resolves a name to a real index first, then to an alias; FT.INFO answers with the
real index's name either way, which is what "resolves to" means here.
"""

from __future__ import annotations

from collections.abc import Sequence

from ftctl.errors import MigrationFailed
from ftctl.schema.ftinfo import parse_ft_info
from ftctl.steps.effects import Command, Commands, ReplyError, Step
from ftctl.steps.replies import ok

Check = tuple[str, int, str]


def resolve(names: Sequence[str]) -> Step[list[str]]:
    """The real index each name resolves to ("" when it resolves to none), in one pipeline."""
    if not names:
        return []
    replies = yield Commands([("FT.INFO", n) for n in names])
    return ["" if isinstance(r, ReplyError) else parse_ft_info(r).index_name for r in replies]


def point_names(index: str, names: Sequence[str]) -> Step[int]:
    """Make every one of ``names`` resolve to ``index``; returns how many it added.

    Idempotent (a resumed run finds the names already there). A name that resolves to
    another index was taken by someone else while the index was missing: ftctl never steals
    it (MigrationFailed, with the command to run).
    """
    wanted = [n for n in dict.fromkeys(names) if n != index]
    resolved = yield from resolve(wanted)
    taken = [
        f"'{n}' → '{to}'" for n, to in zip(wanted, resolved, strict=True) if to and to != index
    ]
    if taken:
        raise MigrationFailed(
            f"cannot point {', '.join(taken)} at '{index}': taken meanwhile",
            f"point each with FT.ALIASUPDATE <name> {index} if it should follow, then re-run",
        )
    missing = [n for n, to in zip(wanted, resolved, strict=True) if not to]
    if not missing:
        return 0
    commands: list[Command] = [("FT.ALIASADD", n, index) for n in missing]
    replies = yield Commands(commands)
    for name, reply in zip(missing, replies, strict=True):
        ok(reply, f"FT.ALIASADD {name} {index}")
    return len(missing)


def names_check(index: str, names: Sequence[str]) -> Step[Check | None]:
    """``names_resolve``: every one of ``names`` resolves to ``index`` (None: no names)."""
    wanted = [n for n in dict.fromkeys(names) if n != index]
    if not wanted:
        return None
    resolved = yield from resolve(wanted)
    wrong = [
        f"'{n}' " + (f"resolves to '{to}'" if to else "does not exist")
        for n, to in zip(wanted, resolved, strict=True)
        if to != index
    ]
    detail = "; ".join(wrong) if wrong else f"{', '.join(wanted)} resolve to '{index}'"
    return ("names_resolve", len(wrong), detail)


__all__ = ["names_check", "point_names", "resolve"]
