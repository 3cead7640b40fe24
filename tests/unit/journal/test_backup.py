"""Backup directories: the default root, the writable check, and the reader without Redis."""

from __future__ import annotations

from pathlib import Path

import pytest

from ftctl.errors import BackupDirError
from ftctl.journal import Journal
from ftctl.journal.backup import (
    VectorBackup,
    default_backup_root,
    ensure_backup_dir,
    list_backups,
)
from ftctl.journal.events import BatchDone, RunFinished, RunStarted, StepFinished, StepStarted
from ftctl.journal.segments import SegmentPayload, pack_field


def test_default_root_follows_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """$FTCTL_BACKUP_DIR wins, then $XDG_DATA_HOME/ftctl/backups, then
    ~/.local/share/ftctl/backups."""
    monkeypatch.setenv("FTCTL_BACKUP_DIR", str(tmp_path / "mine"))
    assert default_backup_root() == tmp_path / "mine"
    monkeypatch.delenv("FTCTL_BACKUP_DIR")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_backup_root() == tmp_path / "xdg" / "ftctl" / "backups"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_backup_root() == tmp_path / "home" / ".local/share/ftctl/backups"


def test_ensure_creates_nested_directories(tmp_path: Path) -> None:
    """A missing nested directory is created and returned absolute; no probe file stays."""
    made = ensure_backup_dir(tmp_path / "a" / "b")
    assert made == (tmp_path / "a" / "b").resolve() and made.is_dir()
    assert list(made.iterdir()) == []


def test_unwritable_directory_is_a_clear_value_error(tmp_path: Path) -> None:
    """A path under a file cannot be created: BackupDirError, a ValueError naming the
    backup directory (not a NotADirectoryError)."""
    blocker = tmp_path / "blocker"
    blocker.write_text("not a directory")
    with pytest.raises(BackupDirError, match=r"backup directory \S*blocker/sub: Not a directory"):
        ensure_backup_dir(blocker / "sub")
    with pytest.raises(ValueError, match="backup directory"):
        ensure_backup_dir(blocker / "sub")
    with pytest.raises(ValueError, match="empty"):
        ensure_backup_dir("")


def _journal(directory: Path, index: str, keys: list[bytes], values: list[bytes | None]) -> None:
    first = RunStarted(
        run_id="r",
        kind="apply",
        index_name=index,
        plan_yaml="",
        plan_sha256="abc",
        mode="drop_recreate",
    )
    with Journal.create(directory, first=first) as journal:
        payload = SegmentPayload(
            keys=keys, fields={"emb": pack_field(values, dtype="float32", dims=1)}
        )
        ref = journal.write_segment(payload)
        journal.append(
            [
                StepStarted(step="backup"),
                BatchDone(step="backup", batch=0, keys=len(keys), segment=ref),
                StepFinished(step="backup"),
                RunFinished(result="succeeded"),
            ]
        )


def test_reader_yields_redisvl_batches(tmp_path: Path) -> None:
    """iter_batches yields (keys, {key: {field: bytes}}) with str keys (bytes for a key that
    is not UTF-8) and only the keys that had the field; iter_field and describe say the
    same; the backup dir, the journal dir and migration_backup_<index> all open it."""
    keys = [b"doc:1", b"doc:2", b"\xff"]
    values: list[bytes | None] = [b"\x00" * 4, None, b"\x01" * 4]
    _journal(tmp_path / "docs", "docs", keys, values)
    for path in (tmp_path, tmp_path / "docs", tmp_path / "migration_backup_docs"):
        backup = VectorBackup.load(path)
        assert backup is not None and backup.index_name == "docs"
        ((batch_keys, originals),) = list(backup.iter_batches())
        assert batch_keys == ["doc:1", "doc:2", b"\xff"]
        assert originals == {"doc:1": {"emb": b"\x00" * 4}, b"\xff": {"emb": b"\x01" * 4}}
    assert list(backup.iter_field("emb")) == [(keys, values)]
    summary = backup.describe()
    assert (summary.keys, summary.batches, summary.result) == (3, 1, "succeeded")
    assert [f.name for f in summary.fields] == ["emb"]
    assert [b.index_name for b in list_backups(tmp_path)] == ["docs"]


def test_reader_needs_a_journal_and_picks_one(tmp_path: Path) -> None:
    """No journal: load is None, open raises; two index journals need index=."""
    assert VectorBackup.load(tmp_path) is None
    with pytest.raises(ValueError, match="no migration journal"):
        VectorBackup.open(tmp_path)
    _journal(tmp_path / "a", "a", [b"k"], [b"\x00" * 4])
    _journal(tmp_path / "b", "b", [b"k"], [b"\x00" * 4])
    with pytest.raises(ValueError, match="several indexes"):
        VectorBackup.load(tmp_path)
    assert VectorBackup.open(tmp_path, index="b").index_name == "b"
    with pytest.raises(ValueError, match="no field 'x'"):
        list(VectorBackup.open(tmp_path, index="a").iter_field("x"))
