"""BatchMigrationPlanner / BatchMigrationExecutor: one shared patch over many indexes.

Planning snapshots and plans each selected index with the single-index planner's steps and
its pure :func:`~ftctl.plan.build.build_plan`; every applicable index gets a full
:class:`~ftctl.plan.models.MigrationPlan` written to ``plans/<index>.yaml`` beside the batch
plan, referenced there by path and sha256. Applying runs exactly those reviewed plans, one
index after another, each through :class:`~ftctl.executor.MigrationExecutor` with its own
journal; the batch's own journal (``<backup-dir>/batch-<batch_id>/journal.log``) records
each index's start, end and journal. ``batch_state.yaml`` and ``batch_report.yaml`` are
rendered from that journal after every event (see :mod:`ftctl.journal.batch`).
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import re
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeAlias

import msgspec
import redis

from ftctl.drivers import SyncDriver, client_url, connect, mask_url
from ftctl.drivers.connect import resolve_url
from ftctl.errors import FtctlError, Interrupted, RefusedError, UsageError
from ftctl.executor import RUN_PROTOCOL, MigrationExecutor, check_plan, ftctl_version
from ftctl.journal import Journal, RunFinished, RunStarted
from ftctl.journal.batch import (
    FAILED,
    PENDING,
    SUCCESS,
    BatchIndexEntry,
    BatchIndexFinished,
    BatchIndexInterrupted,
    BatchIndexStarted,
    BatchProgress,
    BatchReport,
    BatchStarted,
    BatchState,
    IndexProgress,
    project_batch,
    project_batch_report,
    project_batch_state,
)
from ftctl.journal.events import AnyEvent
from ftctl.journal.report import MigrationReport, project_report
from ftctl.plan.build import (
    build_plan,
    merge_request,
    overlapping_prefixes,
    resolve_source,
    snapshot_request,
)
from ftctl.plan.live import LiveSnapshot
from ftctl.plan.merge import Merged
from ftctl.plan.models import (
    MigrationPlan,
    SchemaPatch,
    dump_patch,
    dump_plan,
    load_patch,
    load_plan,
    patch_from_builtins,
    plan_digest,
)
from ftctl.schema.capabilities import Capabilities
from ftctl.schema.model import IndexSchema
from ftctl.steps.effects import Commands, ReplyError, Step
from ftctl.steps.probe import probe_capabilities
from ftctl.steps.snapshot import read_source, read_target

FailurePolicy: TypeAlias = Literal["fail_fast", "continue_on_error"]
BatchProgressCallback = Callable[[str, int, int, str], None]
"""``(index name, position, total, status)``; status is ``running``, ``success`` or ``failed``."""

INTERNAL_INDEX_PREFIX = "__ftctl_"
PLANS_DIR = "plans"
BATCH_JOURNAL_PREFIX = "batch-"
REPORT_NAME = "batch_report.yaml"

# --- the batch plan -------------------------------------------------------------------------


class BatchPlanIndex(msgspec.Struct, frozen=True, kw_only=True):
    """One selected index: applicable with its reviewed plan, or skipped with the reason."""

    name: str
    applicable: bool
    skip_reason: str | None = None
    plan_path: str | None = None
    """Relative to the batch plan file (``plans/<index>.yaml``)."""
    plan_sha256: str | None = None
    prefixes: list[str] = msgspec.field(default_factory=list)


class BatchPlan(msgspec.Struct, frozen=True, kw_only=True):
    """``batch_plan.yaml`` in the guide's fields (plus the reviewed plans' paths and digests).

    ``plans`` holds the per-index plans of a batch plan that was planned in this process and
    not written yet; it is never written to the YAML. ``source_path`` is where the file was
    read from (per-index plan paths are relative to its directory).
    """

    version: int = 1
    batch_id: str
    mode: str = "drop_recreate"
    failure_policy: FailurePolicy = "fail_fast"
    requires_quantization: bool = False
    shared_patch: SchemaPatch
    indexes: list[BatchPlanIndex] = msgspec.field(default_factory=list)
    created_at: str = ""
    redis_url: str = ""
    ftctl_version: str = ""
    plans: dict[str, MigrationPlan] = msgspec.field(default_factory=dict)
    source_path: str = ""

    @property
    def applicable(self) -> list[BatchPlanIndex]:
        return [i for i in self.indexes if i.applicable]


def batch_plan_to_builtins(batch: BatchPlan) -> dict[str, Any]:
    """The batch plan as plain data in the guide's order (``plans``/``source_path`` left out)."""
    indexes = []
    for entry in batch.indexes:
        raw: dict[str, Any] = {"name": entry.name, "applicable": entry.applicable}
        raw["skip_reason"] = entry.skip_reason
        if entry.applicable:
            raw["plan_path"] = entry.plan_path
            raw["plan_sha256"] = entry.plan_sha256
        raw["prefixes"] = list(entry.prefixes)
        indexes.append(raw)
    return {
        "version": batch.version,
        "batch_id": batch.batch_id,
        "mode": batch.mode,
        "failure_policy": batch.failure_policy,
        "requires_quantization": batch.requires_quantization,
        "shared_patch": msgspec.yaml.decode(dump_patch(batch.shared_patch)),
        "indexes": indexes,
        "created_at": batch.created_at,
        "redis_url": batch.redis_url,
        "ftctl_version": batch.ftctl_version,
    }


