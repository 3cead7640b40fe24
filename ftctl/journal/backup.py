"""Backup directories: the default one, the check that one is writable, and a reader.

- :func:`default_backup_root`: where runs given no backup directory keep their journal
  (``$FTCTL_BACKUP_DIR``, else ``$XDG_DATA_HOME/ftctl/backups``, else
  ``~/.local/share/ftctl/backups``);
- :func:`ensure_backup_dir`: create a backup directory and prove it writable before
  anything runs (RedisVL's "Could not create or access backup directory" check);
- :class:`VectorBackup`: the journal-based counterpart of RedisVL's ``VectorBackup``: open
  a migration's journal read-only, say what it holds, and iterate its backup segments as
  batches of ``(keys, original vectors)``. No Redis, no lock, nothing written.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

import msgspec

from ftctl.errors import BackupDirError, UsageError
from ftctl.journal.events import BatchDone, RunStarted, SegmentRef
from ftctl.journal.layout import index_journal_dir, journal_dirs
from ftctl.journal.log import Journal
from ftctl.journal.projections import project_run, run_events
from ftctl.journal.safefs import os_error
from ftctl.journal.segments import SegmentPayload, unpack_field

BACKUP_DIR_ENV = "FTCTL_BACKUP_DIR"
"""Environment variable naming the directory under which default backup dirs are made."""

Key = str | bytes
"""A document key: ``str`` (UTF-8), or ``bytes`` for a key that is not valid UTF-8."""


def default_backup_root() -> Path:
    """The directory under which runs given no ``backup_dir`` keep their journals."""
    configured = os.environ.get(BACKUP_DIR_ENV)
    if configured:
        return Path(configured).expanduser()
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path("~/.local/share").expanduser())
    return Path(data_home) / "ftctl" / "backups"


def ensure_backup_dir(directory: str | os.PathLike[str]) -> Path:
    """Create ``directory`` (and its parents) and prove a file can be written in it.

    Returns the directory, absolute. Raises :class:`BackupDirError` (a ``ValueError``)
    naming the directory when it cannot be created or written: runs call this before they
    touch Redis, so a bad path changes nothing.
    """
    path = Path(directory).expanduser()
    if not str(directory):
        raise BackupDirError(
            "the backup directory is empty", "pass a directory for the journal and backups"
        )
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path, prefix=".ftctl_probe_", suffix=".tmp")
        os.close(fd)
        Path(probe).unlink(missing_ok=True)
    except OSError as exc:
        raise os_error(exc, "create or write the backup directory", path) from None
    return path.resolve()


class BackupField(msgspec.Struct, frozen=True, kw_only=True):
    """A vector field whose original bytes a backup holds."""

    name: str
    """The document field (hash field name before any rename)."""
    datatype: str
    """The datatype the original bytes are in."""
    dims: int


class BackupSummary(msgspec.Struct, frozen=True, kw_only=True):
    """What one migration journal holds (``VectorBackup.describe``)."""

    index_name: str
    directory: str
    plan_sha256: str
    result: str
    """The latest apply's result (``in_progress`` while none finished)."""
    rolled_back: bool
    fields: list[BackupField] = msgspec.field(default_factory=list)
    batches: int = 0
    keys: int = 0
    """Keys whose vectors were backed up."""
    segment_bytes: int = 0


_REDISVL_PREFIX = re.compile(r"^migration_backup_(?P<name>.+?)(?:_[0-9a-f]{8})?$")


def _index_journal(directory: Path) -> bool:
    first = Journal.first_run(directory)
    return isinstance(first, RunStarted) and first.kind != "batch"


def _candidates(path: Path, index: str | None) -> list[Path]:
    """Index journal directories ``path`` may mean (see :meth:`VectorBackup.load`)."""
    if index is not None:
        directory = index_journal_dir(path, index)
        return [directory] if _index_journal(directory) else []
    if _index_journal(path):
        return [path]
    if path.is_dir():
        return [p for p in journal_dirs(path) if _index_journal(p)]
    found = _REDISVL_PREFIX.match(path.name)
    if found is not None:
        for name in (found["name"], path.name.removeprefix("migration_backup_")):
            directory = index_journal_dir(path.parent, name)
            if _index_journal(directory):
                return [directory]
    return []


def _decoded(key: bytes) -> Key:
    try:
        return key.decode()
    except UnicodeDecodeError:
        return key


