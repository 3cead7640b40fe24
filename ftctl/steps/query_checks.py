"""The checks RedisVL's validator runs beside ftctl's own, as journaled checks.

RedisVL 0.28 validates every migration with two checks ftctl's validate step does not
make, and with the user's ``query_check_file``:

- ``key_sample``: every key of the plan's ``source.keyspace.key_sample`` exists under its
  final name (after a prefix change). An online run serves writers throughout, so a sampled
  document gone under every name it had was deleted by one (expand never deletes a
  document's last copy): it is reported, not failed; one left under its old name only is;
- ``functional:wildcard_search``: ``FT.SEARCH <target> *`` answers, with at least one
  document when the source had any (none when it had none);
- ``fetch:<id>``: the document ``<target prefix><separator><id>`` exists and is not empty;
- ``key:<key>``: the key exists.

:func:`after_validation` runs them once a table's own validation has ended (passed or
failed; not at an operator gate), records each as a ``check_passed`` / ``check_failed``
event, and turns a failure into a failed run. Their names are RedisVL's, so the report's
``validation.query_checks`` lists them as RedisVL does.
"""

from __future__ import annotations

import msgspec

from ftctl.journal.projections import RunState
from ftctl.plan.models import MigrationPlan
from ftctl.plan.query_checks import QueryChecks, document_key
from ftctl.steps.effects import Command, Commands, ReplyError, Step
from ftctl.steps.replies import as_map
from ftctl.steps.runner import Outcome, record
from ftctl.steps.validate import Checks

KEY_SAMPLE = "key_sample"
WILDCARD = "functional:wildcard_search"


class ExtraChecks(msgspec.Struct, frozen=True, kw_only=True):
    """What the checks need of the plan (pure data, built by :func:`extra_checks_for`)."""

    index: str
    """The name the target answers to."""
    storage_type: str
    sample_keys: list[str] = msgspec.field(default_factory=list)
    """The plan's key sample under the keys' final names."""
    sample_sources: list[str] = msgspec.field(default_factory=list)
    """Online: the same keys under their source names (where a sample key missing under
    its final name may still be), in the same order; empty for drop_recreate, whose
    writers are paused."""
    source_docs: int = 0
    """``num_docs + hash_indexing_failures`` of the source when it was planned."""
    fetch: list[tuple[str, str]] = msgspec.field(default_factory=list)
    """(document id, its key in the target) of each ``fetch_ids`` entry."""
    keys: list[str] = msgspec.field(default_factory=list)
    """The ``keys_exist`` entries."""


def _final_key(plan: MigrationPlan, key: str) -> str:
    new_prefix = plan.rename_operations.change_prefix
    if new_prefix is None:
        return key
    for old in plan.source.schema_snapshot.prefixes:
        if old and key.startswith(old):
            return new_prefix + key[len(old) :]
    return key


def extra_checks_for(plan: MigrationPlan, checks: QueryChecks | None = None) -> ExtraChecks:
    """The checks of ``plan`` (and of a ``query_check_file``, when given)."""
    target = plan.merged_target_schema
    stats = plan.source.stats_snapshot
    given = checks or QueryChecks()
    return ExtraChecks(
        index=target.name,
        storage_type=target.storage_type,
        sample_keys=[_final_key(plan, k) for k in plan.source.keyspace.key_sample],
        sample_sources=list(plan.source.keyspace.key_sample) if plan.mode == "online" else [],
        source_docs=stats.num_docs + stats.hash_indexing_failures,
        fetch=[(doc_id, document_key(target, doc_id)) for doc_id in given.fetch_ids],
        keys=list(given.keys_exist),
    )


def _total(reply: object) -> int | None:
    """The total of an FT.SEARCH reply (RESP2 list or RESP3 map); None when unreadable."""
    if isinstance(reply, list) and reply and isinstance(reply[0], int):
        return reply[0]
    if isinstance(reply, dict):
        total = as_map(reply).get("total_results")
        return total if isinstance(total, int) else None
    return None


