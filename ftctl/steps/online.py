"""The online-mode steps (sans-IO): preflight, FT.ALTER, shadow build + verify, cut-over.

The source index keeps answering queries by its name the whole time: either it is altered in
place (``FT.ALTER SCHEMA ADD``), or a shadow index with the target schema is built on the same
prefixes, verified against the live source, and swapped in with one MULTI/EXEC
(``FT.DROPINDEX <source>`` without DD + ``FT.ALIASADD``/``FT.ALIASUPDATE`` of every name), so
no query by any of those names ever sees a missing or partial index.

Every step is safe to run twice: creation finds an existing index with the same schema, the
cut-over first looks whether the swap already happened.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ftctl.errors import MigrationFailed, RefusedError
from ftctl.journal.events import CheckFailed, CheckPassed
from ftctl.schema.compare import reported_differences
from ftctl.schema.ftinfo import parse_ft_info
from ftctl.schema.model import IndexSchema
from ftctl.schema.render import field_argv
from ftctl.steps.effects import Arg, Command, Commands, Progress, Record, ReplyError, Sleep, Step
from ftctl.steps.enumerate import SCAN_COUNT, glob_escape
from ftctl.steps.index_ops import live_info, throwaway_create
from ftctl.steps.replies import is_unknown_index, ok, search_hits
from ftctl.steps.snapshot import read_memory
from ftctl.steps.spec import RunSpec, named
from ftctl.steps.validate import Check, Checks, _check_knn

COUNT_ATTEMPTS = 8
"""Atomic doc-count comparisons tried before reconciling with a prefix-scoped SCAN."""

_MB = 1024 * 1024


def _fail_or_pass(problems: list[tuple[str, str]], passed: str) -> list[object]:
    events: list[object] = [CheckFailed(check=c, detail=d, count=1) for c, d in problems]
    if not problems:
        events.append(CheckPassed(check=passed))
    return events


def online_preflight(spec: RunSpec, found: Sequence[tuple[str, str]] = ()) -> Step[None]:
    """Refuse (RefusedError, nothing changed) unless the online migration can go ahead.

    The serving name and every named alias still resolve to the source, whose schema still
    matches the plan; the server accepts the target schema (throwaway FT.CREATE); the shadow's
    name is free; ``used_memory`` + the shadow estimate fits ``maxmemory`` (and the
    background-indexing limit where the server has one). ``found``: problems the run found
    before, refused the same way.
    """
    online = spec.online_names()
    commands: list[Command] = [("FT.INFO", online.serving_name)]
    commands += [("FT.INFO", a) for a in online.aliases]
    commands += throwaway_create(spec.target_schema)
    if online.strategy != "alter":
        commands.append(("FT.INFO", online.shadow_name))
    replies = yield Commands(commands)
    problems: list[tuple[str, str]] = list(found)
    serving = replies[0]
    if is_unknown_index(serving):
        problems.append(("source_exists", f"'{online.serving_name}' does not exist"))
    else:
        info = parse_ft_info(ok(serving, "FT.INFO"))
        if info.index_name != spec.source_index:
            problems.append(
                (
                    "source_serving",
                    f"'{online.serving_name}' resolves to '{info.index_name}', "
                    f"not '{spec.source_index}'",
                )
            )
        differences = reported_differences(spec.source_schema, info.schema)
        if differences:
            problems.append(
                ("source_schema_match", "source schema mismatch: " + "; ".join(differences))
            )
    for alias, reply in zip(online.aliases, replies[1 : 1 + len(online.aliases)], strict=True):
        resolved = "" if isinstance(reply, ReplyError) else parse_ft_info(reply).index_name
        if resolved != spec.source_index:
            problems.append(("aliases", f"alias '{alias}' no longer resolves to the source"))
    created = replies[1 + len(online.aliases)]
    if isinstance(created, ReplyError):
        problems.append(("target_accepted", f"the server rejects the target schema: {created}"))
    if online.strategy != "alter" and not is_unknown_index(replies[-1]):
        problems.append(
            ("shadow_name_free", f"an index or alias named '{online.shadow_name}' already exists")
        )
    if online.strategy != "alter":
        memory = yield from read_memory()
        limits = [x for x in (memory.maxmemory,) if x > 0]
        if memory.maxmemory and memory.indexing_limit_percent:
            limits.append(int(memory.maxmemory * memory.indexing_limit_percent / 100))
        needed = memory.used_memory + int(online.shadow_mb * _MB)
        if limits and needed > min(limits):
            problems.append(
                (
                    "memory",
                    f"used_memory {memory.used_memory / _MB:.1f} MB + shadow ~{online.shadow_mb:g}"
                    f" MB exceeds the limit of {min(limits) / _MB:.1f} MB",
                )
            )
    yield Record(_fail_or_pass(problems, "online_preflight"))
    if problems:
        raise RefusedError(
            "online preflight refused: " + "; ".join(d for _, d in problems),
            "nothing was changed; re-plan against the live index (ftctl migrate plan)",
        )


def alter_add(spec: RunSpec) -> Step[int]:
    """``FT.ALTER <source> SCHEMA ADD`` the planned fields not there yet; returns how many."""
    info = yield from live_info(spec.source_index)
    if info is None:
        raise MigrationFailed(f"index '{spec.source_index}' disappeared")
    present = {f.name for f in info.schema.fields}
    argv: list[Arg] = ["FT.ALTER", spec.source_index, "SCHEMA", "ADD"]
    missing = [
        f
        for f in spec.target_schema.fields
        if f.name in spec.online_names().added_fields and f.name not in present
    ]
    if not missing:
        return 0
    for f in missing:
        argv += field_argv(f, spec.target_schema)
    (reply,) = yield Commands([tuple(argv)])
    ok(reply, f"FT.ALTER {spec.source_index}")
    return len(missing)


def _total(reply: object, what: str) -> int:
    stats = parse_ft_info(ok(reply, what)).stats
    return stats.num_docs + stats.hash_indexing_failures


def _scan_count(schema: IndexSchema) -> Step[int]:
    """Keys of the index's storage type under its prefixes (prefix-scoped SCAN)."""
    kind = "ReJSON-RL" if schema.storage_type == "json" else "hash"
    total = 0
    for prefix in schema.prefixes or [""]:
        cursor = "0"
        while True:
            (page,) = yield Commands(
                [
                    (
                        "SCAN",
                        cursor,
                        "MATCH",
                        glob_escape(prefix) + "*",
                        "COUNT",
                        SCAN_COUNT,
                        "TYPE",
                        kind,
                    )
                ]
            )
            page = ok(page, "SCAN")
            assert isinstance(page, list | tuple)
            cursor = page[0].decode() if isinstance(page[0], bytes) else str(page[0])
            total += len(page[1])
            yield Progress(advance=len(page[1]))
            if cursor == "0":
                break
    return total


