"""ftctl: journaled, crash-proof schema migrations for Redis Search (FT.*) indexes.

The public API mirrors RedisVL's migrator (planners, executors, batch) and adds what the
journal makes possible (:class:`Journal`, :func:`project_state`, :func:`rollback`), and index
management (:mod:`ftctl.indexes`: :func:`list_indexes`, :func:`index_info`,
:func:`create_index`, :func:`delete_index`), and the application side of an online datatype
change (:mod:`ftctl.query`: :class:`QueryEncoder`, :class:`AsyncQueryEncoder`). Every call
that talks to Redis takes ``redis_url=`` or an open client as ``redis_client=``.
"""

from ftctl.batch import BatchMigrationExecutor, BatchMigrationPlanner
from ftctl.errors import FtctlError, MigrationFailed, RefusedError, UsageError
from ftctl.executor import AsyncMigrationExecutor, MigrationExecutor, rollback
from ftctl.indexes import create_index, delete_index, index_info, list_indexes
from ftctl.journal import Journal
from ftctl.journal.projections import project_run as project_state
from ftctl.journal.report import MigrationReport
from ftctl.plan.models import MigrationPlan, SchemaPatch, load_patch, load_plan
from ftctl.plan.quantization import QuantizationParams
from ftctl.planner import AsyncMigrationPlanner, MigrationPlanner
from ftctl.query import (
    AsyncQueryEncoder,
    QueryEncoder,
    SearchResult,
    is_blob_size_error,
    quantization_params,
)
from ftctl.schema.model import IndexSchema, load_schema
from ftctl.validator import MigrationValidator

__all__ = [
    "AsyncMigrationExecutor",
    "AsyncMigrationPlanner",
    "AsyncQueryEncoder",
    "BatchMigrationExecutor",
    "BatchMigrationPlanner",
    "FtctlError",
    "IndexSchema",
    "Journal",
    "MigrationExecutor",
    "MigrationFailed",
    "MigrationPlan",
    "MigrationPlanner",
    "MigrationReport",
    "MigrationValidator",
    "QuantizationParams",
    "QueryEncoder",
    "RefusedError",
    "SchemaPatch",
    "SearchResult",
    "UsageError",
    "create_index",
    "delete_index",
    "index_info",
    "is_blob_size_error",
    "list_indexes",
    "load_patch",
    "load_plan",
    "load_schema",
    "project_state",
    "quantization_params",
    "rollback",
]
