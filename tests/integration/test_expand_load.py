"""Issue 15 "Must show": online expand migrations under load, against drop_recreate.

For a HASH float32→float16 change, a field rename (HASH and JSON) and a prefix change, a
reader queries the public name ``docs`` (KNN through :class:`ftctl.QueryEncoder`, a text
query with a known count, ``*`` bounded by the writer's counters) while a writer creates,
updates and deletes documents the way the README tells an application to (old layout
before the cut-over, a burst of old-layout updates after it, then the new layout). Then:
no failed or incomplete answer; every write is in the final layout, converted, and deletes
are gone; every document the writer left alone is byte-identical to what drop_recreate
makes of the same initial data, and so are the index definition and the schema history;
no temporary field, key or index is left.

The suite runs ``2000x32`` (HNSW), the same code path as the issue's 20k x 128 (several
WATCH groups and SCAN pages per phase, writes captured during every phase). The full size
runs by hand: ``FTCTL_EXPAND_LOAD_SIZE=20000x128 pytest tests/integration/test_expand_load.py``.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import pytest
import redis
from expand_load import (
    INDEX,
    NEW_PREFIX,
    OLD_PREFIX,
    PACING,
    SCENARIOS,
    Running,
    Scenario,
    Size,
    as_written,
    definition,
    documents,
    expected_document,
    expected_key,
    found_by_name,
    history,
    load,
    other_keys,
    under_load,
)

from ftctl.executor import MigrationExecutor
from ftctl.journal import Journal, StepFinished, StepStarted
from ftctl.journal.report import MigrationReport
from ftctl.plan import patch_from_builtins
from ftctl.plan.models import MigrationPlan
from ftctl.planner import MigrationPlanner
from ftctl.runs import journal_dir
from ftctl.schema.model import IndexSchema, from_builtins

SIZE = Size.parse(os.environ.get("FTCTL_EXPAND_LOAD_SIZE", "2000x32"))
GATE_SECONDS = 0.5
"""How long a run stopped at the operator gate (float16 by default, the prefix change as
planned here) waits under load before the cut-over."""


WRITTEN_DURING = (
    "expand",
    "shadow_wait",
    "catch_up",
    "cutover",
    "rewrite",
    "final_wait",
    "contract",
)
"""Steps the writer must have written during (those the run has): change capture is then
exercised in every phase that writes documents or builds an index."""


def _steps(backup: Path) -> dict[str, tuple[float, float]]:
    """step → (start, end) in ``time.time()`` seconds, from the journal."""
    started: dict[str, float] = {}
    out: dict[str, tuple[float, float]] = {}
    for event in Journal.read(journal_dir(backup, INDEX)):
        if isinstance(event, StepStarted):
            started[event.step] = event.at.timestamp()
        elif isinstance(event, StepFinished) and event.step in started:
            out[event.step] = (started[event.step], event.at.timestamp())
    return out


@dataclass
class Leaves:
    """What a run leaves on the server."""

    docs: dict[str, Any]
    others: list[str]
    indexes: list[str]
    definition: dict[str, Any]
    history: dict[str, dict[str, Any]]
    num_docs: int
    failures: int


def _leaves(r: redis.Redis, scenario: Scenario) -> Leaves:
    info = r.execute_command("FT.INFO", INDEX)
    return Leaves(
        docs=documents(r, scenario.storage),
        others=other_keys(r),
        indexes=sorted(x.decode() for x in r.execute_command("FT._LIST")),
        definition=definition(r, INDEX),
        history=history(r),
        num_docs=int(info[b"num_docs"]),
        failures=int(info[b"hash_indexing_failures"]),
    )


def _plan(r: redis.Redis, scenario: Scenario, mode: str) -> MigrationPlan:
    plan = MigrationPlanner().create_plan(
        INDEX,
        redis_client=r,
        schema_patch=patch_from_builtins(scenario.patch),
        mode=mode,  # type: ignore[arg-type]
        # A prefix change under writers that create documents stops at the gate, where the
        # application starts creating them under both prefixes (see the README).
        postpone_cutover=True if mode == "online" and scenario.prefix != OLD_PREFIX else None,
    )
    assert plan.mode == mode and plan.supported, plan.diff_classification
    return plan


def _online(
    r: redis.Redis, url: str, scenario: Scenario, backup: Path
) -> tuple[Running, MigrationReport, MigrationPlan]:
    """The online run under load; a plan stopped at the operator gate is cut over after
    :data:`GATE_SECONDS`, as an operator would (the application meanwhile deploys what the
    README says it runs at the cut-over)."""
    plan = _plan(r, scenario, "online")
    assert plan.online is not None and plan.online.strategy == "expand"
    with under_load(url, scenario, SIZE) as running:
        report = MigrationExecutor().apply(plan, redis_client=r, backup_dir=backup, pacing=PACING)
        if report.result == "awaiting_cutover":
            assert running.writer is not None
            running.writer.dual_create = True
            time.sleep(GATE_SECONDS)
            report = MigrationExecutor().cutover(backup, redis_client=r, pacing=PACING)
    assert report.result == "succeeded", report.error
    return running, report, plan


def _drop_recreate(r: redis.Redis, scenario: Scenario, backup: Path) -> Leaves:
    """drop_recreate of the same initial data, with no load (the reference layout)."""
    r.flushall()
    load(r, scenario, SIZE)
    report = MigrationExecutor().apply(
        _plan(r, scenario, "drop_recreate"), redis_client=r, backup_dir=backup
    )
    assert report.result == "succeeded", report.error
    return _leaves(r, scenario)


def _schema(record: dict[str, Any]) -> IndexSchema:
    """A history record's schema, its index name left out (the online one is generated)."""
    schema = from_builtins(record["schema"])
    return msgspec.structs.replace(schema, index=msgspec.structs.replace(schema.index, name=""))


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_expand_under_load_matches_drop_recreate(
    r: redis.Redis, redis_url: str, tmp_path: Path, name: str
) -> None:
    """Zero failed or incomplete queries by the public name during the whole online run;
    every write (legacy ones after the cut-over included) ends converted in the final
    layout and every delete gone; the rest is byte-identical to drop_recreate's result."""
    scenario = SCENARIOS[name]
    load(r, scenario, SIZE)
    running, report, plan = _online(r, redis_url, scenario, tmp_path / "online")
    online = _leaves(r, scenario)
    writer = running.writer
    assert writer is not None
    final_keys = sorted(expected_key(scenario, i) for i in writer.record)
    found = found_by_name(r, final_keys)
    reference = _drop_recreate(r, scenario, tmp_path / "drop")
    reader = running.reader

    # the load ran through the whole migration and saw nothing wrong
    assert reader.failures == []
    assert min(len(v) for v in reader.latencies.values()) > 20
    assert writer.errors == []
    assert writer.switched_at is not None and report.cutover_at
    assert writer.legacy_after_cutover >= writer.legacy_burst
    deleted = [i for i, last in writer.record.items() if last is None]
    created = [i for i in writer.record if i >= SIZE.docs]
    assert deleted and created and len(writer.record) > len(deleted) + len(created)
    steps = _steps(tmp_path / "online")
    quiet = [
        step
        for step in WRITTEN_DURING
        if step in steps
        and not any(steps[step][0] <= t <= steps[step][1] for t in writer.written_at)
    ]
    assert quiet == [] and "contract" in steps, sorted(steps)

    # what the writer wrote, converted; what it deleted, gone (under every name)
    touched = {f"{p}{i}" for i in writer.record for p in (OLD_PREFIX, NEW_PREFIX)}
    for i, last in writer.record.items():
        key = expected_key(scenario, i)
        if last is None:
            assert key not in online.docs, f"{key} was deleted"
        else:
            got = as_written(scenario.storage, online.docs.get(key))
            assert got == expected_document(scenario, *last), key
    alive = {expected_key(scenario, i) for i, last in writer.record.items() if last}
    assert found == alive, "the public name finds every written document, no deleted one"
    stray = sorted(set(online.docs) - {expected_key(scenario, i) for i in writer.record})
    stray = [k for k in stray if k in touched]
    assert stray == [], "old names of touched documents left behind"

    # everything else: byte-identical to drop_recreate
    untouched_online = {k: v for k, v in online.docs.items() if k not in touched}
    untouched_reference = {k: v for k, v in reference.docs.items() if k not in touched}
    assert untouched_online.keys() == untouched_reference.keys()
    assert untouched_online == untouched_reference
    assert online.definition == reference.definition
    assert online.num_docs == reference.num_docs + len(created) - len(deleted)
    assert online.failures == reference.failures == 0

    # no leftovers: one index (the final one behind the public name), one history record
    names = plan.online
    assert names is not None
    final = names.final_name or names.shadow_name
    assert online.indexes == [final] and reference.indexes == [INDEX]
    assert online.others == [f"ftctl:schema:{final}"]
    assert reference.others == [f"ftctl:schema:{INDEX}"]
    (online_history,) = online.history.values()
    (reference_history,) = reference.history.values()
    assert online_history["aliases"] == [INDEX] and reference_history["aliases"] == []
    assert _schema(online_history) == _schema(reference_history)
