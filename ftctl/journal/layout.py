"""Where journals live in a backup directory, under names that cannot leave it.

Redis accepts any string as an index name (``..``, ``a/b``, ``/etc``, 10 KB of text); a
journal directory is one entry of the backup dir whatever the name:

- an *ordinary* name — 1 to 100 characters of ``[A-Za-z0-9_.-]``, not ``.`` or ``..``, not
  ``batch`` and not starting with ``batch-`` (the batch journals' and ``batch_report.yaml``'s
  names) — is used as it is: ``<backup-dir>/docs/``;
- any other name becomes its readable part (``[A-Za-z0-9_.-]`` kept, other characters ``_``,
  at most 48, no leading dot) then ``~`` and 24 hex digits of the name's sha256:
  ``idx:docs`` → ``idx_docs~5b0c…``. ``~`` never appears in an ordinary name, so the two
  forms never collide, and the hash tells encoded names apart.

The real name stays in the journal (``RunStarted.index_name``): lookups by name read it, so
``--index NAME`` always means the index, never the directory. Journals written by earlier
releases in a directory named exactly after the index (``<backup-dir>/idx:docs/``) are still
found by that name.

The backup dir itself is the user's choice and used as given (it may be a symbolic link);
inside it nothing is followed (:mod:`ftctl.journal.safefs`).
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from pathlib import Path

from ftctl.errors import UsageError
from ftctl.journal.events import BatchRunStarted, RunStarted
from ftctl.journal.log import JOURNAL_NAME, Journal
from ftctl.journal.safefs import os_error

ORDINARY = re.compile(r"[A-Za-z0-9_.-]{1,100}")
BATCH_PREFIX = "batch-"
DIGEST_CHARS = 24
READABLE_CHARS = 48


def _encoded(name: str) -> str:
    readable = re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:READABLE_CHARS].lstrip(".")
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:DIGEST_CHARS]
    return f"{readable}~{digest}"


def entry_name(name: str) -> str:
    """A file name for ``name`` that is one entry of its directory (see the module doc)."""
    if ORDINARY.fullmatch(name) and name not in (".", ".."):
        return name
    return _encoded(name)


def index_dir_name(index_name: str) -> str:
    """The journal directory name of an index; also the stem of its batch report and plan."""
    if index_name == "batch" or index_name.startswith(BATCH_PREFIX):
        return _encoded(index_name)
    return entry_name(index_name)


def batch_dir_name(batch_id: str) -> str:
    """``batch-<batch_id>`` with the id made safe like an index name."""
    return BATCH_PREFIX + entry_name(batch_id)


def backup_root(backup_dir: str | os.PathLike[str]) -> Path:
    """The backup dir as a path; an empty one (which would mean the current directory) is a
    UsageError, and so is a path the OS cannot hold."""
    text = os.fspath(backup_dir)
    if not text:
        raise UsageError(
            "--backup-dir is empty",
            "name the directory for the journal and backups (it is created when missing)",
        )
    if "\0" in text:
        raise UsageError("--backup-dir contains a NUL byte", "name a real directory")
    return Path(text)


def _legacy_dir_name(index_name: str) -> str | None:
    """The directory an earlier release used for ``index_name``, when it is one safe entry."""
    if not index_name or index_name in (".", "..") or "/" in index_name or "\0" in index_name:
        return None
    if len(index_name.encode("utf-8", "surrogatepass")) > 255:
        return None
    return index_name


def is_index_journal_of(directory: Path, index_name: str) -> bool:
    """Whether ``directory`` holds the journal of an index migration of ``index_name``."""
    first = Journal.first_run(directory)
    return (
        isinstance(first, RunStarted) and first.kind != "batch" and first.index_name == index_name
    )


def index_journal_dir(root: Path, index_name: str) -> Path:
    """The journal directory of ``index_name`` under ``root``: where its journal is (the
    derived name, or the exact name an earlier release used), else where a new one goes."""
    derived = root / index_dir_name(index_name)
    if Journal.exists(derived):
        return derived
    legacy = _legacy_dir_name(index_name)
    if legacy is not None and legacy != derived.name:
        candidate = root / legacy
        if _is_dir_entry(candidate) and is_index_journal_of(candidate, index_name):
            return candidate
    return derived


def _is_dir_entry(path: Path) -> bool:
    """A directory or a symbolic link (the journal refuses the link with a clear error)."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise os_error(exc, "read", path) from None
    return stat.S_ISDIR(mode) or stat.S_ISLNK(mode)


def journal_dirs(root: Path) -> list[Path]:
    """Entries of ``root`` that hold a ``journal.log``, sorted by name (links included, so
    opening them gives the symbolic-link refusal instead of silently skipping them)."""
    try:
        names = sorted(os.listdir(root))
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as exc:
        raise os_error(exc, "list", root) from None
    found = []
    for name in names:
        directory = root / name
        if _is_dir_entry(directory) and os.path.lexists(directory / JOURNAL_NAME):
            found.append(directory)
    return found


def is_batch_journal(directory: Path) -> bool:
    """Whether ``directory`` holds a batch's own journal (this release's or 0.1's form)."""
    first = Journal.first_run(directory)
    return isinstance(first, BatchRunStarted) or (
        isinstance(first, RunStarted) and first.kind == "batch"
    )


__all__ = [
    "BATCH_PREFIX",
    "backup_root",
    "batch_dir_name",
    "entry_name",
    "index_dir_name",
    "index_journal_dir",
    "is_batch_journal",
    "is_index_journal_of",
    "journal_dirs",
]
