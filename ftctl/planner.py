"""MigrationPlanner / AsyncMigrationPlanner: snapshot the live index through a driver, then plan.

Both run the same sans-IO step (:func:`planning_step`); only the driver differs. Planning
changes nothing in Redis: the capability probe and the target validation create throwaway
indexes on prefixes no key matches and drop them in the same pipeline.
"""

from __future__ import annotations

import os
import secrets
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import redis
import redis.asyncio

from ftctl.drivers import AsyncDriver, SyncDriver, async_connect, connect, mask_url
from ftctl.drivers.connect import resolve_url
from ftctl.errors import UsageError
from ftctl.logs import get_logger
from ftctl.plan.build import build_plan, merge_request, resolve_source, snapshot_request
from ftctl.plan.integrity import seal
from ftctl.plan.models import DiffClassification, MigrationPlan, SchemaPatch, dump_plan, load_patch
from ftctl.plan.online import ModeRequest, OnlineOptions
from ftctl.schema.model import IndexSchema, load_schema
from ftctl.steps.effects import Step
from ftctl.steps.probe import probe_capabilities
from ftctl.steps.shape import (
    CAPTURE_PERMISSION,
    ServerCheck,
    check_for_planning,
    missing_permissions,
    partial_indexing_problems,
    plan_permissions,
    read_identity,
)
from ftctl.steps.snapshot import (
    KEY_SAMPLE_SIZE,
    read_aliases,
    read_memory,
    read_source,
    read_target,
)
from ftctl.text import printable
from ftctl.version import ftctl_version

log = get_logger("ftctl.planner")


def planning_step(
    index: str,
    request: SchemaPatch | IndexSchema,
    *,
    redis_url: str = "",
    created_at: str | None = None,
    mode: ModeRequest = "drop_recreate",
    online: OnlineOptions | None = None,
    key_sample_limit: int = KEY_SAMPLE_SIZE,
) -> Step[MigrationPlan]:
    """Check the server's shape, snapshot, probe, merge, second snapshot round, then the
    pure :func:`build_plan`; last, what the plan's apply will need of the server, and the
    seal: the server's identity and the digest of the whole plan (:mod:`ftctl.plan.integrity`).

    Where every alias the user named resolves (any mode: they are kept), and the server's
    memory. ``key_sample_limit``: keys recorded in ``source.keyspace.key_sample``
    (validation checks that each still exists under its final name).

    Refused before any planning read (RefusedError): a server in cluster mode, a user who
    may not send what planning sends.
    """
    server = yield from check_for_planning(index)
    snapshot = yield from read_source(
        index, key_sample_size=key_sample_limit, redis_url=mask_url(redis_url)
    )
    options = online or OnlineOptions(token=secrets.token_hex(4))
    named = yield from read_aliases([a for a in options.aliases if a not in snapshot.alias_targets])
    snapshot = msgspec.structs.replace(snapshot, alias_targets={**snapshot.alias_targets, **named})
    memory = yield from read_memory()  # every mode: the eviction policy concerns them all
    snapshot = msgspec.structs.replace(snapshot, memory=memory)
    capabilities = yield from probe_capabilities()
    source, _ = resolve_source(snapshot)
    merged = merge_request(source, request)
    wanted = snapshot_request(source, merged)
    snapshot = yield from read_target(snapshot, wanted, merged.target, source=source)
    made_at = created_at or datetime.now(UTC).isoformat(timespec="seconds")

    def build(chosen: ModeRequest) -> MigrationPlan:
        return build_plan(
            snapshot,
            request,
            capabilities,
            merged=merged,
            created_at=made_at,
            ftctl_version=ftctl_version(),
            mode=chosen,
            online_options=options,
        )

    plan = build(mode)
    if mode == "auto" and plan.online is not None and plan.online.strategy == "expand":
        problems = partial_indexing_problems(plan) if server.shape.partial_indexed_docs else []
        if (yield from missing_permissions([CAPTURE_PERMISSION], server.shape.user)):
            who = f"user '{printable(server.shape.user)}'" if server.shape.user else "this user"
            problems.append(
                f"following concurrent writes needs CLIENT TRACKING, which {who} may not run"
            )
        if problems:
            plan = _fallback(build("drop_recreate"), problems)
    plan = yield from _server_verdicts(plan, server)
    identity = yield from read_identity(plan.source.index_name)
    plan = seal(plan, identity)
    _log_decisions(plan, mode)
    return plan


def _fallback(plan: MigrationPlan, problems: list[str]) -> MigrationPlan:
    """The drop_recreate plan ``--mode auto`` falls back to, saying why online cannot run."""
    why = f"auto: online mode is not possible: {'; '.join(problems)}"
    return msgspec.structs.replace(
        plan, mode_reason=why, warnings=[*plan.warnings, f"drop_recreate chosen: {why}"]
    )


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


def _log_decisions(plan: MigrationPlan, requested: ModeRequest) -> None:
    """What the planner decided and why: the mode, and whether the plan can run."""
    bound = log.bind(index=plan.source.index_name)
    bound.info(
        "plan made",
        requested_mode=requested,
        mode=plan.mode,
        strategy=plan.online.strategy if plan.online is not None else None,
        reason=plan.mode_reason or None,
        supported=plan.supported,
        documents=plan.source.stats_snapshot.num_docs,
        warnings=len(plan.warnings),
        url=plan.redis_url or None,
    )
    for reason in plan.diff_classification.blocked_reasons:
        bound.warning("plan blocked", reason=reason)
    for warning in plan.warnings:
        bound.debug("plan warning", warning=warning)