def _count_by_scan(new: str, schema: IndexSchema, current: str) -> Step[Check]:
    """``doc_count`` of ``new`` against a prefix-scoped SCAN of its own keys (the indexes
    differ: a prefix change's copies lag behind writes to the old keys; documents the new
    index failed once and that were written right since).

    The count is read before and after the SCAN: a document created or deleted meanwhile
    may or may not be scanned, so with writers under the new prefix (an application
    deleting by both names) the scan falls between the two counts, not on either. Tried
    again while it falls outside them (a scan that met both creates and deletes). The
    index's failures only widen the upper bound: RediSearch counts each failure for good,
    even once the document is written again and indexed."""
    low = high = scanned = 0
    for attempt in range(COUNT_ATTEMPTS):
        (before,) = yield Commands([("FT.INFO", new)])
        scanned = yield from _scan_count(schema)
        (after,) = yield Commands([("FT.INFO", new)])
        stats = [parse_ft_info(ok(r, f"FT.INFO {new}")).stats for r in (before, after)]
        low = min(s.num_docs for s in stats)
        high = max(s.num_docs + s.hash_indexing_failures for s in stats)
        if low <= scanned <= high:
            break
        yield Sleep(0.05 * (attempt + 1))
    has = f"{low}" if low == high else f"{low}..{high} (written or failed meanwhile)"
    return (
        "doc_count",
        max(low - scanned, scanned - high, 0),
        f"'{new}' has {has}, {current}; a prefix-scoped SCAN finds {scanned} documents",
    )


def _ids(reply: object, what: str) -> set[bytes]:
    return {doc for doc, _ in search_hits(ok(reply, what))}


