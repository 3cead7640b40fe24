"""The index-level steps: preflight, drop, create, wait."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence

from ftctl.errors import MigrationFailed, RefusedError
from ftctl.journal.events import CheckFailed, CheckPassed
from ftctl.schema.compare import reported_differences
from ftctl.schema.ftinfo import IndexInfo, IndexStats, indexing_state, parse_ft_info
from ftctl.schema.model import IndexSchema
from ftctl.schema.render import create_argv
from ftctl.steps.effects import Command, Commands, Progress, Record, ReplyError, Sleep, Step
from ftctl.steps.enumerate import count_keys
from ftctl.steps.names import resolve
from ftctl.steps.replies import is_unknown_index, ok
from ftctl.steps.spec import RunSpec

THROWAWAY_PREFIX = "__ftctl_check_"


def throwaway_create(
    schema: IndexSchema, token: str | None = None, *, prefix: str = THROWAWAY_PREFIX
) -> list[Command]:
    """FT.CREATE of ``schema`` under a throwaway name on a prefix no key matches, then its
    drop (without DD: it holds no documents), to send in one pipeline."""
    name = f"{prefix}{token or secrets.token_hex(6)}"
    return [
        tuple(create_argv(schema, name=name, prefixes=[f"{name}:"])),
        ("FT.DROPINDEX", name),
    ]


def preflight(spec: RunSpec, found: Sequence[tuple[str, str]] = ()) -> Step[None]:
    """Refuse (RefusedError, nothing changed) unless the drop can safely go ahead.

    The live source must still match the plan, the server must accept the target schema
    (throwaway FT.CREATE), rename destinations must be free, and every alias the plan keeps
    must still resolve to the source (it is dropped with it and pointed at the target). ``found``: problems the
    run found in its data before (``(check, detail)``), refused the same way.
    """
    commands: list[Command] = [("FT.INFO", spec.source_index)]
    commands += throwaway_create(spec.target_schema)
    renaming = spec.target_index != spec.source_index
    if renaming:
        commands.append(("FT.INFO", spec.target_index))
    replies = yield Commands(commands)
    problems: list[tuple[str, str]] = list(found)
    source = replies[0]
    if is_unknown_index(source):
        problems.append(("source_exists", f"index '{spec.source_index}' does not exist"))
    else:
        info = parse_ft_info(ok(source, "FT.INFO"))
        if info.index_name != spec.source_index:
            problems.append(
                ("source_not_alias", f"'{spec.source_index}' is an alias of '{info.index_name}'")
            )
        differences = reported_differences(spec.source_schema, info.schema)
        if differences:
            problems.append(
                ("source_schema_match", "source schema mismatch: " + "; ".join(differences))
            )
    if isinstance(replies[1], ReplyError):
        problems.append(("target_accepted", f"the server rejects the target schema: {replies[1]}"))
    if renaming and not is_unknown_index(replies[3]):
        problems.append(
            ("target_name_free", f"an index or alias named '{spec.target_index}' already exists")
        )
    kept = spec.names_before()
    for alias, resolved in zip(kept, (yield from resolve(kept)), strict=True):
        if resolved != spec.source_index:
            where = f"resolves to '{resolved}'" if resolved else "does not exist"
            problems.append(
                ("aliases", f"alias '{alias}' {where}, no longer to '{spec.source_index}'")
            )
    if spec.prefix_change is not None:
        existing = yield from count_keys(spec.prefix_change.new, limit=1)
        if existing:
            problems.append(
                (
                    "prefix_free",
                    f"keys already exist under the new prefix '{spec.prefix_change.new}'",
                )
            )
    events: list[object] = [CheckFailed(check=c, detail=d, count=1) for c, d in problems]
    if not problems:
        events.append(CheckPassed(check="preflight"))
    yield Record(events)
    if problems:
        raise RefusedError(
            "preflight refused: " + "; ".join(d for _, d in problems),
            "nothing was changed; re-plan against the live index (ftctl migrate plan)",
        )


def drop_source(spec: RunSpec) -> Step[bool]:
    """FT.DROPINDEX the source, never with DD and never through an alias.

    Returns False when the index was already gone (a resumed run after the drop).
    """
    (reply,) = yield Commands([("FT.INFO", spec.source_index)])
    if is_unknown_index(reply):
        return False
    info = parse_ft_info(ok(reply, "FT.INFO"))
    if info.index_name != spec.source_index:
        raise RefusedError(
            f"'{spec.source_index}' now names an alias of '{info.index_name}'",
            "ftctl never drops through an alias; re-plan against the real index",
        )
    (dropped,) = yield Commands([("FT.DROPINDEX", spec.source_index)])
    ok(dropped, f"FT.DROPINDEX {spec.source_index}")
    return True


def live_info(name: str) -> Step[IndexInfo | None]:
    (reply,) = yield Commands([("FT.INFO", name)])
    if is_unknown_index(reply):
        return None
    return parse_ft_info(ok(reply, f"FT.INFO {name}"))


def create_index(schema: IndexSchema) -> Step[None]:
    """FT.CREATE ``schema``; an existing index with the same reported schema counts as done."""
    (reply,) = yield Commands([tuple(create_argv(schema))])
    if not isinstance(reply, ReplyError):
        return
    if "already exists" not in reply.message.lower():
        raise MigrationFailed(f"FT.CREATE {schema.name} failed: {reply.message}")
    info = yield from live_info(schema.name)
    differences = reported_differences(schema, info.schema) if info else ["missing"]
    if info is None or info.index_name != schema.name or differences:
        raise MigrationFailed(
            f"an index '{schema.name}' exists with another schema: {'; '.join(differences)}",
            "inspect it with 'ftctl index info'; the migration never drops an index it did not create",
        )


WAIT_MIN, WAIT_MAX, WAIT_FRACTION = 0.002, 0.25, 16
OBSERVE_EVERY = 0.25


def wait_ready(
    name: str,
    timeout: float,
    *,
    report: bool = True,
    observe: Callable[[], Step[None]] | None = None,
) -> Step[IndexStats]:
    """Poll FT.INFO until the index is fully indexed.

    Each pause is 1/16 of the time waited so far (2 ms at least, 250 ms at most), so the
    poll that sees the index ready comes at most ~6% after it was (a fixed or doubling
    interval would add up to a whole interval to the downtime). Every poll reports its
    ``num_docs`` and ``percent_indexed`` as :class:`Progress` (``report``: when the wait is
    the step's work, not a check before it). ``observe`` runs between two polls (at most
    every :data:`OBSERVE_EVERY` seconds of waiting): a pacer measuring the server.
    """
    waited, observed = 0.0, -OBSERVE_EVERY
    while True:
        info = yield from live_info(name)
        if info is None:
            raise MigrationFailed(f"index '{name}' disappeared while it was being built")
        stats = info.stats
        if report:
            yield Progress(
                done=stats.num_docs, detail={"percent_indexed": round(stats.percent_indexed, 4)}
            )
        if not stats.indexing and stats.percent_indexed >= 1.0:
            return stats
        if waited >= timeout:
            raise MigrationFailed(
                f"timeout waiting for index ready: '{name}' is still "
                f"{indexing_state(True, stats.percent_indexed)} after {timeout:.0f}s",
                "re-run the same command to keep waiting, or pass a larger --timeout",
            )
        if observe is not None and waited >= observed + OBSERVE_EVERY:
            observed = waited
            yield from observe()
        delay = min(max(waited / WAIT_FRACTION, WAIT_MIN), WAIT_MAX)
        yield Sleep(delay)
        waited += delay