class VectorBackup:
    """The original vectors of one migration, read from its journal (read-only).

    ``VectorBackup.load(path)`` accepts the backup directory given to apply (when it holds
    one index), the index's journal directory (``report.backup.backup_paths[0]``), or
    RedisVL's ``<backup-dir>/migration_backup_<index>`` path; it returns None when ``path``
    holds no migration journal, like RedisVL's. :meth:`iter_batches` yields RedisVL's
    ``(keys, {key: {field: original bytes}})``; :meth:`iter_field` one field's values.
    Segments are verified (size, crc32) before use: a damaged one raises
    :class:`~ftctl.errors.JournalCorruptError`, it is never used unverified.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        events = Journal.read(directory)
        first = events[0]
        assert isinstance(first, RunStarted)
        self.index_name = first.index_name
        self.plan_sha256 = first.plan_sha256
        applied = run_events(events, "apply")
        self._applied = project_run(applied)
        # A redone batch is journaled again: count each batch once, as its latest event says.
        self._keys = sum(
            {
                e.batch: e.keys for e in applied if isinstance(e, BatchDone) and e.step == "backup"
            }.values()
        )
        rollback = project_run(run_events(events, "rollback"))
        self._rolled_back = any(s != "rollback_preflight" for s in rollback.steps_started)
        segments = self._applied.batch_segments.get("backup", {})
        self._segments: list[SegmentRef] = [segments[b] for b in sorted(segments)]
        self._fields: dict[str, BackupField] | None = None

    @classmethod
    def load(cls, path: str | os.PathLike[str], index: str | None = None) -> VectorBackup | None:
        """The backup at ``path`` (``index`` picks one of several), or None if there is none.

        Several index journals under ``path`` and no ``index`` is a :class:`UsageError`.
        """
        found = _candidates(Path(path).expanduser(), index)
        if not found:
            return None
        if len(found) > 1:
            names = ", ".join(p.name for p in found)
            raise UsageError(
                f"{path} holds the journals of several indexes ({names})", "pass index=NAME"
            )
        return cls(found[0])

    @classmethod
    def open(cls, path: str | os.PathLike[str], index: str | None = None) -> VectorBackup:
        """Like :meth:`load`, but a path without a migration journal is a UsageError."""
        backup = cls.load(path, index)
        if backup is None:
            raise UsageError(
                f"no migration journal at {path}" + (f" for index '{index}'" if index else ""),
                "pass the backup_dir given to apply, or report.backup.backup_paths[0]",
            )
        return backup

    @property
    def rolled_back(self) -> bool:
        """Whether a rollback of this migration changed anything."""
        return self._rolled_back

    @property
    def batches(self) -> int:
        """How many batches of original vectors the backup holds."""
        return len(self._segments)

    @property
    def fields(self) -> dict[str, BackupField]:
        """The backed-up vector fields, by document field name (empty: no vector backup)."""
        if self._fields is None:
            fields: dict[str, BackupField] = {}
            if self._segments:
                with Journal.open_readonly(self.directory) as journal:
                    payload = journal.read_segment(self._segments[0])
                fields = {
                    name: BackupField(name=name, datatype=block.dtype, dims=block.dims)
                    for name, block in payload.fields.items()
                }
            self._fields = fields
        return self._fields

    def describe(self) -> BackupSummary:
        """What the journal holds: index, plan, result, backed-up fields and sizes."""
        batches = self._applied.batches_done.get("backup", set())
        return BackupSummary(
            index_name=self.index_name,
            directory=str(self.directory),
            plan_sha256=self.plan_sha256,
            result=self._applied.result or "in_progress",
            rolled_back=self._rolled_back,
            fields=list(self.fields.values()),
            batches=len(batches),
            keys=self._keys,
            segment_bytes=sum(ref.size for ref in self._segments),
        )

    def _payloads(self) -> Iterator[SegmentPayload]:
        with Journal.open_readonly(self.directory) as journal:
            for ref in self._segments:
                yield journal.read_segment(ref)

    def iter_field(self, field: str) -> Iterator[tuple[list[bytes], list[bytes | None]]]:
        """Each batch's keys and the original bytes of ``field`` (None: the key lacked it)."""
        if field not in self.fields:
            known = ", ".join(self.fields) or "none"
            raise UsageError(
                f"the backup of '{self.index_name}' holds no field '{field}'",
                f"backed-up fields: {known}",
            )
        for payload in self._payloads():
            yield payload.keys, unpack_field(payload.fields[field], len(payload.keys))

    def iter_batches(self) -> Iterator[tuple[list[Key], dict[Key, dict[str, bytes]]]]:
        """Each batch as RedisVL's ``(keys, {key: {field: original bytes}})``."""
        for payload in self._payloads():
            keys = [_decoded(k) for k in payload.keys]
            originals: dict[Key, dict[str, bytes]] = {}
            for name, block in payload.fields.items():
                values = unpack_field(block, len(payload.keys))
                for key, value in zip(keys, values, strict=True):
                    if value is not None:
                        originals.setdefault(key, {})[name] = value
            yield keys, originals

    def __repr__(self) -> str:
        return f"VectorBackup({str(self.directory)!r}, index={self.index_name!r})"


def list_backups(path: str | os.PathLike[str]) -> list[VectorBackup]:
    """Every index migration journal at or directly under ``path``, as a
    :class:`VectorBackup` (batch journals are left out: they hold no vectors)."""
    return [VectorBackup(p) for p in _candidates(Path(path).expanduser(), None)]


__all__ = [
    "BACKUP_DIR_ENV",
    "BackupField",
    "BackupSummary",
    "Key",
    "VectorBackup",
    "default_backup_root",
    "ensure_backup_dir",
    "list_backups",
]