def write_plan(plan: MigrationPlan, plan_out: str | os.PathLike[str]) -> Path:
    """Write ``plan`` as YAML to ``plan_out`` (RedisVL's ``write_plan``); returns the path.

    The file is what ``load_plan`` / ``load_migration_plan`` read back, with the same digest.
    An unwritable path is a :class:`UsageError` (a ``ValueError``).
    """
    path = Path(plan_out)
    try:
        path.write_bytes(dump_plan(plan))
    except OSError as exc:
        raise UsageError(
            f"cannot write the plan to '{path}': {exc.strerror}", "check --plan-out"
        ) from None
    return path


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
    postpone_cutover: bool | None,
    *,
    schema_patch_path: str | Path | None,
    target_schema_path: str | Path | None,
    schema_patch: SchemaPatch | None,
    target_schema: IndexSchema | None,
    key_sample_limit: int = KEY_SAMPLE_SIZE,
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
    return planning_step(
        index, request, redis_url=url, mode=mode, online=online, key_sample_limit=key_sample_limit
    )


class _PlannerFiles:
    """What both planners share: RedisVL's file helpers and the key sample size."""

    def __init__(self, key_sample_limit: int = KEY_SAMPLE_SIZE) -> None:
        self.key_sample_limit = key_sample_limit

    def write_plan(self, plan: MigrationPlan, plan_out: str | os.PathLike[str]) -> None:
        """Write ``plan`` as YAML to ``plan_out`` (see :func:`write_plan`)."""
        write_plan(plan, plan_out)

    def load_schema_patch(self, schema_patch_path: str | os.PathLike[str]) -> SchemaPatch:
        """Read a schema patch YAML file (RedisVL's ``load_schema_patch``)."""
        return load_patch(Path(schema_patch_path))


class MigrationPlanner(_PlannerFiles):
    """Plans a migration of one index (RedisVL's ``MigrationPlanner`` signature).

    ``key_sample_limit`` (RedisVL's argument; default 5): how many keys the plan samples.
    """

    def create_plan(
        self,
        index_name: str,
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
        postpone_cutover: bool | None = None,
    ) -> MigrationPlan:
        """Snapshot ``index_name`` and plan the change; a blocked plan is returned, not raised.

        ``mode`` defaults to drop_recreate (RedisVL's behaviour); ``auto`` runs online when
        the change allows it. ``aliases``: other aliases of the source to keep (any mode:
        RediSearch cannot list aliases, and an alias nobody names is dropped with the index).
        """
        url = resolve_url(redis_url) if redis_client is None else (redis_url or "")
        step = _planning(
            index_name, url, mode, aliases, keep_old_name, postpone_cutover,
            schema_patch_path=schema_patch_path, target_schema_path=target_schema_path,
            schema_patch=schema_patch, target_schema=target_schema,
            key_sample_limit=self.key_sample_limit,
        )  # fmt: skip
        client = redis_client or connect(url)
        try:
            return SyncDriver(client).run(step)
        finally:
            if redis_client is None:
                client.close()

    def create_plan_from_patch(
        self,
        index_name: str,
        *,
        schema_patch: SchemaPatch,
        redis_url: str | None = None,
        redis_client: redis.Redis | None = None,
    ) -> MigrationPlan:
        """RedisVL's name for :meth:`create_plan` with an in-memory ``schema_patch``."""
        return self.create_plan(
            index_name, redis_url=redis_url, redis_client=redis_client, schema_patch=schema_patch
        )


class AsyncMigrationPlanner(_PlannerFiles):
    """The asyncio twin of :class:`MigrationPlanner` (same step, same plan).

    ``write_plan`` and ``load_schema_patch`` are plain (not awaited) methods, as in RedisVL.
    """

    async def create_plan(
        self,
        index_name: str,
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
        postpone_cutover: bool | None = None,
    ) -> MigrationPlan:
        """Snapshot ``index_name`` and plan the change; a blocked plan is returned, not raised.

        ``mode`` defaults to drop_recreate (RedisVL's behaviour); ``auto`` runs online when
        the change allows it. ``aliases``: other aliases of the source to keep (any mode:
        RediSearch cannot list aliases, and an alias nobody names is dropped with the index).
        """
        url = resolve_url(redis_url) if redis_client is None else (redis_url or "")
        step = _planning(
            index_name, url, mode, aliases, keep_old_name, postpone_cutover,
            schema_patch_path=schema_patch_path, target_schema_path=target_schema_path,
            schema_patch=schema_patch, target_schema=target_schema,
            key_sample_limit=self.key_sample_limit,
        )  # fmt: skip
        client = redis_client or await async_connect(url)
        try:
            return await AsyncDriver(client).run(step)
        finally:
            if redis_client is None:
                await client.aclose()

    async def create_plan_from_patch(
        self,
        index_name: str,
        *,
        schema_patch: SchemaPatch,
        redis_url: str | None = None,
        redis_client: redis.asyncio.Redis | None = None,
    ) -> MigrationPlan:
        """RedisVL's name for :meth:`create_plan` with an in-memory ``schema_patch``."""
        return await self.create_plan(
            index_name, redis_url=redis_url, redis_client=redis_client, schema_patch=schema_patch
        )


__all__ = [
    "AsyncMigrationPlanner",
    "MigrationPlanner",
    "planning_step",
    "resolve_request",
    "write_plan",
]