def dump_batch_plan(batch: BatchPlan) -> bytes:
    """``batch_plan.yaml`` bytes."""
    return msgspec.yaml.encode(batch_plan_to_builtins(batch))


def batch_plan_digest(batch: BatchPlan) -> str:
    """sha256 of the batch plan's canonical JSON (it covers every per-index plan digest)."""
    canonical = msgspec.json.encode(batch_plan_to_builtins(batch), order="sorted")
    return hashlib.sha256(canonical).hexdigest()


def load_batch_plan(source: str | os.PathLike[str] | bytes) -> BatchPlan:
    """Load ``batch_plan.yaml`` (a path, or YAML bytes); a bad shape is a UsageError."""
    if isinstance(source, bytes):
        label, data, where = "batch plan", source, ""
    else:
        label, where = f"'{source}'", str(Path(source).resolve())
        try:
            data = Path(source).read_bytes()
        except OSError as exc:
            raise UsageError(
                f"cannot read batch plan {label}: {exc.strerror}", "check --plan"
            ) from None
    try:
        raw = msgspec.yaml.decode(data)
        if not isinstance(raw, dict):
            raise msgspec.ValidationError("expected a mapping")
        raw = dict(raw)
        raw.pop("plans", None)
        raw["source_path"] = where
        raw["shared_patch"] = msgspec.to_builtins(
            patch_from_builtins(raw.get("shared_patch"), label=f"{label} shared_patch")
        )
        return msgspec.convert(raw, BatchPlan)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise UsageError(
            f"{label} is not a valid batch plan: {' '.join(str(exc).split())}",
            "write one with 'ftctl migrate batch-plan'",
        ) from None


def normalized(plan: MigrationPlan) -> MigrationPlan:
    """The plan as it reads back from its YAML (the reviewed file is what runs and is hashed)."""
    return load_plan(dump_plan(plan))


def _plan_file_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name) + ".yaml"


def write_batch_plan(batch: BatchPlan, path: str | os.PathLike[str]) -> BatchPlan:
    """Write each applicable index's plan to ``plans/<index>.yaml`` beside ``path``, then the
    batch plan referencing them by relative path and sha256; returns the plan as written."""
    target = Path(path)
    plans_dir = target.parent / PLANS_DIR
    entries: list[BatchPlanIndex] = []
    used: set[str] = set()
    try:
        for entry in batch.indexes:
            if not entry.applicable:
                entries.append(entry)
                continue
            plan = batch.plans.get(entry.name)
            if plan is None:
                raise UsageError(
                    f"the batch plan has no plan for index '{entry.name}'",
                    "create it with BatchMigrationPlanner().create_batch_plan",
                )
            file_name = _plan_file_name(entry.name)
            while file_name in used:
                file_name = "_" + file_name
            used.add(file_name)
            plans_dir.mkdir(parents=True, exist_ok=True)
            data = dump_plan(plan)
            (plans_dir / file_name).write_bytes(data)
            digest = plan_digest(load_plan(data))
            entries.append(
                msgspec.structs.replace(
                    entry, plan_path=f"{PLANS_DIR}/{file_name}", plan_sha256=digest
                )
            )
        written = msgspec.structs.replace(batch, indexes=entries, source_path=str(target.resolve()))
        target.write_bytes(dump_batch_plan(written))
    except OSError as exc:
        raise UsageError(
            f"cannot write the batch plan to '{target}': {exc.strerror}", "check --plan-out"
        ) from None
    return written


# --- planning -------------------------------------------------------------------------------


class OverlapError(RefusedError):
    """batch-plan refused: applicable indexes (or an outside index) share keys."""

    def __init__(self, conflicts: list[str], outside: list[str]) -> None:
        lines = ["Refusing to create batch plan: overlapping indexes detected."]
        if conflicts:
            lines += [
                "Multiple indexes in the batch share Redis key prefixes. Running a",
                "batch migration over overlapping indexes can mutate the same keys",
                "more than once (e.g., double-quantization of vectors), corrupting",
                "the underlying data.",
            ]
        if outside:
            lines += [
                "Live indexes outside the batch share keys with an applicable index and",
                "index a vector field the batch re-encodes; they would see the new bytes",
                "and silently drop or fail to index those documents.",
            ]
        lines.append("Conflicts:")
        lines += [f"- {c}" for c in conflicts + outside]
        lines += [
            "Resolve by migrating overlapping indexes one at a time, or by",
            "narrowing the batch to a set of indexes with disjoint prefixes.",
        ]
        super().__init__(
            "\n".join(lines),
            "split the indexes into prefix-disjoint groups and run batch-plan once per group",
        )
        self.conflicts = conflicts
        self.outside = outside


