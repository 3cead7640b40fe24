"""MigrationPlanner / AsyncMigrationPlanner: snapshot the live index through a driver, then plan.

Both run the same sans-IO step (:func:`planning_step`); only the driver differs. Planning
changes nothing in Redis: the capability probe and the target validation create throwaway
indexes on prefixes no key matches and drop them in the same pipeline.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import redis
import redis.asyncio

from ftctl.drivers import AsyncDriver, SyncDriver, async_connect, connect, mask_url
from ftctl.drivers.connect import resolve_url
from ftctl.errors import UsageError
from ftctl.plan.build import build_plan, merge_request, resolve_source, snapshot_request
from ftctl.plan.integrity import seal
from ftctl.plan.models import DiffClassification, MigrationPlan, SchemaPatch, load_patch
from ftctl.plan.online import ModeRequest, OnlineOptions
from ftctl.schema.model import IndexSchema, load_schema
from ftctl.steps.effects import Step
from ftctl.steps.probe import probe_capabilities
from ftctl.steps.shape import (
    ServerCheck,
    check_for_planning,
    missing_permissions,
    partial_indexing_problems,
    plan_permissions,
    read_identity,
)
from ftctl.steps.snapshot import read_aliases, read_memory, read_source, read_target
from ftctl.text import printable
from ftctl.version import ftctl_version


def planning_step(
    index: str,
    request: SchemaPatch | IndexSchema,
    *,
    redis_url: str = "",
    created_at: str | None = None,
    mode: ModeRequest = "drop_recreate",
    online: OnlineOptions | None = None,
) -> Step[MigrationPlan]:
    """Check the server's shape, snapshot, probe, merge, second snapshot round, then the
    pure :func:`build_plan`; last, what the plan's apply will need of the server, and the
    seal: the server's identity and the digest of the whole plan (:mod:`ftctl.plan.integrity`).

    Refused before any planning read (RefusedError): a server in cluster mode, a user who
    may not send what planning sends. Unless ``mode`` is drop_recreate, also reads the
    server's memory and the named aliases.
    """
    server = yield from check_for_planning(index)
    snapshot = yield from read_source(index, redis_url=mask_url(redis_url))
    options = online or OnlineOptions(token=secrets.token_hex(4))
    if mode != "drop_recreate":
        memory = yield from read_memory()
        aliases = yield from read_aliases(options.aliases)
        snapshot = msgspec.structs.replace(snapshot, memory=memory, alias_targets=aliases)
    capabilities = yield from probe_capabilities()
    source, _ = resolve_source(snapshot)
    merged = merge_request(source, request)
    wanted = snapshot_request(source, merged)
    snapshot = yield from read_target(snapshot, wanted, merged.target, source=source)
    plan = build_plan(
        snapshot,
        request,
        capabilities,
        merged=merged,
        created_at=created_at or datetime.now(UTC).isoformat(timespec="seconds"),
        ftctl_version=ftctl_version(),
        mode=mode,
        online_options=options,
    )
    plan = yield from _server_verdicts(plan, server)
    identity = yield from read_identity(plan.source.index_name)
    return seal(plan, identity)


def _server_verdicts(plan: MigrationPlan, server: ServerCheck) -> Step[MigrationPlan]:
    """The plan with what this server means for it: blocked where PARTIAL_INDEXED_DOCS
    breaks what it relies on; a warning when the planning user lacks a permission apply
    needs (apply may run as another user, and checks again), or none could be checked."""
    blocked = list(plan.diff_classification.blocked_reasons)
    if server.shape.partial_indexed_docs:
        blocked += [r for r in partial_indexing_problems(plan) if r not in blocked]
    warnings = list(plan.warnings)
    missing = yield from missing_permissions(plan_permissions(plan), server.shape.user)
    who = f"user '{printable(server.shape.user)}'" if server.shape.user else "the planning user"
    if missing:
        warnings.append(
            f"ACL: {who} lacks permissions applying this plan needs ({', '.join(missing)}); "
            "apply refuses unless it runs as a user that has them"
        )
    elif missing is None:
        warnings.append(
            f"ACL: {who} may run neither MULTI nor ACL DRYRUN, so the permissions applying "
            "this plan needs could not be checked"
        )
    return msgspec.structs.replace(
        plan,
        diff_classification=DiffClassification(supported=not blocked, blocked_reasons=blocked),
        warnings=warnings,
    )


def resolve_request(
    *,
    schema_patch_path: str | Path | None = None,
    target_schema_path: str | Path | None = None,
    schema_patch: SchemaPatch | None = None,
    target_schema: IndexSchema | None = None,
) -> SchemaPatch | IndexSchema:
    """Exactly one of the four ways to say what should change; otherwise a UsageError."""
    given = [
        x
        for x in (schema_patch_path, target_schema_path, schema_patch, target_schema)
        if x is not None
    ]
    if len(given) != 1:
        raise UsageError(
            "give exactly one of a schema patch or a target schema"
            + (f" (got {len(given)})" if given else ""),
            "use --schema-patch FILE or --target-schema FILE",
        )
    if schema_patch is not None:
        return schema_patch
    if target_schema is not None:
        return target_schema
    if schema_patch_path is not None:
        return load_patch(schema_patch_path)
    assert target_schema_path is not None
    return load_schema(target_schema_path)


def _planning(
    index: str,
    url: str,
    mode: ModeRequest,
    aliases: list[str] | None,
    keep_old_name: bool,
    postpone_cutover: bool,
    *,
    schema_patch_path: str | Path | None,
    target_schema_path: str | Path | None,
    schema_patch: SchemaPatch | None,
    target_schema: IndexSchema | None,
) -> Step[MigrationPlan]:
    """The one planning step both planners drive (arguments as ``create_plan`` takes them)."""
    online = OnlineOptions(
        aliases=list(aliases or []),
        keep_old_name=keep_old_name,
        postpone_cutover=postpone_cutover,
        token=secrets.token_hex(4),
    )
    request = resolve_request(
        schema_patch_path=schema_patch_path,
        target_schema_path=target_schema_path,
        schema_patch=schema_patch,
        target_schema=target_schema,
    )
    return planning_step(index, request, redis_url=url, mode=mode, online=online)


class MigrationPlanner:
    """Plans a migration of one index (RedisVL's ``MigrationPlanner`` signature)."""

    def create_plan(
        self,
        index: str,
        *,
        redis_url: str | None = None,
        redis_client: redis.Redis | None = None,
        schema_patch_path: str | Path | None = None,
        target_schema_path: str | Path | None = None,
        schema_patch: SchemaPatch | None = None,
        target_schema: IndexSchema | None = None,
        mode: ModeRequest = "drop_recreate",
        aliases: list[str] | None = None,
        keep_old_name: bool = True,
        postpone_cutover: bool = False,
    ) -> MigrationPlan:
        """Snapshot ``index`` and plan the change; a blocked plan is returned, not raised.

        ``mode`` defaults to drop_recreate (RedisVL's behaviour); ``auto`` runs online when
        the change allows it. ``aliases``: other aliases of the source to move at cut-over.
        """
        url = resolve_url(redis_url) if redis_client is None else (redis_url or "")
        step = _planning(
            index, url, mode, aliases, keep_old_name, postpone_cutover,
            schema_patch_path=schema_patch_path, target_schema_path=target_schema_path,
            schema_patch=schema_patch, target_schema=target_schema,
        )  # fmt: skip
        client = redis_client or connect(url)
        try:
            return SyncDriver(client).run(step)
        finally:
            if redis_client is None:
                client.close()


class AsyncMigrationPlanner:
    """The asyncio twin of :class:`MigrationPlanner` (same step, same plan)."""

    async def create_plan(
        self,
        index: str,
        *,
        redis_url: str | None = None,
        redis_client: redis.asyncio.Redis | None = None,
        schema_patch_path: str | Path | None = None,
        target_schema_path: str | Path | None = None,
        schema_patch: SchemaPatch | None = None,
        target_schema: IndexSchema | None = None,
        mode: ModeRequest = "drop_recreate",
        aliases: list[str] | None = None,
        keep_old_name: bool = True,
        postpone_cutover: bool = False,
    ) -> MigrationPlan:
        """Snapshot ``index`` and plan the change; a blocked plan is returned, not raised.

        ``mode`` defaults to drop_recreate (RedisVL's behaviour); ``auto`` runs online when
        the change allows it. ``aliases``: other aliases of the source to move at cut-over.
        """
        url = resolve_url(redis_url) if redis_client is None else (redis_url or "")
        step = _planning(
            index, url, mode, aliases, keep_old_name, postpone_cutover,
            schema_patch_path=schema_patch_path, target_schema_path=target_schema_path,
            schema_patch=schema_patch, target_schema=target_schema,
        )  # fmt: skip
        client = redis_client or await async_connect(url)
        try:
            return await AsyncDriver(client).run(step)
        finally:
            if redis_client is None:
                await client.aclose()


__all__ = ["AsyncMigrationPlanner", "MigrationPlanner", "planning_step", "resolve_request"]