def verify_shadow(
    spec: RunSpec,
    *,
    current: str,
    new: str,
    schema: IndexSchema,
    rename: Callable[[bytes], bytes] | None = None,
) -> Step[bool]:
    """Checks that ``new`` (fully indexed) may replace ``current``; each is a journal event.

    - ``schema_match``: ``new`` reports ``schema``;
    - ``doc_count``: ``num_docs + hash_indexing_failures`` of both, read in one MULTI/EXEC so
      concurrent writes cannot skew one side; if they still differ, ``new`` must hold what a
      prefix-scoped SCAN counts;
    - ``sample_agree``: the same queries (a sample of the current index's documents, by
      ``INKEYS``) give the same documents on both, in one MULTI/EXEC;
    - ``knn_self``: sampled stored vectors find their own document in ``new``.

    ``rename``: the key a document of ``current`` has in ``new`` (a prefix change copies
    documents to new keys).
    """
    out = Checks()
    new_schema = named(schema, new)
    info = yield from live_info(new)
    if info is None:
        out.check("schema_match", 1, f"index '{new}' does not exist")
        yield Record(out.events)
        return False
    differences = reported_differences(new_schema, info.schema)
    out.check("schema_match", len(differences), "; ".join(differences) or "matches the plan")
    counts = (0, 0)
    for attempt in range(COUNT_ATTEMPTS):
        replies = yield Commands([("FT.INFO", current), ("FT.INFO", new)], transaction=True)
        counts = (_total(replies[0], f"FT.INFO {current}"), _total(replies[1], f"FT.INFO {new}"))
        if counts[0] == counts[1]:
            break
        yield Sleep(0.05 * (attempt + 1))
    if counts[0] == counts[1]:
        out.check("doc_count", 0, f"{counts[1]} documents in both (read atomically)")
    else:
        out.check(*(yield from _count_by_scan(new, schema, f"'{current}' {counts[0]}")))
    sample_query: Command = (
        "FT.SEARCH", current, "*", "NOCONTENT", "LIMIT", "0", str(spec.online_names().sample), "DIALECT", "2",
    )  # fmt: skip
    (reply,) = yield Commands([sample_query])
    keys = sorted(_ids(reply, f"FT.SEARCH {current}"))
    moved = [rename(k) for k in keys] if rename else keys
    mismatched = 0
    if keys:
        tail: list[Arg] = ["NOCONTENT", "LIMIT", "0", len(keys), "DIALECT", "2"]
        queries: list[Command] = [
            ("FT.SEARCH", current, "*", "INKEYS", len(keys), *keys, *tail),
            ("FT.SEARCH", new, "*", "INKEYS", len(moved), *moved, *tail),
        ]
        old_hits, new_hits = yield Commands(queries, transaction=True)
        found = _ids(old_hits, current)
        expected = {rename(k) for k in found} if rename else found
        mismatched = len(expected ^ _ids(new_hits, new))
    out.check(
        "sample_agree",
        mismatched,
        f"{len(keys) - mismatched} of {len(keys)} sampled documents found by both indexes",
    )
    view = RunSpec(
        source_index=current,
        target_index=new,
        storage_type=schema.storage_type,
        source_schema=spec.source_schema,
        target_schema=new_schema,
    )
    knn = yield from _check_knn(view, new_schema, moved)
    if knn is not None:
        out.check(*knn)
    yield Record(out.events)
    return out.passed