@dataclass
class _Snapped:
    name: str
    snapshot: LiveSnapshot | None = None
    merged: Merged | None = None
    skip_reason: str | None = None


def _masked(url: str) -> str:
    return mask_url(url) if url else ""


def select_indexes(
    live: Sequence[str],
    *,
    pattern: str | None = None,
    indexes: str | Sequence[str] | None = None,
    indexes_file: str | os.PathLike[str] | None = None,
) -> list[str]:
    """The index names a batch covers (exactly one selector); pure except reading the file."""
    given = [x for x in (pattern, indexes, indexes_file) if x is not None]
    if len(given) != 1:
        raise UsageError(
            "give exactly one of a pattern, a list of indexes or an indexes file",
            "use --pattern GLOB, --indexes a,b,c or --indexes-file FILE",
        )
    if pattern is not None:
        names = sorted(
            n
            for n in live
            if fnmatch.fnmatchcase(n, pattern) and not n.startswith(INTERNAL_INDEX_PREFIX)
        )
        if not names:
            raise UsageError(
                f"no index matches '{pattern}'", "run 'ftctl index listall' to see the indexes"
            )
        return names
    if indexes is not None:
        raw = indexes.split(",") if isinstance(indexes, str) else list(indexes)
    else:
        assert indexes_file is not None
        try:
            text = Path(indexes_file).read_text()
        except OSError as exc:
            raise UsageError(
                f"cannot read indexes file '{indexes_file}': {exc.strerror}", "check the path"
            ) from None
        raw = [line.split("#", 1)[0] for line in text.splitlines()]
    names = list(dict.fromkeys(n.strip() for n in raw if n.strip()))
    if not names:
        raise UsageError("no index names given", "list at least one index")
    return names


def _list_indexes() -> Step[list[str]]:
    (reply,) = yield Commands([("FT._LIST",)])
    if isinstance(reply, ReplyError):
        raise UsageError(f"FT._LIST failed: {reply.message}", "is RediSearch loaded?")
    items = reply if isinstance(reply, list | set | tuple) else []
    return sorted(i.decode() if isinstance(i, bytes) else str(i) for i in items)


def batch_snapshot_step(
    selector: dict[str, Any], patch: SchemaPatch, *, redis_url: str = ""
) -> Step[tuple[list[_Snapped], Capabilities]]:
    """Select the indexes, probe once, then snapshot and merge each one (read-only)."""
    live = yield from _list_indexes()
    names = select_indexes(live, **selector)
    capabilities = yield from probe_capabilities()
    out: list[_Snapped] = []
    for name in names:
        try:
            snapshot = yield from read_source(name, redis_url=_masked(redis_url))
        except UsageError as exc:
            out.append(_Snapped(name, skip_reason=exc.message))
            continue
        source, _ = resolve_source(snapshot)
        try:
            merged = merge_request(source, patch)
        except UsageError as exc:
            out.append(
                _Snapped(snapshot.source.index_name, snapshot=snapshot, skip_reason=exc.message)
            )
            continue
        wanted = snapshot_request(source, merged)
        snapshot = yield from read_target(snapshot, wanted, merged.target, source=source)
        out.append(_Snapped(snapshot.source.index_name, snapshot=snapshot, merged=merged))
    return out, capabilities


def _pairs_text(pairs: list[tuple[str, str]]) -> str:
    return ", ".join(f"'{x}' <-> '{y}'" for x, y in pairs)


def _reencoded_paths(plan: MigrationPlan) -> dict[str, str]:
    """Source document path → field name of every vector field the plan re-encodes."""
    source = plan.source.schema_snapshot
    out: dict[str, str] = {}
    for change in plan.vector_changes:
        if not change.reencode_documents:
            continue
        f = source.field(change.source_field or change.field)
        if f is not None:
            out[source.field_path(f)] = f.name
    return out


def find_overlaps(
    candidates: Sequence[MigrationPlan], live: Sequence[IndexSchema]
) -> tuple[list[str], list[str]]:
    """Conflicts among the applicable plans, and with live indexes outside them (pure).

    Inside: any two applicable indexes whose prefixes overlap (FT.CREATE PREFIX semantics).
    Outside: a live index not applicable in the batch, on the same storage type, whose
    prefixes overlap an applicable index's and that indexes a vector field it re-encodes.
    """
    inside: list[str] = []
    for i, a in enumerate(candidates):
        for b in candidates[i + 1 :]:
            pairs = overlapping_prefixes(
                a.source.schema_snapshot.prefixes, b.source.schema_snapshot.prefixes
            )
            if pairs:
                inside.append(f"{a.index_name} <-> {b.index_name}: {_pairs_text(pairs)}")
    names = {p.index_name for p in candidates}
    outside: list[str] = []
    for plan in candidates:
        paths = _reencoded_paths(plan)
        if not paths:
            continue
        source = plan.source.schema_snapshot
        for other in live:
            if other.name in names or other.storage_type != source.storage_type:
                continue
            pairs = overlapping_prefixes(source.prefixes, other.prefixes)
            shared = sorted(
                paths[other.field_path(v)]
                for v in other.vector_fields()
                if other.field_path(v) in paths
            )
            if pairs and shared:
                outside.append(
                    f"{plan.index_name} <-> {other.name} (not in the batch): "
                    f"{_pairs_text(pairs)}; both index vector field "
                    + ", ".join(f"'{s}'" for s in shared)
                )
    return inside, outside


