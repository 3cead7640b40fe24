"""The batch planner's read of the server: select, probe once, snapshot each index (sans-IO)."""

from __future__ import annotations

from typing import Any

import msgspec

from ftctl.errors import UsageError
from ftctl.plan.batch import BatchPlan, SnappedIndex, select_indexes
from ftctl.plan.build import merge_request, resolve_source, snapshot_request
from ftctl.plan.integrity import seal
from ftctl.plan.models import MigrationPlan, SchemaPatch, plan_digest
from ftctl.schema.capabilities import Capabilities
from ftctl.steps.catalog import public_indexes
from ftctl.steps.effects import Step
from ftctl.steps.probe import probe_capabilities
from ftctl.steps.shape import read_identity, read_shape, refuse_cluster
from ftctl.steps.snapshot import read_source, read_target


def batch_snapshot_step(
    selector: dict[str, Any], patch: SchemaPatch, *, redis_url: str = ""
) -> Step[tuple[list[SnappedIndex], Capabilities]]:
    """Refuse a server in cluster mode, select the indexes, probe once, then snapshot and
    merge each one (read-only).

    ``selector`` holds the keyword arguments of :func:`~ftctl.plan.batch.select_indexes`;
    a pattern matches public names (aliases in ftctl's schema history) and real names.
    An index that cannot be read or merged is returned with its skip reason, not raised.
    ``redis_url`` is recorded in each snapshot as given: pass it masked.
    """
    refuse_cluster((yield from read_shape()))
    live = yield from public_indexes()
    aliases = {p.index: p.aliases for p in live}
    names = select_indexes([p.index for p in live], aliases=aliases, **selector)
    capabilities = yield from probe_capabilities()
    out: list[SnappedIndex] = []
    for name in names:
        try:
            snapshot = yield from read_source(name, redis_url=redis_url)
        except UsageError as exc:
            out.append(SnappedIndex(name=name, skip_reason=exc.message))
            continue
        if any(s.name == snapshot.source.index_name for s in out):
            continue  # two names of one index (an alias and its index): planned once
        source, _ = resolve_source(snapshot)
        try:
            merged = merge_request(source, patch)
        except UsageError as exc:
            out.append(
                SnappedIndex(
                    name=snapshot.source.index_name, snapshot=snapshot, skip_reason=exc.message
                )
            )
            continue
        wanted = snapshot_request(source, merged)
        snapshot = yield from read_target(snapshot, wanted, merged.target, source=source)
        out.append(SnappedIndex(name=snapshot.source.index_name, snapshot=snapshot, merged=merged))
    return out, capabilities


def sealed_batch(batch: BatchPlan) -> Step[BatchPlan]:
    """``batch`` with each per-index plan sealed like the single-index planner's: the
    server's identity (with that index's fingerprint) and the plan's digest; the entries
    record the sealed plans' sha256."""
    plans: dict[str, MigrationPlan] = {}
    for name, plan in batch.plans.items():
        identity = yield from read_identity(plan.source.index_name)
        plans[name] = seal(plan, identity)
    entries = [
        msgspec.structs.replace(e, plan_sha256=plan_digest(plans[e.name]))
        if e.name in plans and e.plan_sha256
        else e
        for e in batch.indexes
    ]
    return msgspec.structs.replace(batch, plans=plans, indexes=entries)


__all__ = ["batch_snapshot_step", "sealed_batch"]
