"""Plans are tamper-evident and re-validated before they run (pure).

A plan is reviewed by a human, then applied, maybe days later, maybe by someone else. Three
checks keep what runs equal to what was reviewed, on the server it was reviewed for:

- **Digest.** The planner seals a plan (:func:`seal`): ``digest`` is the sha256 of its
  content as a file holds it, every field but the digest itself (the server identity
  included). An edit anywhere — ``lossy: false``, ``supported: true``, a schema — no longer
  matches. It is a checksum, not a signature: whoever edits a plan can recompute it, which
  is why the values are re-validated too.
- **Derived values agree with the plan's own content** (:func:`derived_problems`): the vector
  changes (which fields, which datatypes, which are lossy) are recomputed from the embedded
  source and target schemas, and so are the blocked reasons every schema rule finds without
  the server; a plan that says ``supported`` with reasons, or whose lossiness or
  classification its schemas contradict, is refused whatever its digest says.
- **Server identity** (:func:`identity_problem`): see :class:`~ftctl.plan.models.ServerIdentity`.

RedisVL plans, and plans of earlier releases, carry neither digest nor identity: they are
applied without those two checks (with a warning); their values are still re-validated.
"""

from __future__ import annotations

import hashlib

import msgspec

from ftctl.plan.build import RULES, Context, rewrites_of, vector_changes
from ftctl.plan.live import LiveSnapshot
from ftctl.plan.merge import Merged, diff_target
from ftctl.plan.models import (
    MigrationPlan,
    ServerIdentity,
    dump_plan,
    plan_from_builtins,
    plan_to_builtins,
)
from ftctl.schema.capabilities import Capabilities
from ftctl.schema.ftinfo import IndexInfo
from ftctl.schema.model import IndexSchema, schema_to_builtins

DIGEST_PREFIX = "sha256:"


def content_digest(plan: MigrationPlan) -> str:
    """``sha256:<hex>`` of the plan's content, every field but ``digest``, as a file holds
    it (stable across a YAML round trip)."""
    as_read = plan_from_builtins(msgspec.yaml.decode(dump_plan(plan)))
    raw = plan_to_builtins(as_read)
    raw.pop("digest", None)
    canonical = msgspec.json.encode(raw, order="sorted")
    return DIGEST_PREFIX + hashlib.sha256(canonical).hexdigest()


def seal(plan: MigrationPlan, server: ServerIdentity | None) -> MigrationPlan:
    """``plan`` with the server it was made against and the digest of the whole."""
    with_server = msgspec.structs.replace(plan, server=server, digest="")
    return msgspec.structs.replace(with_server, digest=content_digest(with_server))


def digest_problem(plan: MigrationPlan) -> str | None:
    """Why the plan's content does not match its digest (None: it matches, or it has none)."""
    if not plan.digest:
        return None
    if plan.digest != content_digest(plan):
        return (
            "the plan was edited after it was made: its content does not match its digest "
            f"({plan.digest[:19]}…)"
        )
    return None


def source_fingerprint(schema: IndexSchema) -> str:
    """sha256 hex of an index definition as FT.INFO reports it (name, prefixes, fields)."""
    canonical = msgspec.json.encode(schema_to_builtins(schema), order="sorted")
    return hashlib.sha256(canonical).hexdigest()


# --- derived values ---------------------------------------------------------------------------


def _merged(plan: MigrationPlan) -> Merged:
    """What merge produced, rebuilt from the plan: target, renames, each field's origin."""
    source, target = plan.source.schema_snapshot, plan.merged_target_schema
    renames = plan.rename_operations
    renamed_from = {r.new_name: r.old_name for r in renames.rename_fields}
    renamed_away = set(renamed_from.values())
    source_names = {f.name for f in source.fields}
    origin: dict[str, str] = {}
    for f in target.fields:
        if f.name in renamed_from:
            origin[f.name] = renamed_from[f.name]
        elif f.name in source_names and f.name not in renamed_away:
            origin[f.name] = f.name
    suspected = []
    if plan.requested_changes is None and not renames.rename_fields:
        suspected = diff_target(source, target).suspected_renames  # target-schema mode
    return Merged(target=target, renames=renames, origin=origin, suspected_renames=suspected)


def _schema_only_snapshot(plan: MigrationPlan) -> LiveSnapshot:
    """A snapshot holding only what the plan embeds: the rules that need live data (key
    counts, collisions, samples, other indexes, the server's verdict) find nothing in it."""
    source = plan.source
    info = IndexInfo(
        index_name=source.index_name, schema=source.schema_snapshot, stats=source.stats_snapshot
    )
    return LiveSnapshot(requested_name=source.index_name, source=info, target_validated=True)


