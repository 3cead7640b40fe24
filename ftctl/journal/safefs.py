"""File access inside a backup directory: no symbolic link is followed, OS errors become one line.

The user chooses the backup directory, so its own path is used as given (it may be, or pass
through, a symbolic link). Everything ftctl creates or reads *inside* it — a journal
directory, ``journal.log``, ``journal.lock``, ``segments/`` and each segment — is opened with
``O_NOFOLLOW`` (directories with ``O_DIRECTORY | O_NOFOLLOW``): a symbolic link there is
refused with :class:`~ftctl.errors.BackupDirError`, never truncated, written or chmod'ed
through. Files ftctl writes must be regular files with one link, so a hard link cannot carry
a write out of the backup directory either.

:func:`os_error` turns an ``OSError`` into the one-line :class:`~ftctl.errors.BackupDirError`
the CLI prints (no space, read-only file system, permission denied, a file where a
directory belongs), with the exit code the caller knows is right.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from ftctl.errors import EXIT_REFUSED, BackupDirError

NOFOLLOW = os.O_NOFOLLOW | os.O_CLOEXEC
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | NOFOLLOW

_HINTS = {
    errno.ENOSPC: "free disk space",
    errno.EDQUOT: "free disk space or raise the disk quota",
    errno.EFBIG: "the file size limit was reached: raise it (ulimit -f) or free space",
    errno.EROFS: "the file system is read-only: choose a writable --backup-dir",
    errno.EACCES: "check the permissions of the backup dir",
    errno.EPERM: "check the permissions of the backup dir",
    errno.ENOTDIR: "a file stands where a directory belongs: choose another --backup-dir",
    errno.EEXIST: "a file stands where a directory belongs: choose another --backup-dir",
    errno.ENAMETOOLONG: "choose a shorter --backup-dir path",
    errno.EIO: "the disk reported an I/O error: check it before anything else",
}

NOTHING_CHANGED = "then run the command again; nothing was changed"

SYMLINK_HINT = (
    "ftctl never follows a symbolic link inside a backup dir; replace the link by the real "
    "directory or file, or choose another --backup-dir"
)


def os_error(
    exc: OSError,
    action: str,
    path: Path | str,
    *,
    exit_code: int = EXIT_REFUSED,
    then: str = "",
) -> BackupDirError:
    """``cannot <action> <path>: <reason>`` with a hint for the errno, ready to raise.

    ``then`` ends the hint (what to do once the cause is fixed); by default, for exit code 2,
    it says nothing was changed.
    """
    if exc.errno == errno.ELOOP:
        return symlink_error(Path(path))
    reason = exc.strerror or str(exc)
    hint = _HINTS.get(exc.errno or 0, "fix the cause")
    if not then and exit_code == EXIT_REFUSED:
        then = NOTHING_CHANGED
    error = BackupDirError(
        f"cannot {action} {path}: {reason}",
        f"{hint}, {then}" if then else hint,
        exit_code=exit_code,
    )
    error.fix = hint
    return error


def nothing_changed(exc: BackupDirError) -> BackupDirError:
    """``exc`` re-raised for a failure before anything ran: exit 2, run the command again."""
    error = BackupDirError(exc.message, f"{exc.fix}, {NOTHING_CHANGED}", exit_code=EXIT_REFUSED)
    error.fix = exc.fix
    return error


def symlink_error(path: Path) -> BackupDirError:
    return BackupDirError(f"{path} is a symbolic link; ftctl does not follow it", SYMLINK_HINT)


def is_symlink(path: Path) -> bool:
    try:
        return stat.S_ISLNK(os.lstat(path).st_mode)
    except OSError:
        return False


def open_dir(directory: Path, action: str = "open the directory") -> int:
    """A file descriptor of ``directory``, refusing a symbolic link or a non-directory."""
    try:
        return os.open(directory, DIR_FLAGS)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR) and is_symlink(directory):
            raise symlink_error(directory) from None
        if exc.errno == errno.ENOTDIR:
            raise BackupDirError(
                f"{_not_a_directory(directory)} is not a directory", _HINTS[errno.ENOTDIR]
            ) from None
        raise os_error(exc, action, directory) from None


def _not_a_directory(path: Path) -> Path:
    """The outermost of ``path`` and its parents that exists but is not a directory."""
    for probe in reversed((path, *path.parents)):
        try:
            if not stat.S_ISDIR(os.stat(probe).st_mode):
                return probe
        except OSError:
            break
    return path


def open_in(
    directory: Path,
    name: str,
    flags: int,
    mode: int = 0o600,
    *,
    action: str = "open",
    exit_code: int = EXIT_REFUSED,
    then: str = "",
) -> int:
    """Open ``directory/name`` with neither the directory nor the file followed if a link.

    ``FileNotFoundError`` and (for ``O_EXCL``) ``FileExistsError`` pass through: callers
    decide what they mean. A link is refused; every other OS error becomes a
    :class:`BackupDirError`.
    """
    try:
        dir_fd = os.open(directory, DIR_FLAGS)
    except FileNotFoundError:
        raise
    except OSError:
        dir_fd = open_dir(directory)  # raises the right error
    try:
        return os.open(name, flags | NOFOLLOW, mode, dir_fd=dir_fd)
    except FileNotFoundError:
        raise
    except OSError as exc:
        path = directory / name
        if exc.errno == errno.ELOOP or (exc.errno == errno.EEXIST and is_symlink(path)):
            raise symlink_error(path) from None
        if exc.errno == errno.EEXIST:
            raise
        raise os_error(exc, action, path, exit_code=exit_code, then=then) from None
    finally:
        os.close(dir_fd)


def check_private_file(fd: int, path: Path) -> None:
    """Refuse to write a file that is not a regular file of one link (a hard link to a file
    outside the backup dir would carry our writes there)."""
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        raise BackupDirError(f"{path} is not a regular file", SYMLINK_HINT)
    if info.st_nlink > 1:
        raise BackupDirError(
            f"{path} has {info.st_nlink} hard links; ftctl writes only files of its own",
            "copy it to a file of its own (cp, then mv over it) or choose another --backup-dir",
        )


def check_regular(fd: int, path: Path) -> None:
    """Refuse to read anything but a regular file (a FIFO or a device is not ours)."""
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        raise BackupDirError(f"{path} is not a regular file", SYMLINK_HINT)


def read_all(fd: int, limit: int | None = None) -> bytes:
    """The bytes of an open file from its start: all of them, or at most ``limit``."""
    size = os.fstat(fd).st_size
    chunks: list[bytes] = []
    offset = 0
    while limit is None or offset < limit:
        want = max(size - offset, 1 << 16)
        if limit is not None:
            want = min(want, limit - offset)
        chunk = os.pread(fd, min(want, 1 << 30), offset)
        if not chunk:
            break
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


__all__ = [
    "DIR_FLAGS",
    "NOFOLLOW",
    "SYMLINK_HINT",
    "check_private_file",
    "check_regular",
    "fsync_dir",
    "is_symlink",
    "nothing_changed",
    "open_dir",
    "open_in",
    "os_error",
    "read_all",
    "symlink_error",
]
