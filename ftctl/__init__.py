"""ftctl: journaled, crash-proof schema migrations for Redis Search (FT.*) indexes.

The public API mirrors RedisVL's migrator (planners, executors, validators, batch) and adds
what the journal makes possible (:class:`Journal`, :func:`project_state`, :func:`rollback`,
the backup reader :class:`VectorBackup`), index management (:mod:`ftctl.indexes`:
:func:`list_indexes`, :func:`index_info`, :func:`create_index`, :func:`delete_index`), and
the application side of an online datatype change (:mod:`ftctl.query`:
:class:`QueryEncoder`, :class:`AsyncQueryEncoder`). Every call that talks to Redis takes
``redis_url=`` or an open client as ``redis_client=``.

Code written against RedisVL 0.28's ``redisvl.migration`` (and ``redisvl.migration.utils``,
``redisvl.migration.models``) imports the same names from ``ftctl``;
``redisvl.migration.backup`` is :mod:`ftctl.backup`. See the README for the differences.
"""

from ftctl.batch import BatchMigrationExecutor, BatchMigrationPlanner
from ftctl.errors import BackupDirError, FtctlError, MigrationFailed, RefusedError, UsageError
from ftctl.executor import (
    AsyncMigrationExecutor,
    MigrationExecutor,
    default_backup_dir,
    rollback,
    write_migration_report,
)
from ftctl.indexes import create_index, delete_index, index_info, list_indexes
from ftctl.journal import Journal
from ftctl.journal.backup import VectorBackup, list_backups
from ftctl.journal.batch import BatchReport, BatchState
from ftctl.journal.projections import project_run as project_state
from ftctl.journal.report import (
    BackupInfo,
    BenchmarkSummary,
    MigrationReport,
    QueryCheckResult,
    ReportTimings,
    ReportValidation,
    ValidationReport,
)
from ftctl.plan.batch import BatchPlan, OverlapError
from ftctl.plan.models import MigrationPlan, SchemaPatch, load_patch, load_plan
from ftctl.plan.quantization import QuantizationParams
from ftctl.planner import AsyncMigrationPlanner, MigrationPlanner, write_plan
from ftctl.query import (
    AsyncQueryEncoder,
    QueryEncoder,
    SearchResult,
    is_blob_size_error,
    quantization_params,
)
from ftctl.schema.compare import schemas_equal
from ftctl.schema.model import IndexSchema, load_schema
from ftctl.validator import AsyncMigrationValidator, MigrationValidator

load_migration_plan = load_plan
"""RedisVL's ``redisvl.migration.utils.load_migration_plan``: a plan YAML file → plan."""
MigrationValidation = ReportValidation
"""RedisVL's name for ``report.validation``'s type."""
MigrationTimings = ReportTimings
"""RedisVL's name for ``report.timings``' type."""
MigrationBenchmarkSummary = BenchmarkSummary
"""RedisVL's name for ``report.benchmark_summary``'s type."""
MigrationBackupInfo = BackupInfo
"""RedisVL's name for ``report.backup``'s type."""

__all__ = [
    "AsyncMigrationExecutor",
    "AsyncMigrationPlanner",
    "AsyncMigrationValidator",
    "AsyncQueryEncoder",
    "BackupDirError",
    "BackupInfo",
    "BatchMigrationExecutor",
    "BatchMigrationPlanner",
    "BatchPlan",
    "BatchReport",
    "BatchState",
    "BenchmarkSummary",
    "FtctlError",
    "IndexSchema",
    "Journal",
    "MigrationBackupInfo",
    "MigrationBenchmarkSummary",
    "MigrationExecutor",
    "MigrationFailed",
    "MigrationPlan",
    "MigrationPlanner",
    "MigrationReport",
    "MigrationTimings",
    "MigrationValidation",
    "MigrationValidator",
    "OverlapError",
    "QuantizationParams",
    "QueryCheckResult",
    "QueryEncoder",
    "RefusedError",
    "ReportTimings",
    "ReportValidation",
    "SchemaPatch",
    "SearchResult",
    "UsageError",
    "ValidationReport",
    "VectorBackup",
    "create_index",
    "default_backup_dir",
    "delete_index",
    "index_info",
    "is_blob_size_error",
    "list_backups",
    "list_indexes",
    "load_migration_plan",
    "load_patch",
    "load_plan",
    "load_schema",
    "project_state",
    "quantization_params",
    "rollback",
    "schemas_equal",
    "write_migration_report",
    "write_plan",
]
