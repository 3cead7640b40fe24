"""An online expand migration rolled back under a reader and a writer.

The same load as ``test_expand_load.py`` (:mod:`expand_load`) runs through an online apply
planned with an immediate cut-over and then through its ``rollback``, without a pause
between them: the reader queries the public name ``docs`` (KNN through
:class:`ftctl.QueryEncoder`, a text query of known count, ``*`` bounded by the writer's
counters); the writer creates, updates and deletes, switching to the new layout at the
cut-over and back to the old one at the rollback's cut-back, each time after a burst of
writes in the layout it leaves (an instance not switched yet), as the README's "Rolling
back" paragraphs say (a prefix change: under both prefixes from the start of the rollback
until it switches back). Two moments:

- ``cutover``: the apply is stopped (Ctrl+C at a step boundary) right after its cut-over,
  before the rewrite and the contract, and rolled back from there;
- ``contract``: the apply ran to the end (contract and validation included), then is rolled
  back.

Then: no failed or incomplete answer through the public name from before the apply to after
the rollback; every document is in the original layout (under ``doc:``, in ``title``, with a
float32 ``emb``): byte-identical to what was loaded where the writer never wrote, else what
the writer wrote last (float16 writes converted back to float32; JSON documents are
replaced whole), deletes gone; no
temporary field, key under the new prefix or index is left, and the public name serves the
source schema over every document.

``FTCTL_EXPAND_LOAD_SIZE`` sets the size, as for ``test_expand_load.py`` (2000x32 here).
"""

from __future__ import annotations

import os
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import redis
from expand_load import (
    INDEX,
    NEW_PREFIX,
    OLD_PREFIX,
    PACING,
    ROLLBACK_INDEX,
    SCENARIOS,
    Size,
    as_written,
    definition,
    documents,
    found_by_name,
    history,
    load,
    other_keys,
    under_load,
)

from ftctl.errors import Interrupted
from ftctl.executor import MigrationExecutor
from ftctl.journal import Journal, StepFinished, StepStarted
from ftctl.plan import patch_from_builtins
from ftctl.plan.codecs import encode
from ftctl.planner import MigrationPlanner
from ftctl.runs import FAULT_ENV, FAULT_SIGNAL_ENV, journal_dir

SIZE = Size.parse(os.environ.get("FTCTL_EXPAND_LOAD_SIZE", "2000x32"))
SETTLE = 0.3
"""Seconds of load between the apply's end and the rollback, and after the rollback."""
WRITTEN_DURING = (
    "rb_relayout",
    "rb_shadow_wait",
    "rb_cutover",
    "rb_rewrite",
    "rb_final_wait",
    "rb_final_cutover",
    "rb_unexpand",
)
"""Rollback steps the writer must have written during (those the rollback has)."""
GATE_SECONDS = 0.5
"""How long a prefix change waits at the operator gate (as in ``test_expand_load.py``)."""


def _steps(backup: Path) -> dict[str, tuple[float, float]]:
    """step → (start, end) of the last run of each step, ``time.time()`` seconds."""
    started: dict[str, float] = {}
    out: dict[str, tuple[float, float]] = {}
    for event in Journal.read(journal_dir(backup, INDEX)):
        if isinstance(event, StepStarted):
            started[event.step] = event.at.timestamp()
        elif isinstance(event, StepFinished) and event.step in started:
            out[event.step] = (started[event.step], event.at.timestamp())
    return out


def _as_float32(datatype: str, vector: npt.NDArray[np.float32]) -> bytes:
    """The float32 bytes a rollback leaves for a vector written in ``datatype``."""
    written = encode(vector[None, :], datatype)
    if datatype == "float32":
        return written
    assert datatype == "float16"
    return np.frombuffer(written, dtype="<f2").astype("<f4").tobytes()