def _unchanged(plan: MigrationPlan) -> bool:
    return (
        plan.source.schema_snapshot == plan.merged_target_schema
        and plan.rename_operations.is_empty()
        and not plan.vector_changes
    )


def classify(
    snapped: Sequence[_Snapped],
    patch: SchemaPatch,
    capabilities: Capabilities,
    *,
    batch_id: str,
    failure_policy: FailurePolicy,
    created_at: str,
    redis_url: str = "",
) -> BatchPlan:
    """The batch plan from the snapshots (pure); raises :class:`OverlapError`.

    Applicability is the single-index planner's verdict on the index by itself; overlaps
    between indexes are then the batch's own check, so that two batch members sharing keys
    are refused (with both named) rather than quietly both skipped.
    """
    version = ftctl_version()
    verdicts: dict[str, str | None] = {}
    alone: dict[str, MigrationPlan] = {}
    live: dict[str, IndexSchema] = {}
    for item in snapped:
        if item.snapshot is None or item.merged is None:
            verdicts[item.name] = item.skip_reason or "not planned"
            continue
        live[item.name] = item.snapshot.source.schema
        for other in item.snapshot.other_indexes:
            live.setdefault(other.name, other)
        by_itself = msgspec.structs.replace(item.snapshot, other_indexes=[])
        plan = build_plan(
            by_itself,
            patch,
            capabilities,
            merged=item.merged,
            created_at=created_at,
            ftctl_version=version,
        )
        if not plan.supported:
            verdicts[item.name] = "; ".join(plan.diff_classification.blocked_reasons)
        elif _unchanged(plan):
            verdicts[item.name] = "the index already matches the patch (nothing to change)"
        else:
            verdicts[item.name] = None
            alone[item.name] = plan
    inside, outside = find_overlaps(list(alone.values()), list(live.values()))
    if inside or outside:
        raise OverlapError(inside, outside)
    entries: list[BatchPlanIndex] = []
    plans: dict[str, MigrationPlan] = {}
    for item in snapped:
        reason = verdicts[item.name]
        prefixes = item.snapshot.source.schema.prefixes if item.snapshot else []
        if reason is None:
            assert item.snapshot is not None and item.merged is not None
            # The plan as the single-index planner makes it: with every other live index.
            plan = normalized(
                build_plan(
                    item.snapshot,
                    patch,
                    capabilities,
                    merged=item.merged,
                    created_at=created_at,
                    ftctl_version=version,
                )
            )
            if not plan.supported:
                reason = "; ".join(plan.diff_classification.blocked_reasons)
            else:
                plans[item.name] = plan
                entries.append(
                    BatchPlanIndex(
                        name=item.name,
                        applicable=True,
                        plan_sha256=plan_digest(plan),
                        prefixes=list(prefixes),
                    )
                )
                continue
        entries.append(
            BatchPlanIndex(
                name=item.name, applicable=False, skip_reason=reason, prefixes=list(prefixes)
            )
        )
    modes = {p.mode for p in plans.values()}
    return BatchPlan(
        batch_id=batch_id,
        mode=modes.pop() if len(modes) == 1 else "drop_recreate",
        failure_policy=failure_policy,
        requires_quantization=any(p.vector_changes for p in plans.values()),
        shared_patch=patch,
        indexes=entries,
        created_at=created_at,
        redis_url=_masked(redis_url),
        ftctl_version=version,
        plans=plans,
    )


def new_batch_id(now: datetime | None = None) -> str:
    """``batch_YYYYMMDD_HHMMSS_xxxx`` (the guide's form, plus 4 hex so ids never collide)."""
    now = now or datetime.now(UTC)
    return f"batch_{now:%Y%m%d_%H%M%S}_{secrets.token_hex(2)}"