def _present(reply: object) -> bool:
    """Whether an EXISTS / HGETALL / JSON.GET reply says the document is there."""
    if isinstance(reply, ReplyError) or reply is None:
        return False
    if isinstance(reply, int):
        return reply > 0
    if isinstance(reply, dict | list | bytes | str):
        return len(reply) > 0
    return True


def _sample_outcome(
    extra: ExtraChecks, sample: list[object], sources: list[object]
) -> tuple[int, str]:
    """(missing sampled keys, detail): online, a key gone under every name was deleted by
    a writer, not lost."""
    online = bool(extra.sample_sources)
    missing, deleted = [], []
    for i, (key, reply) in enumerate(zip(extra.sample_keys, sample, strict=True)):
        if _present(reply):
            continue
        if online and not _present(sources[i]):
            deleted.append(key)
        else:
            missing.append(key)
    detail = f"{len(missing)} of {len(extra.sample_keys)} sampled keys missing"
    if missing:
        detail += f" ({', '.join(missing[:5])})"
    if deleted:
        detail += f"; {len(deleted)} deleted by a writer while online ({', '.join(deleted[:5])})"
    return len(missing), detail


def run_extra_checks(extra: ExtraChecks) -> Step[Checks]:
    """Run every check in one round trip; return them (not yet journaled)."""
    fetch: list[Command] = [
        ("HGETALL", key) if extra.storage_type == "hash" else ("JSON.GET", key)
        for _, key in extra.fetch
    ]
    commands: list[Command] = [
        ("FT.SEARCH", extra.index, "*", "NOCONTENT", "LIMIT", "0", "0", "DIALECT", "2"),
        *[("EXISTS", key) for key in extra.sample_keys],
        *[("EXISTS", key) for key in extra.sample_sources],
        *fetch,
        *[("EXISTS", key) for key in extra.keys],
    ]
    replies = yield Commands(commands)
    search, rest = replies[0], list(replies[1:])
    sample, rest = rest[: len(extra.sample_keys)], rest[len(extra.sample_keys) :]
    sources, rest = rest[: len(extra.sample_sources)], rest[len(extra.sample_sources) :]
    fetched, exists = rest[: len(extra.fetch)], rest[len(extra.fetch) :]
    out = Checks()
    if extra.sample_keys:
        out.check(KEY_SAMPLE, *_sample_outcome(extra, sample, sources))
    total = _total(search)
    if total is None:
        error = search.message if isinstance(search, ReplyError) else f"{search!r:.80}"
        out.check(WILDCARD, 1, f"Wildcard search failed: {error}")
    else:
        expected = (
            "expected 0"
            if extra.source_docs == 0
            else f"expected >0, source had {extra.source_docs}"
        )
        passed = total == 0 if extra.source_docs == 0 else total > 0
        out.check(
            WILDCARD, 0 if passed else 1, f"Wildcard search returned {total} docs ({expected})"
        )
    for (doc_id, key), reply in zip(extra.fetch, fetched, strict=True):
        found = _present(reply)
        out.check(
            f"fetch:{doc_id}",
            0 if found else 1,
            f"Document fetched successfully ({key})" if found else f"Document not found ({key})",
        )
    for key, reply in zip(extra.keys, exists, strict=True):
        found = _present(reply)
        out.check(f"key:{key}", 0 if found else 1, "Key exists" if found else "Key not found")
    return out


def after_validation(table: Step[Outcome], state: RunState, extra: ExtraChecks) -> Step[Outcome]:
    """Run ``table``, then (unless it stopped at an operator gate) the extra checks; the
    outcome fails when one of them fails. The checks are folded into ``state``."""
    outcome = yield from table
    if outcome == "awaiting":
        return outcome
    checks = yield from run_extra_checks(extra)
    yield from record(state, checks.events)
    # The table's outcome counted an earlier run's extra checks: decide again now.
    return "failed" if state.checks_failed else "passed"


__all__ = [
    "KEY_SAMPLE",
    "WILDCARD",
    "ExtraChecks",
    "after_validation",
    "extra_checks_for",
    "run_extra_checks",
]