@pytest.mark.parametrize("moment", ["cutover", "contract"])
@pytest.mark.parametrize("name", ["float16", "rename", "prefix", "json_rename"])
def test_rollback_under_load_restores_the_source(
    r: redis.Redis,
    redis_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    moment: str,
) -> None:
    scenario = SCENARIOS[name]
    load(r, scenario, SIZE)
    loaded = documents(r, scenario.storage)
    source_definition = definition(r, INDEX)
    assert other_keys(r) == [] and history(r) == {}
    gated = scenario.prefix != OLD_PREFIX  # a prefix change waits at the gate (see README)
    plan = MigrationPlanner().create_plan(
        INDEX,
        redis_client=r,
        schema_patch=patch_from_builtins(scenario.patch),
        mode="online",
        postpone_cutover=gated,
    )
    assert plan.supported and plan.online is not None and plan.online.strategy == "expand"
    backup = tmp_path / "backup"

    with under_load(redis_url, scenario, SIZE) as running:
        executor = MigrationExecutor()
        if moment == "cutover":
            # Ctrl+C as the cut-over step ends: the run stops at that step boundary
            monkeypatch.setenv(FAULT_ENV, "after:step_finished:cutover")
            monkeypatch.setenv(FAULT_SIGNAL_ENV, "SIGINT")
        with pytest.raises(Interrupted) if moment == "cutover" and not gated else nullcontext():
            applied = executor.apply(plan, redis_client=r, backup_dir=backup, pacing=PACING)
        if gated:
            assert applied.result == "awaiting_cutover", applied.error
            assert running.writer is not None
            running.writer.dual_create = True
            time.sleep(GATE_SECONDS)
            with pytest.raises(Interrupted) if moment == "cutover" else nullcontext():
                applied = executor.cutover(backup, redis_client=r, pacing=PACING)
        if moment == "contract":
            assert applied.result == "succeeded", applied.error
        monkeypatch.delenv(FAULT_ENV, raising=False)
        monkeypatch.delenv(FAULT_SIGNAL_ENV, raising=False)
        time.sleep(SETTLE)
        if gated:  # a prefix change's rollback: writes under both prefixes (README)
            assert running.writer is not None
            running.writer.dual_back = True
        rolled_back_from = time.time()
        report = executor.rollback(backup, redis_client=r, pacing=PACING)
        rolled_back_at = time.time()
        time.sleep(SETTLE)
    assert report.result == "rolled_back", report.error
    reader, writer = running.reader, running.writer
    assert writer is not None
    steps = _steps(backup)

    # the load ran through the apply and the whole rollback, and saw nothing wrong
    assert reader.failures == [], _timeline(steps, reader.failures)
    assert min(len(v) for v in reader.latencies.values()) > 20
    assert writer.errors == []
    assert writer.switched_at is not None and writer.switched_back_at is not None
    assert rolled_back_from < writer.switched_back_at < rolled_back_at
    assert writer.legacy_after_cutback >= writer.legacy_burst
    assert ("contract" in steps) == (moment == "contract")
    assert "rb_cutover" in steps and "rb_unexpand" in steps
    if scenario.datatype != "float32":
        assert "rb_rewrite" in steps and "rb_final_cutover" in steps
    quiet = [
        step
        for step in WRITTEN_DURING
        if step in steps
        and not any(steps[step][0] <= t <= steps[step][1] for t in writer.written_at)
    ]
    assert quiet == [], "the writer wrote during every phase of the rollback"
    deleted = [i for i, last in writer.record.items() if last is None]
    created = [i for i in writer.record if i >= SIZE.docs]
    assert deleted and created and len(writer.record) > len(deleted) + len(created)

    # every document in the original layout: untouched ones byte-identical to what was
    # loaded, written ones what the writer wrote last (converted back), deletes gone
    docs = documents(r, scenario.storage)
    assert [k for k in docs if k.startswith(NEW_PREFIX)] == []
    touched = {f"{OLD_PREFIX}{i}" for i in writer.record}
    untouched = {k: v for k, v in docs.items() if k not in touched}
    assert untouched == {k: v for k, v in loaded.items() if k not in touched}
    enumerated, backed_up = steps.get("enumerate", (0.0, 0.0)), steps.get("backup", (0.0, 0.0))

    def converted(i: int) -> bool:
        """Whether document ``i``'s last write is one the apply converted for good (the
        backup holds what the enumeration listed, as the backup read it)."""
        if moment != "contract" or scenario.datatype == "float32" or i in writer.written_back:
            return False
        if writer.last_at[i] > backed_up[1] + 0.05:
            return True
        # written while the keys were listed or backed up: either, as they came first
        return writer.last_at[i] > enumerated[0] and docs.get(f"{OLD_PREFIX}{i}", {}).get(
            b"emb"
        ) == _as_float32(scenario.datatype, writer.record[i][1])  # type: ignore[index]

    wrong: list[str] = []
    for i, last in writer.record.items():
        key = f"{OLD_PREFIX}{i}"
        if last is None:
            expected: Any = None
        elif scenario.storage == "json":  # whole documents replaced, arrays of numbers
            title, vector = last
            expected = {"title": title, "emb": vector.astype(np.float32).tolist()}
        else:
            title, vector = last
            emb = _as_float32(writer.formats[i], vector)
            expected = {b"title": title.encode(), b"emb": emb}
        got = as_written(scenario.storage, docs.get(key))
        if last is not None and converted(i):
            # written in the old datatype during the apply (the backup read it before):
            # converted, and its float32 bytes removed by the contract; the rollback
            # widens the float16 bytes back (README)
            expected = {**expected, b"emb": _as_float32(scenario.datatype, last[1])}
        if got != expected:
            why = ""
            if last is not None and isinstance(got, dict):
                as16 = _as_float32("float16", last[1]) == got.get(b"emb")
                as32 = _as_float32("float32", last[1]) == got.get(b"emb")
                why = f" [emb as float16 {as16}, as float32 {as32}]"
            wrong.append(f"{key} (written {writer.formats.get(i)}): {_describe(got)}{why}")
    assert wrong == [], f"{len(wrong)} written documents not in the original layout"

    # the public name serves the source schema over every document; nothing left behind
    assert definition(r, INDEX) == source_definition
    (index,) = [x.decode() for x in r.execute_command("FT._LIST")]
    assert index.startswith(ROLLBACK_INDEX)
    info = r.execute_command("FT.INFO", INDEX)
    alive = sorted(f"{OLD_PREFIX}{i}" for i, last in writer.record.items() if last)
    assert int(info[b"num_docs"]) == SIZE.docs + len(created) - len(deleted)
    assert int(info[b"hash_indexing_failures"]) == 0
    assert found_by_name(r, alive) == set(alive)
    assert other_keys(r) == [f"ftctl:schema:{index}"]
    (record,) = history(r).values()
    assert record["aliases"] == [INDEX]


def _describe(document: Any) -> str:
    if not isinstance(document, dict):
        return repr(document)
    return ", ".join(
        f"{k.decode()}={len(v)}B" if k == b"emb" else f"{k.decode()}={v.decode()!r}"
        for k, v in sorted(document.items())
    )


def _timeline(steps: dict[str, tuple[float, float]], failures: list[Any]) -> str:
    """The steps and the first failed queries, on one clock (to see which step they hit)."""
    offset = time.time() - time.monotonic()
    lines = [f"{a:.3f}-{b:.3f} step {step}" for step, (a, b) in steps.items()]
    lines += [f"{start + offset:.3f} failed: {what}" for start, _, what in failures[:20]]
    return "\n".join(sorted(lines))