class BatchMigrationPlanner:
    """Plans one shared patch over many indexes (RedisVL's ``BatchMigrationPlanner``)."""

    def create_batch_plan(
        self,
        *,
        redis_url: str | None = None,
        redis_client: redis.Redis | None = None,
        pattern: str | None = None,
        indexes: str | Sequence[str] | None = None,
        indexes_file: str | os.PathLike[str] | None = None,
        schema_patch_path: str | os.PathLike[str] | None = None,
        schema_patch: SchemaPatch | None = None,
        failure_policy: FailurePolicy = "fail_fast",
        plan_out: str | os.PathLike[str] | None = None,
        batch_id: str | None = None,
    ) -> BatchPlan:
        """Snapshot and plan every selected index; changes nothing in Redis.

        With ``plan_out`` the batch plan and ``plans/<index>.yaml`` are written (the
        returned plan then carries their paths and digests). Raises :class:`OverlapError`
        (exit 2) when applicable indexes share key prefixes, or an outside index shares
        keys and a re-encoded vector field with one; UsageError for bad input.
        """
        if (schema_patch is None) == (schema_patch_path is None):
            raise UsageError("give exactly one schema patch", "use --schema-patch FILE")
        if failure_policy not in ("fail_fast", "continue_on_error"):
            raise UsageError(
                f"unknown failure policy '{failure_policy}'", "use fail_fast or continue_on_error"
            )
        patch = schema_patch if schema_patch is not None else load_patch(str(schema_patch_path))
        selector: dict[str, Any] = {
            "pattern": pattern,
            "indexes": indexes,
            "indexes_file": indexes_file,
        }
        url = resolve_url(redis_url) if redis_client is None else (redis_url or "")
        client = redis_client or connect(url)
        try:
            snapped, capabilities = SyncDriver(client).run(
                batch_snapshot_step(selector, patch, redis_url=url)
            )
        finally:
            if redis_client is None:
                client.close()
        now = datetime.now(UTC)
        batch = classify(
            snapped,
            patch,
            capabilities,
            batch_id=batch_id or new_batch_id(now),
            failure_policy=failure_policy,
            created_at=now.isoformat(timespec="seconds").replace("+00:00", "Z"),
            redis_url=url,
        )
        if plan_out is not None:
            batch = write_batch_plan(batch, plan_out)
        return batch


# --- files rendered from the batch journal -------------------------------------------------


def _write_atomic(path: Path, data: bytes) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as exc:
        raise UsageError(
            f"cannot write '{path}': {exc.strerror}", "check --state / --report-dir"
        ) from None


def batch_journal_dir(backup_dir: str | os.PathLike[str], batch_id: str) -> Path:
    """``<backup-dir>/batch-<batch_id>`` (DESIGN §4)."""
    return Path(backup_dir) / f"{BATCH_JOURNAL_PREFIX}{batch_id}"


def render_state(events: Sequence[AnyEvent], journal: Path) -> bytes:
    """``batch_state.yaml`` bytes of a batch journal's events."""
    return msgspec.yaml.encode(project_batch_state(events, journal=str(journal)))


def render_report(events: Sequence[AnyEvent]) -> bytes:
    """``batch_report.yaml`` bytes of a batch journal's events."""
    return msgspec.yaml.encode(project_batch_report(events))


def write_rendered(events: Sequence[AnyEvent], journal: Path) -> tuple[Path, Path]:
    """Render state and report to the paths the latest run recorded; returns them."""
    options = project_batch(events).options
    state_path = Path(str(options.get("state_path", "batch_state.yaml")))
    report_path = Path(str(options.get("report_dir", "reports"))) / REPORT_NAME
    _write_atomic(state_path, render_state(events, journal))
    _write_atomic(report_path, render_report(events))
    return state_path, report_path


def load_state(path: str | os.PathLike[str]) -> BatchState:
    """Read ``batch_state.yaml``; a missing or bad file is a UsageError."""
    try:
        return msgspec.yaml.decode(Path(path).read_bytes(), type=BatchState)
    except OSError as exc:
        raise UsageError(
            f"cannot read batch state '{path}': {exc.strerror}",
            "pass the --state written by batch-apply, or --backup-dir to read the journal",
        ) from None
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise UsageError(f"'{path}' is not a batch state file: {exc}", "check --state") from None


def find_batch_journal(
    state_path: str | os.PathLike[str] | None = None,
    backup_dir: str | os.PathLike[str] | None = None,
) -> Path:
    """The batch journal directory: from the state file, else the only one in ``backup_dir``."""
    if state_path is not None and Path(state_path).is_file():
        state = load_state(state_path)
        journal = Path(state.journal)
        if backup_dir is not None and Path(backup_dir).resolve() != Path(state.backup_dir):
            raise RefusedError(
                f"the checkpoint {state_path} belongs to backup dir {state.backup_dir}, "
                f"not {Path(backup_dir).resolve()}",
                "resume with the backup dir the batch was applied with (or omit --backup-dir)",
            )
        if Journal.exists(journal):
            return journal
    if backup_dir is None:
        if state_path is not None:
            load_state(state_path)  # the error for a missing state file
        raise UsageError("no batch state and no backup dir", "pass --state or --backup-dir")
    found = sorted(p.parent for p in Path(backup_dir).glob(f"{BATCH_JOURNAL_PREFIX}*/journal.log"))
    found = [p for p in found if Journal.exists(p)]
    if len(found) != 1:
        what = "no batch journal" if not found else f"{len(found)} batch journals"
        raise UsageError(
            f"{what} in {backup_dir}", "pass the --state written by the batch you mean"
        )
    return found[0]