def cutover(current: str, new: str, names: list[str]) -> Step[bool]:
    """Swap ``new`` in for ``current`` under ``names`` in one MULTI/EXEC.

    ``FT.DROPINDEX current`` (never DD; its aliases go with it) then, for each name,
    ``FT.ALIASADD`` (the name was ``current`` itself, freed by the drop) or
    ``FT.ALIASUPDATE`` (an alias, moved). Returns False when a resumed run finds the swap
    already done (``current`` gone, every name on ``new``), True when this call did it.
    """
    probes: list[Command] = [("FT.INFO", current), ("FT.INFO", new)]
    probes += [("FT.INFO", n) for n in names]
    replies = yield Commands(probes)
    if is_unknown_index(replies[1]):
        raise MigrationFailed(f"cut-over impossible: index '{new}' does not exist")
    if parse_ft_info(ok(replies[1], f"FT.INFO {new}")).index_name != new:
        raise MigrationFailed(f"cut-over impossible: '{new}' is an alias")
    resolved = [
        "" if isinstance(r, ReplyError) else parse_ft_info(r).index_name for r in replies[2:]
    ]
    current_gone = is_unknown_index(replies[0]) or (
        not isinstance(replies[0], ReplyError) and parse_ft_info(replies[0]).index_name == new
    )  # after the swap, ``current`` may be one of the names, now an alias of ``new``
    if current_gone:
        stray = [n for n, to in zip(names, resolved, strict=True) if to != new]
        if not stray:
            return False
        raise MigrationFailed(
            f"'{current}' is gone but {', '.join(stray)} do not resolve to '{new}'",
            f"point them with FT.ALIASUPDATE <name> {new}, then re-run",
        )
    if parse_ft_info(ok(replies[0], f"FT.INFO {current}")).index_name != current:
        raise RefusedError(
            f"'{current}' now names an alias", "ftctl never drops through an alias; re-plan"
        )
    swap: list[Command] = [("FT.DROPINDEX", current)]
    for name, to in zip(names, resolved, strict=True):
        verb = "FT.ALIASADD" if name == current or not to else "FT.ALIASUPDATE"
        swap.append((verb, name, new))
    results = yield Commands(swap, transaction=True)
    errors = [
        f"{c[0]!s} {c[1]!r}: {r}"
        for c, r in zip(swap, results, strict=True)
        if isinstance(r, ReplyError)
    ]
    if errors:
        raise MigrationFailed(
            "cut-over transaction failed: " + "; ".join(errors),
            f"point the names at '{new}' with FT.ALIASUPDATE, then re-run",
        )
    return True


def check_serving(
    *, index: str, schema: IndexSchema, names: list[str], gone: str | None
) -> Step[bool]:
    """After a cut-over: ``index`` has ``schema``, every name resolves to it, ``gone`` is gone."""
    out = Checks()
    probes: list[Command] = [("FT.INFO", index), *[("FT.INFO", n) for n in names]]
    if gone is not None:
        probes.append(("FT.INFO", gone))
    replies = yield Commands(probes)
    if is_unknown_index(replies[0]):
        out.check("schema_match", 1, f"index '{index}' does not exist")
    else:
        info = parse_ft_info(ok(replies[0], f"FT.INFO {index}"))
        differences = reported_differences(named(schema, index), info.schema)
        out.check("schema_match", len(differences), "; ".join(differences) or "matches")
    wrong = [
        n
        for n, r in zip(names, replies[1 : 1 + len(names)], strict=True)
        if isinstance(r, ReplyError) or parse_ft_info(r).index_name != index
    ]
    out.check(
        "names_resolve",
        len(wrong),
        f"{', '.join(wrong)} do not resolve to '{index}'" if wrong else f"all resolve to '{index}'",
    )
    if gone is not None:
        last = replies[-1]
        # The name may live on as an alias of the new index; only a real index counts.
        still = int(not isinstance(last, ReplyError) and parse_ft_info(last).index_name == gone)
        out.check(
            "replaced_dropped", still, f"'{gone}' " + ("still exists" if still else "dropped")
        )
    yield Record(out.events)
    return out.passed


def drop_shadow(shadow: str, serving: str) -> Step[int]:
    """Drop an uncut shadow (abort); refused when queries already go to it."""
    replies = yield Commands([("FT.INFO", shadow), ("FT.INFO", serving)])
    if is_unknown_index(replies[0]):
        return 0
    if parse_ft_info(ok(replies[0], f"FT.INFO {shadow}")).index_name != shadow:
        raise RefusedError(f"'{shadow}' is an alias", "ftctl never drops through an alias")
    if not isinstance(replies[1], ReplyError) and parse_ft_info(replies[1]).index_name == shadow:
        raise RefusedError(
            f"'{serving}' already resolves to '{shadow}': the migration was cut over",
            "undo it with 'ftctl migrate rollback --backup-dir ...' (cuts back online)",
        )
    (dropped,) = yield Commands([("FT.DROPINDEX", shadow)])
    ok(dropped, f"FT.DROPINDEX {shadow}")
    return 1


__all__ = [
    "alter_add",
    "check_serving",
    "cutover",
    "drop_shadow",
    "online_preflight",
    "verify_shadow",
]
