"""The journal file: lock, append + fsync, torn-tail recovery, and its segments.

Layout of a journal directory::

    <dir>/journal.log        framed events (see framing.py), append-only
    <dir>/journal.lock       flock'd by the process that runs against <dir>; holds its pid
    <dir>/segments/NNNNNN.zst

Directories are created 0700, files 0600; the directory is fsync'd after a file in it is
created or renamed, so a created journal or segment survives a power loss.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import threading
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Self, TypeVar, cast

import msgspec

from ftctl.errors import (
    EXIT_FAILED,
    FtctlError,
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
from ftctl.journal.segments import (
    DEFAULT_LEVEL,
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


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _make_dirs(directory: Path) -> None:
    """Create ``directory`` and missing parents 0700, fsyncing each new entry's parent."""
    missing: list[Path] = []
    probe = directory
    while not probe.exists():
        missing.append(probe)
        probe = probe.parent
    for path in reversed(missing):
        try:
            path.mkdir(mode=DIR_MODE)
        except FileExistsError:
            continue  # created concurrently; the lock taken next settles who runs
        os.chmod(path, DIR_MODE)  # mkdir's mode is filtered by the umask
        _fsync_dir(path.parent)
    if not directory.is_dir():
        raise UsageError(f"{directory} is not a directory", "choose another --backup-dir")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _lock(directory: Path) -> int:
    """Take the exclusive lock of ``directory`` and write our pid into the lock file."""
    path = directory / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
        os.close(fd)
        if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise
        raise JournalLockedError(
            f"backup dir {directory} is in use by another ftctl process (pid {holder})",
            "wait for that process to finish, or stop it; two runs must never share a backup dir",
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _first_record(path: Path) -> bytes | None:
    """The payload of the journal's first record, or None when it is missing or torn."""
    try:
        with path.open("rb") as file:
            head = file.read(HEADER_SIZE)
            if len(head) < HEADER_SIZE:
                return None
            length: int = HEADER.unpack(head)[0]
            if not 0 < length <= MAX_RECORD_SIZE:
                return None
            result = scan(head + file.read(length), source=str(path))
            return result.records[0] if result.tail_problem is None else None
    except FileNotFoundError:
        return None


def _first_record_complete(path: Path) -> bool:
    return _first_record(path) is not None


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
        self._broken: str | None = None
        self._size = os.fstat(fd).st_size if fd is not None else 0
        self._next_segment = self._first_free_segment()

    # -- opening -------------------------------------------------------------------------

    @staticmethod
    def exists(directory: str | os.PathLike[str]) -> bool:
        """Whether ``directory`` holds a journal with at least one complete record."""
        return _first_record_complete(Path(directory) / JOURNAL_NAME)

    @staticmethod
    def first_run(directory: str | os.PathLike[str]) -> AnyRunStart | None:
        """The journal's first event (index or batch run start), reading one record only."""
        record = _first_record(Path(directory) / JOURNAL_NAME)
        if record is None:
            return None
        event = decode_event(record)
        return event if isinstance(event, RunStarted | BatchRunStarted) else None

    @classmethod
    def create(
        cls,
        directory: str | os.PathLike[str],
        *,
        first: AnyRunStart,
        level: int = DEFAULT_LEVEL,
    ) -> Journal:
        """Create a journal in ``directory`` (made 0700 if missing) whose first event is ``first``.

        Refused when the directory already holds a journal with events. A journal file with
        no complete record (a create that crashed before its first fsync) is reused.
        """
        root = Path(directory)
        _make_dirs(root)
        os.chmod(root, DIR_MODE)
        lock_fd = _lock(root)
        fd: int | None = None
        try:
            path = root / JOURNAL_NAME
            if cls.exists(root):
                raise RefusedError(
                    f"{root} already holds a journal",
                    "resume it with `ftctl migrate resume --backup-dir`, or choose a new --backup-dir",
                )
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, FILE_MODE)
            os.fchmod(fd, FILE_MODE)
            os.ftruncate(fd, 0)
            segments = root / SEGMENTS_NAME
            if not segments.is_dir():
                segments.mkdir(mode=DIR_MODE)
            os.chmod(segments, DIR_MODE)
            _fsync_dir(root)
            journal = cls(root, fd=fd, lock_fd=lock_fd, events=[], recovered_tail=None, level=level)
        except BaseException:
            if fd is not None:
                os.close(fd)
            os.close(lock_fd)
            raise
        try:
            journal.append([first])
        except BaseException:
            journal.close()
            raise
        return journal

    @classmethod
    def open(cls, directory: str | os.PathLike[str], *, level: int = DEFAULT_LEVEL) -> Journal:
        """Open an existing journal read-write: take the lock, cut a torn tail, load events.

        ``recovered_tail`` says what was cut (the CLI reports it). Damage before the tail
        raises :class:`JournalCorruptError`; a busy directory :class:`JournalLockedError`.
        """
        root = Path(directory)
        path = root / JOURNAL_NAME
        if not path.is_file():
            raise UsageError(f"no journal in {root}", "check --backup-dir (and --index)")
        lock_fd = _lock(root)
        fd: int | None = None
        try:
            fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CLOEXEC)
            result = scan(path.read_bytes(), source=str(path))
            if result.tail_problem is not None:
                os.ftruncate(fd, result.good_length)
                os.fsync(fd)
            events = _decode_all(path, result.records, result.offsets)
            if not events or not isinstance(events[0], RunStarted | BatchRunStarted):
                raise JournalCorruptError(
                    f"{path} does not start with a run_started event",
                    "the run that created it stopped before recording anything; "
                    "run apply again with the same --backup-dir",
                )
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
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise UsageError(f"no journal in {root}", "check --backup-dir (and --index)") from None
        result = scan(data, source=str(path))
        events = _decode_all(path, result.records, result.offsets)
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
            raise FtctlError(
                f"the journal {self.path} cannot be written: {self._broken}",
                "fix the cause, then resume; the journal is intact up to the last fsync",
                exit_code=EXIT_FAILED,
            )
        return self._fd

    def append(self, events: Sequence[E]) -> list[E]:
        """Stamp ``seq`` and ``at`` on ``events``, write them in one write, fsync once.

        Returns the events as stored. When the write or fsync fails the journal refuses
        further appends (the disk state after a failed fsync is unknown) and raises.
        """
        if not events:
            return []
        with self._mutex:
            fd = self._writable_fd()
            if self._unsynced:
                sync_segment_files(self.segments_dir, self._unsynced)
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
                self._broken = exc.strerror or str(exc)
                # best effort: never leave a partial record for a later append to follow
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, self._size)
                raise FtctlError(
                    f"cannot write the journal {self.path}: {self._broken}",
                    "free disk space or fix permissions, then resume with the same --backup-dir",
                    exit_code=EXIT_FAILED,
                ) from exc
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
        ref = write_segment_file(
            self.segments_dir, number, payload, level=self.level, durable=durable
        )
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
        if self.segments_dir.is_dir():
            for entry in self.segments_dir.iterdir():
                stem = entry.name.split(".", 1)[0]
                if entry.name.endswith(".zst") and stem.isdigit():
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
                f"{path}: the record at byte {offset} is not an event this ftctl knows ({exc})",
                "it was written by a newer ftctl (upgrade ftctl) or the journal is damaged",
            ) from None
        if event.seq != number:
            raise JournalCorruptError(
                f"{path}: the record at byte {offset} has sequence number {event.seq}, "
                f"expected {number}",
                CORRUPT_HINT,
            )
        events.append(event)
    return events