def batch_status(
    state_path: str | os.PathLike[str] | None = None,
    *,
    backup_dir: str | os.PathLike[str] | None = None,
) -> BatchState:
    """The batch's state, projected from its journal (no Redis); the state file is only
    used to find the journal, and read as is when the journal is gone."""
    try:
        journal = find_batch_journal(state_path, backup_dir)
    except UsageError:
        if state_path is not None and Path(state_path).is_file():
            return load_state(state_path)
        raise
    return project_batch_state(Journal.read(journal), journal=str(journal))


def regenerate(
    state_path: str | os.PathLike[str] | None = None,
    *,
    backup_dir: str | os.PathLike[str] | None = None,
) -> tuple[Path, Path]:
    """Re-render ``batch_state.yaml`` and ``batch_report.yaml`` from the batch journal."""
    journal = find_batch_journal(state_path, backup_dir)
    return write_rendered(Journal.read(journal), journal)


def render_status(state: BatchState) -> list[str]:
    """The guide's ``batch-status`` text."""
    lines = [
        "Batch Migration Status",
        "======================",
        f"Batch ID: {state.batch_id}",
        f"Status: {state.status}",
        f"Started: {state.started_at}",
        f"Updated: {state.updated_at}",
        f"Completed: {len(state.completed)}",
    ]
    for done in state.completed:
        at = done.completed_at[11:19] if len(done.completed_at) >= 19 else done.completed_at
        error = f" - {done.error}" if done.status == FAILED and done.error else ""
        lines.append(f"  - {done.name}: {done.status}{error} ({at})")
    lines.append(f"In Progress: {state.current_index or '-'}")
    remaining = f" ({', '.join(state.remaining)})" if state.remaining else ""
    lines.append(f"Remaining: {len(state.remaining)}{remaining}")
    lines.append(f"Skipped: {len(state.skipped)}")
    lines += [f"  - {s.name}: {s.skip_reason}" for s in state.skipped]
    failed = [c for c in state.completed if c.status == FAILED]
    lines.append(f"Failed: {len(failed)}")
    lines += [f"  - {f.name}: {f.error}" for f in failed]
    return lines


# --- applying -------------------------------------------------------------------------------


@dataclass
class _Settings:
    client: redis.Redis
    backup_dir: Path
    accept_data_loss: bool
    batch_size: int
    num_workers: int
    timeout: float
    retry_failed: bool
    progress: BatchProgressCallback | None


def _resolve_plan(entry: IndexProgress, backup_dir: Path) -> MigrationPlan:
    """The reviewed plan of an index, checked against the digest recorded at batch-plan.

    When its file is gone, the plan embedded in the index's own journal is used if it has the
    same digest (an index interrupted mid-migration resumes from its journal alone).
    """
    try:
        plan = load_plan(Path(entry.plan_path))
    except UsageError:
        index_dir = backup_dir / entry.name
        if not Journal.exists(index_dir):
            raise
        first = Journal.read(index_dir)[0]
        assert isinstance(first, RunStarted)
        plan = load_plan(first.plan_yaml.encode())
    digest = plan_digest(plan)
    if digest != entry.plan_sha256:
        raise RefusedError(
            f"the plan of index '{entry.name}' ({entry.plan_path}) changed after batch-plan "
            f"(sha256 {digest[:12]}…, batch plan says {entry.plan_sha256[:12]}…)",
            "re-run batch-plan and review the new plans",
        )
    if plan.index_name != entry.name:
        raise RefusedError(
            f"{entry.plan_path} plans index '{plan.index_name}', not '{entry.name}'",
            "re-run batch-plan",
        )
    return plan


