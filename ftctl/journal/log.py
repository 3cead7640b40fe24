"""The journal file: lock, append + fsync, torn-tail recovery, and its segments.

Layout of a journal directory::

    <dir>/journal.log        framed events (see framing.py), append-only
    <dir>/journal.lock       flock'd by the process that runs against <dir>; holds its pid
    <dir>/segments/NNNNNN.zst

Directories are created 0700, files 0600; the directory is fsync'd after a file in it is
created or renamed, so a created journal or segment survives a power loss.

The journal directory and every file in it are opened without following symbolic links
(see :mod:`ftctl.journal.safefs`); the directories above it — the user's backup dir — are
used as given. OS errors become :class:`~ftctl.errors.BackupDirError`: exit 2 while opening
or creating (nothing changed), exit 1 once a run's appends fail (resume from the journal,
which is intact up to its last fsync).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import threading
import zlib
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Self, TypeVar, cast

import msgspec

from ftctl.errors import (
    EXIT_FAILED,
    BackupDirError,
    JournalCorruptError,
    JournalLockedError,
    RefusedError,
    UsageError,
)
from ftctl.journal.events import (
    AnyEvent,
    AnyRunStart,
    BatchRunStarted,
    Event,
    RunStarted,
    SegmentRef,
    decode_event,
    encode_event,
    segment_refs,
)
from ftctl.journal.framing import CORRUPT_HINT, HEADER, HEADER_SIZE, MAX_RECORD_SIZE, frame, scan
from ftctl.journal.pause import pause_requested
from ftctl.journal.safefs import (
    check_private_file,
    check_regular,
    fsync_dir,
    is_symlink,
    nothing_changed,
    open_dir,
    open_in,
    os_error,
    read_all,
    symlink_error,
)
from ftctl.journal.segments import (
    DEFAULT_LEVEL,
    SEGMENT_HINT,
    SegmentPayload,
    read_segment_file,
    sync_segment_files,
    write_segment_file,
)

JOURNAL_NAME = "journal.log"
LOCK_NAME = "journal.lock"
SEGMENTS_NAME = "segments"
DIR_MODE = 0o700
FILE_MODE = 0o600

E = TypeVar("E", bound=Event)


RESUME_HINT = "then resume with the same --backup-dir; the journal is intact up to the last fsync"


def _make_dirs(directory: Path) -> None:
    """Create ``directory`` 0700 (and missing parents), fsyncing each new entry's parent.

    Parents are the user's backup dir and are used as given; ``directory`` itself, the
    journal's own, must be a real directory (checked by the caller with :func:`open_dir`).
    """
    missing: list[Path] = []
    probe = directory
    while not probe.exists() and not is_symlink(probe):
        missing.append(probe)
        if probe.parent == probe:
            break
        probe = probe.parent
    for path in reversed(missing):
        try:
            path.mkdir(mode=DIR_MODE)
        except FileExistsError:
            continue  # created concurrently; the lock taken next settles who runs
        except OSError as exc:
            raise os_error(exc, "create the directory", path) from None
        try:
            fd = open_dir(path)
            try:
                os.fchmod(fd, DIR_MODE)  # mkdir's mode is filtered by the umask
            finally:
                os.close(fd)
            fsync_dir(path.parent)
        except OSError as exc:
            raise os_error(exc, "create the directory", path) from None


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _lock(directory: Path) -> int:
    """Take the exclusive lock of ``directory`` and write our pid into the lock file."""
    path = directory / LOCK_NAME
    fd = open_in(
        directory, LOCK_NAME, os.O_RDWR | os.O_CREAT, FILE_MODE, action="create the lock file"
    )
    try:
        check_private_file(fd, path)
        os.fchmod(fd, FILE_MODE)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
        os.close(fd)
        if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise os_error(exc, "lock", path) from None
        raise JournalLockedError(
            f"backup dir {directory} is in use by another ftctl process (pid {holder})",
            "wait for that process to finish, or stop it; two runs must never share a backup dir",
        ) from None
    except BaseException:
        os.close(fd)
        raise
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    except OSError as exc:
        os.close(fd)
        raise os_error(exc, "write the lock file", path) from None
    return fd


def _open_log(directory: Path, flags: int, *, action: str) -> int | None:
    """``journal.log`` of ``directory`` opened without following links; None when missing."""
    try:
        return open_in(directory, JOURNAL_NAME, flags, FILE_MODE, action=action)
    except FileNotFoundError:
        return None


def _read_log(fd: int, path: Path) -> bytes:
    try:
        return read_all(fd)
    except OSError as exc:
        raise os_error(exc, "read", path) from None


def _first_record(directory: Path) -> bytes | None:
    """The payload of the journal's first record; None when the journal is missing or holds
    only a torn first append (a create that crashed). Damage raises JournalCorruptError."""
    path = directory / JOURNAL_NAME
    fd = _open_log(directory, os.O_RDONLY | os.O_NONBLOCK, action="read")
    if fd is None:
        return None
    try:
        check_regular(fd, path)
        try:
            head = os.pread(fd, HEADER_SIZE, 0)
            if len(head) == HEADER_SIZE:
                length, crc = HEADER.unpack(head)
                if 0 < length <= MAX_RECORD_SIZE:
                    payload = os.pread(fd, length, HEADER_SIZE)
                    if len(payload) == length and zlib.crc32(payload) == crc:
                        return payload
        except OSError as exc:
            raise os_error(exc, "read", path) from None
        # Not a valid first record: tell a torn first append from damage on the whole file.
        result = scan(_read_log(fd, path), source=str(path))
        return result.records[0] if result.records else None
    finally:
        os.close(fd)


def _decode_first(record: bytes, path: Path) -> AnyEvent:
    try:
        return decode_event(record)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise JournalCorruptError(
            f"{path}: record 1 at byte 0 is not an event this ftctl knows "
            f"({' '.join(str(exc).split())})",
            "it was written by a newer ftctl (upgrade ftctl) or the journal is damaged",
        ) from None


def _make_segments_dir(root: Path) -> None:
    """``segments/`` in ``root``, created 0700 when missing; never a symbolic link."""
    segments = root / SEGMENTS_NAME
    root_fd = open_dir(root)
    try:
        os.mkdir(SEGMENTS_NAME, DIR_MODE, dir_fd=root_fd)
    except FileExistsError:
        pass  # checked below: a link or a file there is refused
    except OSError as exc:
        raise os_error(exc, "create the directory", segments) from None
    finally:
        os.close(root_fd)
    fd = open_dir(segments)
    try:
        os.fchmod(fd, DIR_MODE)
    except OSError as exc:
        raise os_error(exc, "set the mode of", segments) from None
    finally:
        os.close(fd)


def _check_segment_files(root: Path, events: list[AnyEvent]) -> None:
    """Every segment the journal references is there, a regular file (not a link) of the
    recorded size: a run that will need them refuses before it starts, not halfway."""
    segments = root / SEGMENTS_NAME
    for event in events:
        for ref in segment_refs(event):
            path = segments / ref.filename
            try:
                info = os.lstat(path)
            except FileNotFoundError:
                raise JournalCorruptError(
                    f"segment {ref.filename} referenced by the journal is missing from {segments}",
                    SEGMENT_HINT,
                ) from None
            except OSError as exc:
                raise os_error(exc, "read", path) from None
            if stat.S_ISLNK(info.st_mode):
                raise symlink_error(path)
            if not stat.S_ISREG(info.st_mode) or info.st_size != ref.size:
                raise JournalCorruptError(
                    f"segment {path} does not match the journal: "
                    f"size {info.st_size} (expected {ref.size})",
                    SEGMENT_HINT,
                )


def _check_segments_dir(root: Path) -> None:
    """Refuse a ``segments`` entry that is a symbolic link or not a directory."""
    segments = root / SEGMENTS_NAME
    if is_symlink(segments):
        raise symlink_error(segments)
    if segments.exists() and not segments.is_dir():
        raise BackupDirError(f"{segments} is not a directory", "move it away, then run again")


class Journal:
    """An open journal directory.

    Read-write journals (:meth:`create`, :meth:`open`) hold the directory's lock until
    :meth:`close`; read-only ones (:meth:`open_readonly`) take no lock and never write.
    ``append`` and ``write_segment`` are safe to call from several threads.
    """

    def __init__(
        self,
        directory: Path,
        *,
        fd: int | None,
        lock_fd: int | None,
        events: list[AnyEvent],
        recovered_tail: str | None,
        level: int,
    ) -> None:
        self.directory = directory
        self.path = directory / JOURNAL_NAME
        self.segments_dir = directory / SEGMENTS_NAME
        self.recovered_tail = recovered_tail
        """The torn tail found on open: cut off (read-write) or ignored (read-only)."""
        self.level = level
        self._fd = fd
        self._lock_fd = lock_fd
        self._events = events
        self._mutex = threading.Lock()
        self._unsynced: list[int] = []
        self._broken: tuple[str, str] | None = None
        """(reason, fix) of the write that failed: no append is attempted after it."""
        self._size = os.fstat(fd).st_size if fd is not None else 0
        self._next_segment = self._first_free_segment()

    # -- opening -------------------------------------------------------------------------

    @staticmethod
    def exists(directory: str | os.PathLike[str]) -> bool:
        """Whether ``directory`` holds a journal with at least one complete record.

        False for a missing journal or one holding only a torn first append; a damaged
        journal raises :class:`JournalCorruptError` (it is never mistaken for none), a
        symbolic link :class:`~ftctl.errors.BackupDirError`.
        """
        return _first_record(Path(directory)) is not None

    @staticmethod
    def first_run(directory: str | os.PathLike[str]) -> AnyRunStart | None:
        """The journal's first event (index or batch run start), reading one record only.

        None when there is no journal (see :meth:`exists`); a first record that is not a
        run start, or not an event at all, raises :class:`JournalCorruptError`.
        """
        root = Path(directory)
        record = _first_record(root)
        if record is None:
            return None
        event = _decode_first(record, root / JOURNAL_NAME)
        if not isinstance(event, RunStarted | BatchRunStarted):
            raise JournalCorruptError(
                f"{root / JOURNAL_NAME}: record 1 at byte 0 is a {type(event).__name__}, "
                "not the run_started event a journal begins with",
                CORRUPT_HINT,
            )
        return event

    @classmethod
    def create(
        cls,
        directory: str | os.PathLike[str],
        *,
        first: AnyRunStart,
        level: int = DEFAULT_LEVEL,
    ) -> Journal:
        """Create a journal in ``directory`` (made 0700 if missing) whose first event is ``first``.

        Refused when the directory already holds a journal with events, or a damaged one. A
        journal file holding only a torn first append (a create that crashed before its
        first fsync) is reused. Any failure here, the first append included, is exit 2:
        nothing ran yet.
        """
        root = Path(directory)
        _make_dirs(root)
        dir_fd = open_dir(root)
        try:
            os.fchmod(dir_fd, DIR_MODE)
        except OSError as exc:
            raise os_error(exc, "set the mode of", root) from None
        finally:
            os.close(dir_fd)
        lock_fd = _lock(root)
        fd: int | None = None
        try:
            path = root / JOURNAL_NAME
            if cls.exists(root):
                raise RefusedError(
                    f"{root} already holds a journal",
                    "resume it with `ftctl migrate resume --backup-dir`, or choose a new --backup-dir",
                )
            fd = open_in(
                root,
                JOURNAL_NAME,
                os.O_WRONLY | os.O_CREAT | os.O_APPEND,
                FILE_MODE,
                action="create the journal",
            )
            check_private_file(fd, path)
            try:
                os.fchmod(fd, FILE_MODE)
                os.ftruncate(fd, 0)  # only a torn first append is ever cut here (exists above)
            except OSError as exc:
                raise os_error(exc, "create the journal", path) from None
            _make_segments_dir(root)
            try:
                fsync_dir(root)
            except OSError as exc:
                raise os_error(exc, "sync the directory", root) from None
            journal = cls(root, fd=fd, lock_fd=lock_fd, events=[], recovered_tail=None, level=level)
        except BaseException:
            if fd is not None:
                os.close(fd)
            os.close(lock_fd)
            raise
        try:
            journal.append([first])
        except BackupDirError as exc:
            journal.close()
            raise nothing_changed(exc) from None
        except BaseException:
            journal.close()
            raise
        return journal

    @classmethod
    def open(cls, directory: str | os.PathLike[str], *, level: int = DEFAULT_LEVEL) -> Journal:
        """Open an existing journal read-write: take the lock, cut a torn tail, load events.

        ``recovered_tail`` says what was cut (callers report it). Damage anywhere raises
        :class:`JournalCorruptError` and changes nothing; a busy directory
        :class:`JournalLockedError`; a symbolic link or an OS error
        :class:`~ftctl.errors.BackupDirError`.
        """
        root = Path(directory)
        path = root / JOURNAL_NAME
        probe = _open_log(root, os.O_RDONLY | os.O_NONBLOCK, action="read")
        if probe is None:
            raise UsageError(f"no journal in {root}", "check --backup-dir (and --index)")
        os.close(probe)
        lock_fd = _lock(root)
        fd: int | None = None
        try:
            fd = _open_log(root, os.O_RDWR | os.O_APPEND, action="open")
            if fd is None:
                raise UsageError(f"no journal in {root}", "check --backup-dir (and --index)")
            check_private_file(fd, path)
            result = scan(_read_log(fd, path), source=str(path))
            events = _decode_all(path, result.records, result.offsets)
            if not events or not isinstance(events[0], RunStarted | BatchRunStarted):
                raise JournalCorruptError(
                    f"{path} does not start with a run_started event",
                    "the run that created it stopped before recording anything; "
                    "run apply again with the same --backup-dir",
                )
            _check_segments_dir(root)
            _check_segment_files(root, events)
            if result.tail_problem is not None:
                try:
                    os.ftruncate(fd, result.good_length)
                    os.fsync(fd)
                except OSError as exc:
                    raise os_error(exc, "cut the torn last record of", path) from None
            return cls(
                root,
                fd=fd,
                lock_fd=lock_fd,
                events=events,
                recovered_tail=result.tail_problem,
                level=level,
            )
        except BaseException:
            if fd is not None:
                os.close(fd)
            os.close(lock_fd)
            raise

    @classmethod
    def open_readonly(cls, directory: str | os.PathLike[str]) -> Journal:
        """Open a journal without the lock and without changing it (inspect, status).

        A torn tail is ignored and described in ``recovered_tail``; the file is not cut.
        """
        root = Path(directory)
        path = root / JOURNAL_NAME
        fd = _open_log(root, os.O_RDONLY | os.O_NONBLOCK, action="read")
        if fd is None:
            raise UsageError(f"no journal in {root}", "check --backup-dir (and --index)")
        try:
            check_regular(fd, path)
            data = _read_log(fd, path)
        finally:
            os.close(fd)
        result = scan(data, source=str(path))
        events = _decode_all(path, result.records, result.offsets)
        _check_segments_dir(root)
        return cls(
            root,
            fd=None,
            lock_fd=None,
            events=events,
            recovered_tail=result.tail_problem,
            level=DEFAULT_LEVEL,
        )

    @classmethod
    def read(cls, directory: str | os.PathLike[str]) -> list[AnyEvent]:
        """The events of a journal, read-only (see :meth:`open_readonly`)."""
        with cls.open_readonly(directory) as journal:
            return journal.events()

    # -- reading -------------------------------------------------------------------------

    @property
    def readonly(self) -> bool:
        """Whether this handle was opened without the lock (no writes allowed)."""
        return self._fd is None

    @property
    def last_seq(self) -> int:
        """Sequence number of the last event (0 for none)."""
        return self._events[-1].seq if self._events else 0

    @property
    def first(self) -> AnyRunStart:
        """The first event: the plan (index or batch) this journal belongs to."""
        first = self._events[0] if self._events else None
        if not isinstance(first, RunStarted | BatchRunStarted):
            raise JournalCorruptError(f"{self.path} has no run_started event", CORRUPT_HINT)
        return first

    @property
    def run_started(self) -> RunStarted:
        """The first event of an index journal: the plan it belongs to."""
        first = self.first
        if not isinstance(first, RunStarted):
            raise JournalCorruptError(
                f"{self.path} is a batch journal, not an index journal",
                "pass the backup dir of an index migration (batch journals: batch-resume)",
            )
        return first

    def events(self) -> list[AnyEvent]:
        """Every event, in order (a copy)."""
        with self._mutex:
            return list(self._events)

    def __iter__(self) -> Iterator[AnyEvent]:
        return iter(self.events())

    def paused(self) -> bool:
        """Whether an operator asked the run on this journal to pause (its ``PAUSE`` flag,
        see :mod:`ftctl.journal.pause`)."""
        return pause_requested(self.directory)

    def read_segment(self, ref: SegmentRef) -> SegmentPayload:
        """A segment's payload, after checking its size and crc32 against ``ref``."""
        return read_segment_file(self.segments_dir, ref)

    def iter_segments(self, refs: Iterable[SegmentRef]) -> Iterator[SegmentPayload]:
        """Verified payloads of ``refs``, one at a time (streams keys without holding them all)."""
        for ref in refs:
            yield self.read_segment(ref)

    # -- writing -------------------------------------------------------------------------

    def _writable_fd(self) -> int:
        if self._fd is None:
            raise RuntimeError("this journal was opened read-only")
        if self._broken is not None:
            reason, fix = self._broken
            raise BackupDirError(
                f"the journal {self.path} cannot be written: {reason}",
                f"{fix}, {RESUME_HINT}",
                exit_code=EXIT_FAILED,
            )
        return self._fd

    def append(self, events: Sequence[E]) -> list[E]:
        """Stamp ``seq`` and ``at`` on ``events``, write them in one write, fsync once.

        Returns the events as stored. When the write or fsync fails the journal refuses
        further appends (the disk state after a failed fsync is unknown) and raises
        :class:`~ftctl.errors.BackupDirError` with exit code 1: the journal is intact up to
        its last fsync, so the run resumes once the cause is fixed.
        """
        if not events:
            return []
        with self._mutex:
            fd = self._writable_fd()
            if self._unsynced:
                try:
                    sync_segment_files(self.segments_dir, self._unsynced)
                except OSError as exc:
                    error = os_error(
                        exc, "sync the backup segments in", self.segments_dir,
                        exit_code=EXIT_FAILED, then=RESUME_HINT,
                    )  # fmt: skip
                    self._broken = (exc.strerror or str(exc), error.fix)
                    raise error from None
                self._unsynced.clear()
            now = datetime.now(UTC)
            base = self.last_seq
            stamped = [
                msgspec.structs.replace(event, seq=base + i, at=now)
                for i, event in enumerate(events, start=1)
            ]
            blob = b"".join(frame(encode_event(event)) for event in stamped)
            try:
                _write_all(fd, blob)
                os.fsync(fd)
            except OSError as exc:
                error = os_error(
                    exc, "write the journal", self.path, exit_code=EXIT_FAILED, then=RESUME_HINT
                )
                self._broken = (exc.strerror or str(exc), error.fix)
                # best effort: never leave a partial record for a later append to follow
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, self._size)
                raise error from None
            self._size += len(blob)
            self._events.extend(cast(list[AnyEvent], stamped))  # encode_event checked the types
            return stamped

    def write_segment(self, payload: SegmentPayload, *, durable: bool = True) -> SegmentRef:
        """Write ``payload`` as the next segment; reference the result in an event.

        With ``durable=False`` the fsync is deferred to the next :meth:`append`, which syncs
        every pending segment (and the directory) once before it writes its events: a batch of
        segments costs one sync, and no event ever references a segment not yet on disk.
        """
        with self._mutex:
            self._writable_fd()
            number = self._next_segment
            self._next_segment += 1
        try:
            ref = write_segment_file(
                self.segments_dir, number, payload, level=self.level, durable=durable
            )
        except OSError as exc:
            path = self.segments_dir / f"{number:06d}.zst"
            raise os_error(
                exc, "write the backup segment", path, exit_code=EXIT_FAILED, then=RESUME_HINT
            ) from None
        if not durable:
            with self._mutex:
                self._unsynced.append(number)
        return ref

    def _first_free_segment(self) -> int:
        """One past the highest segment referenced or present (an orphan is never reused)."""
        highest = 0
        for event in self._events:
            for ref in segment_refs(event):
                highest = max(highest, ref.number)
        try:
            names = os.listdir(self.segments_dir) if self.segments_dir.is_dir() else []
        except OSError as exc:
            raise os_error(exc, "list", self.segments_dir) from None
        for name in names:
            stem = name.split(".", 1)[0]
            if name.endswith(".zst") and stem.isdigit():
                highest = max(highest, int(stem))
        return highest + 1

    # -- closing -------------------------------------------------------------------------

    def close(self) -> None:
        """Release the file and the lock (idempotent)."""
        with self._mutex:
            for fd in (self._fd, self._lock_fd):
                if fd is not None:
                    os.close(fd)
            self._fd = None
            self._lock_fd = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _decode_all(path: Path, records: list[bytes], offsets: list[int]) -> list[AnyEvent]:
    """Decode every record and check the sequence numbers run 1, 2, 3, ..."""
    events: list[AnyEvent] = []
    for number, (record, offset) in enumerate(zip(records, offsets, strict=True), start=1):
        try:
            event = decode_event(record)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise JournalCorruptError(
                f"{path}: record {number} at byte {offset} is not an event this ftctl knows "
                f"({' '.join(str(exc).split())})",
                "it was written by a newer ftctl (upgrade ftctl) or the journal is damaged",
            ) from None
        if event.seq != number:
            raise JournalCorruptError(
                f"{path}: record {number} at byte {offset} has sequence number {event.seq}, "
                f"expected {number}",
                CORRUPT_HINT,
            )
        events.append(event)
    return events
