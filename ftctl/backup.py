"""Read a migration's backup: RedisVL's ``redisvl.migration.backup`` under ftctl's journal.

``from ftctl.backup import VectorBackup`` replaces ``from redisvl.migration.backup import
VectorBackup``: ``VectorBackup.load(path)`` opens a migration's journal read-only (no Redis
needed) and ``iter_batches()`` yields ``(keys, {key: {field: original bytes}})`` from its
verified backup segments. :func:`list_backups` lists every migration a backup directory
holds, :meth:`VectorBackup.describe` what one holds, :meth:`VectorBackup.iter_field` one
field's original bytes batch by batch.
"""

from __future__ import annotations

from ftctl.journal.backup import (
    BACKUP_DIR_ENV,
    BackupField,
    BackupSummary,
    Key,
    VectorBackup,
    default_backup_root,
    list_backups,
)

__all__ = [
    "BACKUP_DIR_ENV",
    "BackupField",
    "BackupSummary",
    "Key",
    "VectorBackup",
    "default_backup_root",
    "list_backups",
]