class _BatchRun:
    """An open batch journal: appends events and re-renders the files after each one."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    def record(self, *events: Any) -> BatchProgress:
        self.journal.append(list(events))
        all_events = self.journal.events()
        write_rendered(all_events, self.journal.directory)
        return project_batch(all_events)

    def progress(self) -> BatchProgress:
        return project_batch(self.journal.events())


def _index_report(
    name: str, backup_dir: Path, report_dir: Path, report: MigrationReport | None
) -> str:
    index_dir = backup_dir / name
    if report is None:
        if not Journal.exists(index_dir):
            return ""
        report = project_report(Journal.read(index_dir), backup_dir=index_dir, kind="apply")
    path = report_dir / f"{_plan_file_name(name)[:-5]}_report.yaml"
    _write_atomic(path, msgspec.yaml.encode(report))
    return str(path)


def _run_batch(run: _BatchRun, plans: dict[str, MigrationPlan], settings: _Settings) -> BatchReport:
    progress = run.progress()
    applicable = [i for i in progress.indexes.values() if i.applicable]
    total = len(applicable)
    report_dir = Path(str(progress.options.get("report_dir", "reports")))
    policy = progress.failure_policy
    stopped = False
    try:
        for position, index in enumerate(applicable, start=1):
            retry = index.status == FAILED and settings.retry_failed
            if index.status in (SUCCESS, FAILED) and not retry:
                continue
            journal_dir = settings.backup_dir / index.name
            run.record(
                BatchIndexStarted(
                    name=index.name,
                    position=position,
                    total=total,
                    journal=str(journal_dir),
                    plan_sha256=index.plan_sha256,
                    retry=retry,
                )
            )
            if settings.progress is not None:
                settings.progress(index.name, position, total, "running")
            report: MigrationReport | None = None
            error = ""
            result = ""
            try:
                report = MigrationExecutor().apply(
                    plans[index.name],
                    client=settings.client,
                    backup_dir=settings.backup_dir,
                    batch_size=settings.batch_size,
                    num_workers=settings.num_workers,
                    accept_data_loss=settings.accept_data_loss,
                    timeout=settings.timeout,
                )
                result, error = report.result, report.error
            except Interrupted as exc:
                run.record(BatchIndexInterrupted(name=index.name, error=exc.one_line()))
                raise
            except FtctlError as exc:
                result = "refused" if isinstance(exc, RefusedError | UsageError) else "failed"
                error = exc.one_line()
            status = SUCCESS if result == "succeeded" else FAILED
            if status == FAILED and not error:
                error = f"migration {result}"
            report_path = _index_report(index.name, settings.backup_dir, report_dir, report)
            progress = run.record(
                BatchIndexFinished(
                    name=index.name,
                    status=status,
                    result=result,
                    error=error,
                    report_path=report_path,
                    journal=str(journal_dir),
                )
            )
            if settings.progress is not None:
                settings.progress(index.name, position, total, status)
            if status == FAILED and policy == "fail_fast":
                stopped = True
                break
    except (Interrupted, KeyboardInterrupt):
        run.record(RunFinished(result="interrupted", error="interrupted by the user"))
        raise Interrupted(
            f"batch interrupted; its journal is in {run.journal.directory}",
            "continue with: ftctl migrate batch-resume --state <batch_state.yaml>",
        ) from None
    final = run.progress()
    failed = final.with_status(FAILED)
    run.record(
        RunFinished(
            result=final.status if not stopped else "stopped",
            error="; ".join(f"{i.name}: {i.error}" for i in failed),
        )
    )
    return project_batch_report(run.journal.events())


def _run_started(
    batch: BatchPlan, url: str, options: dict[str, str | int | float | bool]
) -> RunStarted:
    return RunStarted(
        run_id=secrets.token_hex(8),
        kind="batch",
        index_name=batch.batch_id,
        plan_yaml=dump_batch_plan(batch).decode(),
        plan_sha256=batch_plan_digest(batch),
        mode=batch.mode,
        options=options,
        redis_url=_masked(url),
        ftctl_version=ftctl_version(),
    )


def _check_runnable(
    progress: BatchProgress, backup_dir: Path, accept_data_loss: bool, retry_failed: bool
) -> dict[str, MigrationPlan]:
    """Load and check every plan this run may execute, before anything changes (exit 2)."""
    plans: dict[str, MigrationPlan] = {}
    for index in progress.indexes.values():
        if not index.applicable or index.status == SUCCESS:
            continue
        if index.status == FAILED and not retry_failed:
            continue
        plan = _resolve_plan(index, backup_dir)
        check_plan(plan, accept_data_loss=accept_data_loss)
        plans[index.name] = plan
    return plans


def _options(
    state_path: str | os.PathLike[str],
    report_dir: str | os.PathLike[str],
    settings: _Settings,
) -> dict[str, str | int | float | bool]:
    return {
        "state_path": str(Path(state_path).resolve()),
        "report_dir": str(Path(report_dir).resolve()),
        "accept_data_loss": settings.accept_data_loss,
        "retry_failed": settings.retry_failed,
        "batch_size": settings.batch_size,
        "workers": settings.num_workers,
    }


class BatchMigrationExecutor:
    """Applies a batch plan index by index, journaled (RedisVL's ``BatchMigrationExecutor``)."""

    def apply(
        self,
        batch_plan: BatchPlan | str | os.PathLike[str],
        *,
        redis_url: str | None = None,
        client: redis.Redis | None = None,
        backup_dir: str | os.PathLike[str],
        state_path: str | os.PathLike[str] = "batch_state.yaml",
        report_dir: str | os.PathLike[str] = "./reports/",
        accept_data_loss: bool = False,
        batch_size: int = 500,
        num_workers: int = 1,
        timeout: float = 3600.0,
        progress_callback: BatchProgressCallback | None = None,
    ) -> BatchReport:
        """Run every applicable index's reviewed plan, one after another.

        Re-running with the same batch plan and backup dir continues it. Raises RefusedError
        (nothing changed) when a per-index plan no longer matches its digest, a lossy plan
        lacks ``accept_data_loss``, or the backup dir holds another batch plan; Interrupted
        on Ctrl+C. Failed indexes are in the returned report (``status``), not raised.
        """
        if not str(backup_dir):
            raise UsageError("--backup-dir is required", "pass a directory for journals")
        batch = batch_plan if isinstance(batch_plan, BatchPlan) else load_batch_plan(batch_plan)
        root = Path(backup_dir).resolve()
        base = Path(batch.source_path).parent if batch.source_path else Path.cwd()
        entries = [
            BatchIndexEntry(
                name=i.name,
                applicable=i.applicable,
                skip_reason=i.skip_reason,
                plan_path=str((base / i.plan_path).resolve()) if i.plan_path else "",
                plan_sha256=i.plan_sha256 or "",
            )
            for i in batch.indexes
        ]
        started = BatchStarted(
            batch_id=batch.batch_id,
            plan_path=batch.source_path,
            backup_dir=str(root),
            failure_policy=batch.failure_policy,
            indexes=entries,
        )
        preview = project_batch([started])
        plans = {
            name: plan
            for name, plan in batch.plans.items()
            if plan_digest(plan) == next((e.plan_sha256 for e in entries if e.name == name), "")
        }
        for entry in preview.indexes.values():
            if entry.applicable and entry.name not in plans:
                plans[entry.name] = _resolve_plan(entry, root)
            if entry.applicable:
                check_plan(plans[entry.name], accept_data_loss=accept_data_loss)
        redis_client = client or connect(redis_url, protocol=RUN_PROTOCOL)
        settings = _Settings(
            redis_client,
            root,
            accept_data_loss,
            batch_size,
            num_workers,
            timeout,
            False,
            progress_callback,
        )
        url = redis_url or client_url(redis_client)
        first = _run_started(batch, url, _options(state_path, report_dir, settings))
        directory = batch_journal_dir(root, batch.batch_id)
        try:
            if Journal.exists(directory):
                journal = Journal.open(directory)
                if journal.run_started.plan_sha256 != first.plan_sha256:
                    journal.close()
                    raise RefusedError(
                        f"backup does not match batch plan: {directory} holds another batch plan",
                        "use a new --backup-dir, or batch-resume the batch it holds",
                    )
                journal.append([first])
            else:
                journal = Journal.create(directory, first=first)
            try:
                run = _BatchRun(journal)
                if not any(isinstance(e, BatchStarted) for e in journal.events()):
                    run.record(started)
                else:
                    run.record()
                return _run_batch(run, plans, settings)
            finally:
                journal.close()
        finally:
            if client is None:
                redis_client.close()

    def resume(
        self,
        state_path: str | os.PathLike[str] = "batch_state.yaml",
        *,
        backup_dir: str | os.PathLike[str] | None = None,
        retry_failed: bool = False,
        accept_data_loss: bool = False,
        redis_url: str | None = None,
        client: redis.Redis | None = None,
        report_dir: str | os.PathLike[str] | None = None,
        batch_size: int = 500,
        num_workers: int = 1,
        timeout: float = 3600.0,
        progress_callback: BatchProgressCallback | None = None,
    ) -> BatchReport:
        """Continue the batch recorded by ``state_path`` (its journal is the truth).

        An index interrupted mid-migration resumes from its own journal; ``retry_failed``
        runs failed indexes again. A ``backup_dir`` other than the checkpoint's is refused.
        """
        directory = find_batch_journal(state_path, backup_dir)
        recorded = project_batch(Journal.read(directory))
        if backup_dir is not None and Path(backup_dir).resolve() != Path(recorded.backup_dir):
            raise RefusedError(
                f"the batch in {directory} was applied with backup dir {recorded.backup_dir}, "
                f"not {Path(backup_dir).resolve()}",
                "resume with the backup dir the batch was applied with (or omit --backup-dir)",
            )
        root = Path(recorded.backup_dir)
        plans = _check_runnable(recorded, root, accept_data_loss, retry_failed)
        redis_client = client or connect(redis_url, protocol=RUN_PROTOCOL)
        settings = _Settings(
            redis_client,
            root,
            accept_data_loss,
            batch_size,
            num_workers,
            timeout,
            retry_failed,
            progress_callback,
        )
        previous_reports = str(recorded.options.get("report_dir", "reports"))
        try:
            journal = Journal.open(directory)
            try:
                batch = load_batch_plan(journal.run_started.plan_yaml.encode())
                batch = msgspec.structs.replace(batch, source_path=recorded.plan_path)
                url = redis_url or client_url(redis_client)
                options = _options(state_path, report_dir or previous_reports, settings)
                run = _BatchRun(journal)
                run.record(_run_started(batch, url, options))
                return _run_batch(run, plans, settings)
            finally:
                journal.close()
        finally:
            if client is None:
                redis_client.close()


__all__ = [
    "PENDING",
    "BatchMigrationExecutor",
    "BatchMigrationPlanner",
    "BatchPlan",
    "BatchPlanIndex",
    "BatchProgressCallback",
    "BatchReport",
    "BatchState",
    "FailurePolicy",
    "OverlapError",
    "batch_journal_dir",
    "batch_plan_digest",
    "batch_status",
    "classify",
    "dump_batch_plan",
    "find_overlaps",
    "load_batch_plan",
    "regenerate",
    "render_status",
    "select_indexes",
    "write_batch_plan",
]
