"""Journal directory names: one safe entry of the backup dir whatever the index is called."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from hypothesis import given
from strategies import index_names

from ftctl.errors import BackupDirError, UsageError
from ftctl.journal import Journal, RunStarted
from ftctl.journal.events import BatchRunStarted
from ftctl.journal.layout import (
    backup_root,
    batch_dir_name,
    entry_name,
    index_dir_name,
    index_journal_dir,
    is_batch_journal,
    journal_dirs,
)

HOSTILE = ["", ".", "..", "../x", "../../etc", "/abs/path", "a/b", "a\0b", "x" * 10_000,
           "idx:docs", "é", "\udcff", "~x", " ", "batch", "batch-1", "x" * 101]  # fmt: skip


def _first(index: str, kind: str = "apply") -> RunStarted:
    return RunStarted(
        run_id="r",
        kind=kind,  # type: ignore[arg-type]  # the test passes literal kinds
        index_name=index,
        plan_yaml="",
        plan_sha256="x",
        mode="drop_recreate",
    )


def _is_one_safe_entry(name: str) -> bool:
    return (
        bool(name)
        and name not in (".", "..")
        and "/" not in name
        and "\0" not in name
        and len(name.encode()) <= 255
    )


@pytest.mark.parametrize("name", ["docs", "a_idx", "Products-2024.v1", "x" * 100, "..."])
def test_ordinary_names_are_kept(name: str) -> None:
    """Names of [A-Za-z0-9_.-] (not . or ..) up to 100 characters name their directory."""
    assert index_dir_name(name) == name


@pytest.mark.parametrize("name", HOSTILE, ids=lambda n: repr(n[:12]))
def test_hostile_names_become_one_readable_entry_with_a_hash(name: str) -> None:
    """Anything else keeps a readable part, then ~ and 24 hex digits of the name's sha256."""
    encoded = index_dir_name(name)
    assert _is_one_safe_entry(encoded)
    assert encoded != name
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:24]
    assert encoded.endswith("~" + digest)
    assert not encoded.startswith(".")


def test_encoded_names_are_readable() -> None:
    """The readable part keeps the name's safe characters (idx:docs → idx_docs~…)."""
    assert index_dir_name("idx:docs").startswith("idx_docs~")
    assert index_dir_name("../../etc").startswith("_.._etc~")


def test_batch_names_cannot_collide_with_batch_journals_or_reports() -> None:
    """Index names ``batch`` and ``batch-*`` are encoded: batch-<id>/ and batch_report.yaml
    belong to the batch."""
    assert index_dir_name("batch-7") != batch_dir_name("7")
    assert index_dir_name("batch") + "_report.yaml" != "batch_report.yaml"
    assert batch_dir_name("batch_20261207_125147_3ba8") == "batch-batch_20261207_125147_3ba8"
    assert batch_dir_name("../x").startswith("batch-") and "/" not in batch_dir_name("../x")


@given(index_names(), index_names())
def test_directory_names_are_safe_and_collision_free(a: str, b: str) -> None:
    """Every name maps to one safe entry, and different names to different entries."""
    assert _is_one_safe_entry(index_dir_name(a)) and _is_one_safe_entry(entry_name(a))
    if a != b:
        assert index_dir_name(a) != index_dir_name(b)


def test_empty_backup_dir_is_a_usage_error() -> None:
    """An empty --backup-dir would mean the current directory: refused, naming the flag."""
    with pytest.raises(UsageError, match="--backup-dir is empty"):
        backup_root("")
    with pytest.raises(UsageError, match="NUL"):
        backup_root("a\0b")
    assert backup_root("b") == Path("b")


def test_lookup_by_real_name_finds_new_and_old_directories(tmp_path: Path) -> None:
    """The journal of an index is found by its real name: in its derived directory, or in
    the directory an earlier release named exactly after it (``idx:docs/``)."""
    Journal.create(tmp_path / "idx:docs", first=_first("idx:docs")).close()
    assert index_journal_dir(tmp_path, "idx:docs") == tmp_path / "idx:docs"
    assert index_journal_dir(tmp_path, "idx:other") == tmp_path / index_dir_name("idx:other")
    Journal.create(tmp_path / index_dir_name("a/b"), first=_first("a/b")).close()
    assert index_journal_dir(tmp_path, "a/b") == tmp_path / index_dir_name("a/b")


def test_a_directory_named_like_an_index_but_holding_another_is_not_it(tmp_path: Path) -> None:
    """An old directory ``x:y`` holding the journal of another index is not x:y's journal."""
    Journal.create(tmp_path / "x:y", first=_first("something else")).close()
    assert index_journal_dir(tmp_path, "x:y") == tmp_path / index_dir_name("x:y")


def test_journal_dirs_list_real_and_linked_entries(tmp_path: Path) -> None:
    """Listing finds every entry holding journal.log; a symbolic link is listed so that
    opening it is refused loudly rather than skipped."""
    Journal.create(tmp_path / "a", first=_first("a")).close()
    batch = BatchRunStarted(
        run_id="r", batch_id="b", plan_yaml="", plan_sha256="x", mode="drop_recreate"
    )
    Journal.create(tmp_path / "batch-b", first=batch).close()
    (tmp_path / "elsewhere").mkdir()
    Journal.create(tmp_path / "elsewhere" / "j", first=_first("j")).close()
    (tmp_path / "link").symlink_to(tmp_path / "elsewhere" / "j")
    (tmp_path / "not-a-journal").mkdir()
    assert journal_dirs(tmp_path) == [tmp_path / "a", tmp_path / "batch-b", tmp_path / "link"]
    assert is_batch_journal(tmp_path / "batch-b") and not is_batch_journal(tmp_path / "a")
    with pytest.raises(BackupDirError, match="link is a symbolic link"):
        Journal.first_run(tmp_path / "link")
    assert journal_dirs(tmp_path / "missing") == []