def _change_key(field: str, source_field: str, src: str, dst: str) -> tuple[str, str, str, str]:
    return (field, source_field or field, src.lower(), dst.lower())


def derived_problems(plan: MigrationPlan) -> list[str]:
    """Where the plan's derived values contradict its own content (empty: they agree).

    Recomputed purely from the embedded schemas: the vector changes with their lossiness
    and re-encoding, the blocked reasons of every schema rule (capabilities as the plan
    recorded them), and whether an online plan can run online at all.
    """
    problems: list[str] = []
    classification = plan.diff_classification
    if classification.supported and classification.blocked_reasons:
        problems.append("diff_classification says supported: true but lists blocked reasons")
    merged = _merged(plan)
    source = plan.source.schema_snapshot
    expected = {
        _change_key(c.field, c.source_field, c.source_datatype, c.target_datatype): c
        for c in vector_changes(source, merged, {})
    }
    planned = {
        _change_key(c.field, c.source_field, c.source_datatype, c.target_datatype): c
        for c in plan.vector_changes
    }
    for key, change in planned.items():
        shown = f"vector_changes '{change.field}' {change.source_datatype}→{change.target_datatype}"
        wanted = expected.get(key)
        if wanted is None:
            problems.append(f"{shown} is not a change the plan's schemas make")
            continue
        if change.lossy != wanted.lossy:
            problems.append(
                f"{shown} says lossy: {str(change.lossy).lower()}, but that conversion is "
                f"{'lossy' if wanted.lossy else 'exact'}"
            )
        if change.reencode_documents != wanted.reencode_documents or change.dims != wanted.dims:
            problems.append(f"{shown} does not match the schemas (dims or re-encoding)")
    for key, change in expected.items():
        if key not in planned:
            problems.append(
                f"the schemas change vector field '{change.field}' from "
                f"{change.source_datatype} to {change.target_datatype}, but vector_changes "
                "does not list it (a plan written by another tool? re-plan with ftctl)"
            )
    ctx = Context(
        snapshot=_schema_only_snapshot(plan),
        source=source,
        merged=merged,
        capabilities=plan.capabilities or Capabilities(),
        vector_changes=list(vector_changes(source, merged, {})),
    )
    if classification.supported:
        blocked = list(dict.fromkeys(reason for rule in RULES for reason in rule(ctx)))
        if blocked:
            problems.append(
                "diff_classification says supported: true, but the plan's own schemas are "
                f"blocked: {'; '.join(blocked)}"
            )
    if plan.mode == "online":
        rewrites = rewrites_of(ctx)
        strategy = plan.online.strategy if plan.online is not None else None
        if rewrites.blockers:
            problems.append(f"mode: online, but {'; '.join(rewrites.blockers)}")
        elif rewrites.any and strategy != "expand":
            problems.append(
                f"mode: online with strategy {strategy}, but the change rewrites documents "
                "(only the expand strategy runs that online)"
            )
    return problems


# --- the server -------------------------------------------------------------------------------


def identity_problem(
    planned: ServerIdentity, live: ServerIdentity, *, sampled_keys_exist: bool
) -> str | None:
    """Why ``live`` is not the server the plan was made against (None: it is).

    The same run_id is the same server. Another run_id is the same server restarted only
    when it answers at the same address, its source index has the same definition and the
    keys the plan sampled exist: anything else is another server (a copy of the schema
    elsewhere, another environment behind the same name).
    """
    if planned.run_id and planned.run_id == live.run_id:
        return None
    same_place = bool(planned.address) and planned.address == live.address
    same_index = planned.source_fingerprint == live.source_fingerprint
    if same_place and same_index and sampled_keys_exist:
        return None
    differences = []
    if not same_place:
        differences.append(
            f"it was made against {planned.address or 'an unknown address'}, this server is "
            f"{live.address or 'at an unknown address'}"
        )
    if not same_index:
        differences.append("the source index here has another definition")
    if not sampled_keys_exist:
        differences.append("the keys the plan sampled do not all exist here")
    return (
        f"the plan was made against another server (run_id {planned.run_id[:12] or '?'}…, this "
        f"one is {live.run_id[:12] or '?'}…): {'; '.join(differences)}"
    )


def sample_keys(plan: MigrationPlan) -> list[bytes]:
    """The plan's sampled keys that read back unambiguously (no escape in their shown form)."""
    return [k.encode() for k in plan.source.keyspace.key_sample if "\\" not in k]


__all__ = [
    "DIGEST_PREFIX",
    "content_digest",
    "derived_problems",
    "digest_problem",
    "identity_problem",
    "sample_keys",
    "seal",
    "source_fingerprint",
]
