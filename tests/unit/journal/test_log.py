"""The journal file: create/open, lock, torn-tail recovery, permissions, segments."""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from ftctl.errors import (
    BackupDirError,
    FtctlError,
    JournalCorruptError,
    JournalLockedError,
    RefusedError,
    UsageError,
)
from ftctl.journal import (
    BatchDone,
    Event,
    Journal,
    KeysEnumerated,
    Note,
    RunStarted,
    SegmentPayload,
    StepStarted,
    frame,
    pack_field,
)
from ftctl.journal.events import StepName
from ftctl.journal.segments import write_segment_file

PLAN_YAML = "version: 1\nmode: drop_recreate\nsource:\n  index: products\n"


def _first() -> RunStarted:
    return RunStarted(
        run_id="run-1",
        kind="apply",
        index_name="products",
        plan_yaml=PLAN_YAML,
        plan_sha256=hashlib.sha256(PLAN_YAML.encode()).hexdigest(),
        mode="drop_recreate",
        options={"batch_size": 500},
        redis_url="redis://localhost:6379",
        ftctl_version="0.1.0",
    )


@pytest.fixture
def jdir(tmp_path: Path) -> Path:
    """A journal directory (not yet created) two levels below tmp_path."""
    return tmp_path / "backups" / "products"


@pytest.fixture
def journal(jdir: Path) -> Iterator[Journal]:
    """A freshly created journal with its first event."""
    with Journal.create(jdir, first=_first()) as j:
        yield j


def test_create_writes_run_started_with_plan_and_stamps(journal: Journal) -> None:
    """The first event embeds the plan and its sha256 and is stamped seq 1 with a UTC time."""
    (first,) = journal.events()
    assert isinstance(first, RunStarted)
    assert first.plan_yaml == PLAN_YAML
    assert first.plan_sha256 == hashlib.sha256(PLAN_YAML.encode()).hexdigest()
    assert first.seq == 1
    assert first.at is not None and first.at.utcoffset() is not None
    assert first.at.utcoffset().total_seconds() == 0  # type: ignore[union-attr]  # checked above
    assert journal.run_started == first


def test_files_are_0600_and_dirs_0700(jdir: Path) -> None:
    """Everything the journal creates is private to the user, whatever the umask."""
    old = os.umask(0)
    try:
        with Journal.create(jdir, first=_first()) as j:
            j.write_segment(SegmentPayload(keys=[b"a"]))
    finally:
        os.umask(old)
    for directory in (jdir.parent, jdir, jdir / "segments"):
        assert directory.stat().st_mode & 0o777 == 0o700, directory
    for file in (jdir / "journal.log", jdir / "journal.lock", jdir / "segments" / "000001.zst"):
        assert file.stat().st_mode & 0o777 == 0o600, file


def test_events_round_trip_through_reopen(journal: Journal, jdir: Path) -> None:
    """Appended events come back equal after close and reopen, read-write and read-only."""
    stamped = journal.append([StepStarted(step="enumerate"), Note(message="x", data={"a": 1.5})])
    assert [e.seq for e in stamped] == [2, 3]
    assert stamped[0].at == stamped[1].at  # one group commit, one time stamp
    expected = journal.events()
    journal.close()
    with Journal.open(jdir) as reopened:
        assert reopened.events() == expected
        assert reopened.recovered_tail is None
    assert Journal.read(jdir) == expected


def test_append_group_commits_in_one_write_and_one_fsync(
    journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Several events go to disk in one write followed by exactly one fsync."""
    writes: list[int] = []
    fsyncs: list[int] = []
    real_write, real_fsync = os.write, os.fsync

    def counting_write(fd: int, data: bytes) -> int:
        writes.append(len(data))
        return real_write(fd, data)

    def counting_fsync(fd: int) -> None:
        fsyncs.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "write", counting_write)
    monkeypatch.setattr(os, "fsync", counting_fsync)
    steps: list[StepName] = ["enumerate", "backup", "preflight", "drop", "create"]
    journal.append([StepStarted(step=step) for step in steps])
    assert len(writes) == 1 and len(fsyncs) == 1
    assert journal.last_seq == 6


def test_append_refuses_non_events(journal: Journal) -> None:
    """Only concrete journal events can be appended; the journal stays unchanged."""
    with pytest.raises(TypeError):
        journal.append([Event()])
    assert journal.last_seq == 1


def test_concurrent_appends_get_consecutive_seqs(journal: Journal, jdir: Path) -> None:
    """Appends from several threads never interleave: seqs run 1..n on disk."""

    steps: list[StepName] = ["backup", "quantize", "rename_keys", "rename_fields"]

    def work(worker: int) -> None:
        for batch in range(20):
            journal.append([BatchDone(step=steps[worker], batch=batch, keys=1)])

    threads = [threading.Thread(target=work, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    journal.close()
    events = Journal.read(jdir)
    assert [e.seq for e in events] == list(range(1, 82))


def test_create_refuses_existing_journal(journal: Journal, jdir: Path) -> None:
    """Creating over a journal with events is refused, pointing at resume."""
    journal.close()
    with pytest.raises(RefusedError, match="already holds a journal") as caught:
        Journal.create(jdir, first=_first())
    assert "resume" in caught.value.hint
    assert len(Journal.read(jdir)) == 1


def test_create_reuses_journal_without_complete_record(jdir: Path) -> None:
    """A journal.log left by a create that crashed before its first record is started over."""
    jdir.mkdir(parents=True)
    (jdir / "journal.log").write_bytes(frame(b"x" * 50)[:20])
    assert not Journal.exists(jdir)
    with Journal.create(jdir, first=_first()) as j:
        assert [type(e) for e in j.events()] == [RunStarted]
    assert Journal.exists(jdir)
    assert len(Journal.read(jdir)) == 1


def test_open_missing_journal_is_a_usage_error(tmp_path: Path) -> None:
    """Opening a directory without a journal says so instead of creating one."""
    with pytest.raises(UsageError, match="no journal in"):
        Journal.open(tmp_path)
    with pytest.raises(UsageError, match="no journal in"):
        Journal.read(tmp_path)
    assert not (tmp_path / "journal.log").exists()


def test_open_refuses_journal_without_run_started(jdir: Path) -> None:
    """A journal whose only record is torn has no plan and refuses to open read-write."""
    jdir.mkdir(parents=True)
    (jdir / "journal.log").write_bytes(b"\x05\x00")
    with pytest.raises(JournalCorruptError, match="does not start with a run_started"):
        Journal.open(jdir)


def _build(jdir: Path) -> tuple[bytes, int]:
    """A closed journal of four events; returns its bytes and the last record's offset."""
    with Journal.create(jdir, first=_first()) as j:
        j.append([StepStarted(step="enumerate")])
        j.append([Note(message="before the last")])
        before = (jdir / "journal.log").stat().st_size
        j.append([Note(message="the last record, torn by a crash", data={"n": 7})])
    return (jdir / "journal.log").read_bytes(), before


def test_torn_tail_at_every_byte_offset_is_recovered_and_appendable(tmp_path: Path) -> None:
    """Whatever byte the last append was cut at, open cuts it, reports it, and appends go on."""
    data, last = _build(tmp_path / "orig")
    for cut in range(last + 1, len(data)):
        d = tmp_path / f"cut{cut}"
        d.mkdir()
        (d / "journal.log").write_bytes(data[:cut])
        with Journal.open(d) as j:
            assert j.recovered_tail is not None and f"byte {last}" in j.recovered_tail, cut
            assert (d / "journal.log").stat().st_size == last, cut
            assert [e.seq for e in j.events()] == [1, 2, 3], cut
            (appended,) = j.append([StepStarted(step="backup")])
            assert appended.seq == 4
        events = Journal.read(d)
        assert isinstance(events[-1], StepStarted) and events[-1].seq == 4, cut
        shutil.rmtree(d)


def test_readonly_open_ignores_torn_tail_without_cutting(tmp_path: Path) -> None:
    """inspect/status read a torn journal as is: tail reported, file untouched, no lock."""
    data, last = _build(tmp_path / "orig")
    torn = data[: last + 5]
    (tmp_path / "orig" / "journal.log").write_bytes(torn)
    with Journal.open(tmp_path / "orig") as writer, Journal.open_readonly(tmp_path / "orig") as j:
        assert writer.recovered_tail is not None
        assert j.recovered_tail is None  # the writer already cut it
    (tmp_path / "orig" / "journal.log").write_bytes(torn)
    with Journal.open_readonly(tmp_path / "orig") as j:
        assert j.readonly
        assert j.recovered_tail is not None
        assert len(j.events()) == 3
        with pytest.raises(RuntimeError, match="read-only"):
            j.append([Note(message="no")])
    assert (tmp_path / "orig" / "journal.log").read_bytes() == torn


def test_flipped_byte_in_the_middle_refuses_to_open(tmp_path: Path) -> None:
    """Damage before the last record refuses read-write and read-only opens alike."""
    data, last = _build(tmp_path / "orig")
    damaged = bytearray(data)
    damaged[last // 2] ^= 0x01
    (tmp_path / "orig" / "journal.log").write_bytes(bytes(damaged))
    with pytest.raises(JournalCorruptError) as caught:
        Journal.open(tmp_path / "orig")
    assert "journal.log is damaged at byte" in caught.value.message
    assert "restore" in caught.value.hint
    with pytest.raises(JournalCorruptError):
        Journal.read(tmp_path / "orig")
    assert (tmp_path / "orig" / "journal.log").read_bytes() == bytes(damaged)  # never repaired


def test_unknown_event_type_refuses(jdir: Path, journal: Journal) -> None:
    """A well-framed record of an unknown type (a newer ftctl) is refused, not skipped."""
    journal.close()
    future = msgspec.msgpack.encode({"type": "from_the_future", "seq": 2})
    with (jdir / "journal.log").open("ab") as f:
        f.write(frame(future))
    with pytest.raises(JournalCorruptError, match="not an event this ftctl knows") as caught:
        Journal.open(jdir)
    assert "newer ftctl" in caught.value.hint


def test_sequence_gap_refuses(jdir: Path, journal: Journal) -> None:
    """A record whose seq does not follow its predecessor means records were lost or spliced."""
    journal.close()
    with (jdir / "journal.log").open("ab") as f:
        f.write(frame(msgspec.msgpack.encode({"type": "note", "seq": 5, "message": "m"})))
    with pytest.raises(JournalCorruptError, match="sequence number 5, expected 2"):
        Journal.open(jdir)


LOCK_HOLDER = textwrap.dedent(
    """
    import sys
    from ftctl.journal import Journal
    with Journal.open(sys.argv[1]):
        sys.stdout.write("locked\\n")
        sys.stdout.flush()
        sys.stdin.readline()
    """
)


def test_second_process_gets_journal_locked_error(journal: Journal, jdir: Path) -> None:
    """While another process holds the backup dir, open and create fail naming its pid."""
    journal.close()
    with subprocess.Popen(
        [sys.executable, "-c", LOCK_HOLDER, str(jdir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as holder:
        try:
            assert holder.stdout is not None and holder.stdin is not None
            assert holder.stdout.readline() == "locked\n"
            with pytest.raises(JournalLockedError) as caught:
                Journal.open(jdir)
            assert caught.value.message == (
                f"backup dir {jdir} is in use by another ftctl process (pid {holder.pid})"
            )
            assert caught.value.hint
            with pytest.raises(JournalLockedError):
                Journal.create(jdir, first=_first())
            with Journal.open_readonly(jdir) as reader:  # inspect still works
                assert len(reader.events()) == 1
            holder.stdin.write("\n")
            holder.stdin.flush()
            assert holder.wait(timeout=30) == 0
        finally:
            if holder.poll() is None:
                holder.kill()
    with Journal.open(jdir) as j:  # released with the process
        assert j.last_seq == 1


def test_lock_is_held_against_this_process_too(journal: Journal, jdir: Path) -> None:
    """Two handles in one process cannot both write the same directory."""
    with pytest.raises(JournalLockedError, match=f"pid {os.getpid()}"):
        Journal.open(jdir)
    journal.close()
    Journal.open(jdir).close()


def test_failed_fsync_leaves_no_partial_record_and_blocks_appends(
    journal: Journal, jdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a write/fsync error the file is cut back and the journal refuses more appends."""
    size = (jdir / "journal.log").stat().st_size

    def failing_fsync(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(BackupDirError, match="No space left on device") as caught:
        journal.append([Note(message="lost")])
    assert caught.value.exit_code == 1
    assert "the journal is intact up to the last fsync" in caught.value.hint
    monkeypatch.undo()
    assert (jdir / "journal.log").stat().st_size == size
    with pytest.raises(FtctlError, match="cannot be written"):
        journal.append([Note(message="still refused")])
    journal.close()
    assert len(Journal.read(jdir)) == 1


def test_segments_round_trip_and_number_after_orphans(journal: Journal, jdir: Path) -> None:
    """Segments read back equal; numbering resumes past referenced and orphaned files."""
    payload = SegmentPayload(
        keys=[b"doc:1", b"doc:2"],
        fields={"vec": pack_field([b"\x00" * 16, None], dtype="float32", dims=4)},
    )
    first = journal.write_segment(payload)
    journal.append([KeysEnumerated(segment=first, batch=0, keys=2)])
    orphan = journal.write_segment(SegmentPayload(keys=[b"never referenced"]))
    assert (first.number, orphan.number) == (1, 2)
    assert journal.read_segment(first) == payload
    journal.close()
    with Journal.open(jdir) as j:
        assert j.write_segment(SegmentPayload(keys=[])).number == 3
    with Journal.open_readonly(jdir) as reader:
        (event,) = [e for e in reader.events() if isinstance(e, KeysEnumerated)]
        assert reader.read_segment(event.segment) == payload
        with pytest.raises(RuntimeError):
            reader.write_segment(payload)


def test_segment_changed_on_disk_is_refused_through_journal(journal: Journal, jdir: Path) -> None:
    """A segment whose crc no longer matches its event is never used."""
    ref = journal.write_segment(SegmentPayload(keys=[b"a", b"b"]))
    path = jdir / "segments" / "000001.zst"
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0x10
    path.write_bytes(bytes(blob))
    with pytest.raises(
        JournalCorruptError, match=r"segment \S+/segments/000001\.zst does not match the journal"
    ):
        journal.read_segment(ref)


def test_exists(tmp_path: Path, jdir: Path) -> None:
    """exists is true only for a directory whose journal has a complete first record."""
    assert not Journal.exists(tmp_path / "nothing")
    with Journal.create(jdir, first=_first()):
        assert Journal.exists(jdir)


def test_iter_segments_streams_key_batches_in_order(journal: Journal) -> None:
    """Key segments are read back one batch at a time, in the order of their refs."""
    refs = [
        journal.write_segment(SegmentPayload(keys=[f"k{b}:{i}".encode() for i in range(3)]))
        for b in range(4)
    ]
    batches = journal.iter_segments(reversed(refs))
    assert next(batches).keys == [b"k3:0", b"k3:1", b"k3:2"]
    assert [p.keys[0] for p in batches] == [b"k2:0", b"k1:0", b"k0:0"]


def test_deferred_segments_are_synced_before_the_event_that_names_them(
    journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Segments written with durable=False cost no fsync until the next append, which syncs
    all of them and the directory before it writes the events that reference them."""
    order: list[str] = []
    real_fsync = os.fsync

    def tracing_fsync(fd: int) -> None:
        target = os.readlink(f"/proc/self/fd/{fd}")
        order.append("journal" if target.endswith("journal.log") else Path(target).name)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", tracing_fsync)
    refs = [
        journal.write_segment(SegmentPayload(keys=[f"k{i}".encode()]), durable=False)
        for i in range(3)
    ]
    assert order == []
    journal.append([KeysEnumerated(segment=ref, batch=i, keys=1) for i, ref in enumerate(refs)])
    names = [ref.filename for ref in refs]
    assert order[:3] == names
    assert order[3] == "segments" and order[-1] == "journal"
    order.clear()
    journal.append([StepStarted(step="backup")])
    assert order == ["journal"]
    assert journal.read_segment(refs[2]).keys == [b"k2"]


# --- damage is never taken for "no journal" -------------------------------------------------


def test_damaged_first_record_is_corruption_and_create_never_truncates(jdir: Path) -> None:
    """A flipped byte in the first record makes the journal damaged, not absent: exists,
    first_run, open and create all raise naming the file, and the bytes stay as they were."""
    _build(jdir)
    damaged = bytearray((jdir / "journal.log").read_bytes())
    damaged[20] ^= 0x01
    (jdir / "journal.log").write_bytes(bytes(damaged))
    for call in (Journal.exists, Journal.first_run, Journal.open, Journal.read):
        with pytest.raises(
            JournalCorruptError, match=r"journal\.log is damaged at byte 0 \(record 1\)"
        ):
            call(jdir)
    with pytest.raises(JournalCorruptError):
        Journal.create(jdir, first=_first())
    assert (jdir / "journal.log").read_bytes() == bytes(damaged)


def test_first_record_without_a_type_is_corruption_not_a_traceback(jdir: Path) -> None:
    """A well-framed first record that is not an event (no ``type``) raises
    JournalCorruptError naming the record, from the one-record read too."""
    jdir.mkdir(parents=True)
    (jdir / "journal.log").write_bytes(frame(msgspec.msgpack.encode({"seq": 1})))
    with pytest.raises(JournalCorruptError, match=r"record 1 at byte 0 is not an event"):
        Journal.first_run(jdir)
    with pytest.raises(JournalCorruptError, match=r"record 1 at byte 0 is not an event"):
        Journal.open(jdir)


def test_first_record_of_another_event_is_corruption(jdir: Path) -> None:
    """A journal must begin with a run start; any other first event is refused by name."""
    jdir.mkdir(parents=True)
    record = frame(msgspec.msgpack.encode(Note(seq=1, message="x")))
    (jdir / "journal.log").write_bytes(record)
    with pytest.raises(JournalCorruptError, match="is a Note, not the run_started"):
        Journal.first_run(jdir)


def test_complete_but_damaged_last_record_is_refused_not_cut(tmp_path: Path) -> None:
    """A last record whose bytes are all there but fail the checksum is damage: open
    refuses and the file is not cut (a torn tail would have been)."""
    data, last = _build(tmp_path / "j")
    damaged = bytearray(data)
    damaged[-3] ^= 0x40
    (tmp_path / "j" / "journal.log").write_bytes(bytes(damaged))
    with pytest.raises(JournalCorruptError, match=rf"at byte {last} \(record 4, the last\)"):
        Journal.open(tmp_path / "j")
    assert (tmp_path / "j" / "journal.log").read_bytes() == bytes(damaged)


# --- symbolic and hard links are never followed ----------------------------------------------


def _victim(tmp_path: Path) -> Path:
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    victim.chmod(0o644)
    return victim


def _untouched(victim: Path) -> None:
    assert victim.read_bytes() == b"precious"
    assert victim.stat().st_mode & 0o777 == 0o644


def test_symlinked_journal_dir_is_refused(tmp_path: Path) -> None:
    """A journal directory that is a symbolic link is refused by create, open and read."""
    (tmp_path / "real").mkdir()
    (tmp_path / "real").chmod(0o755)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "docs").symlink_to(tmp_path / "real")
    for call in (
        lambda: Journal.create(tmp_path / "b" / "docs", first=_first()),
        lambda: Journal.open(tmp_path / "b" / "docs"),
        lambda: Journal.read(tmp_path / "b" / "docs"),
    ):
        with pytest.raises(BackupDirError, match="docs is a symbolic link") as caught:
            call()
        assert caught.value.exit_code == 2
    assert list((tmp_path / "real").iterdir()) == []
    assert (tmp_path / "real").stat().st_mode & 0o777 == 0o755


@pytest.mark.parametrize("name", ["journal.log", "journal.lock"])
def test_symlinked_journal_files_are_refused_and_their_target_untouched(
    tmp_path: Path, jdir: Path, name: str
) -> None:
    """journal.log or journal.lock as a symbolic link: refused, the target is never
    truncated, written or chmod'ed (by create or by open)."""
    _build(jdir)
    victim = _victim(tmp_path)
    (jdir / name).unlink()
    (jdir / name).symlink_to(victim)
    with pytest.raises(BackupDirError, match=f"{name} is a symbolic link"):
        Journal.open(jdir)
    with pytest.raises((BackupDirError, RefusedError)):
        Journal.create(jdir, first=_first())
    _untouched(victim)


def test_hard_linked_journal_is_not_written(tmp_path: Path, jdir: Path) -> None:
    """A journal.log with a second hard link (which could be outside the backup dir) is
    refused for writing; reading it is fine."""
    _build(jdir)
    os.link(jdir / "journal.log", tmp_path / "other-name")
    with pytest.raises(BackupDirError, match="has 2 hard links"):
        Journal.open(jdir)
    assert len(Journal.read(jdir)) == 4


def test_symlinked_segments_are_refused(tmp_path: Path, jdir: Path) -> None:
    """segments/ as a link, or a segment file as a link, is refused on open and on read."""
    with Journal.create(jdir, first=_first()) as j:
        ref = j.write_segment(SegmentPayload(keys=[b"a"]))
        j.append([KeysEnumerated(segment=ref, batch=0, keys=1)])
    victim = _victim(tmp_path)
    segment = jdir / "segments" / ref.filename
    segment.unlink()
    segment.symlink_to(victim)
    with (
        Journal.open_readonly(jdir) as reader,
        pytest.raises(BackupDirError, match=f"{ref.filename} is a symbolic link"),
    ):
        reader.read_segment(ref)
    (tmp_path / "elsewhere").mkdir()
    shutil.move(jdir / "segments", tmp_path / "elsewhere" / "segments")
    (jdir / "segments").symlink_to(tmp_path / "elsewhere" / "segments")
    with pytest.raises(BackupDirError, match="segments is a symbolic link"):
        Journal.open(jdir)
    _untouched(victim)


def test_segment_written_over_a_symlink_is_refused(tmp_path: Path, journal: Journal) -> None:
    """A link planted where the next segment goes is refused, its target untouched."""
    victim = _victim(tmp_path)
    for name in ("000001.zst", "000001.zst.tmp"):
        (journal.segments_dir / name).symlink_to(victim)
        with pytest.raises(BackupDirError, match="is a symbolic link"):
            write_segment_file(journal.segments_dir, 1, SegmentPayload(keys=[b"k"]))
        (journal.segments_dir / name).unlink()
    _untouched(victim)


# --- operating-system errors are one line and the right exit code ---------------------------


def _enospc(*args: object, **kwargs: object) -> int:
    raise OSError(errno.ENOSPC, "No space left on device")


def test_no_space_for_the_first_record_is_exit_2(
    jdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When create cannot write its first event nothing ran: exit 2, the hint says so, and
    the empty journal left behind is reused by the next create."""
    monkeypatch.setattr(os, "write", _enospc)
    with pytest.raises(BackupDirError) as caught:
        Journal.create(jdir, first=_first())
    monkeypatch.undo()
    assert caught.value.exit_code == 2
    assert caught.value.one_line() == (
        f"cannot write the journal {jdir / 'journal.log'}: No space left on device "
        "(hint: free disk space, then run the command again; nothing was changed)"
    )
    assert not Journal.exists(jdir)
    Journal.create(jdir, first=_first()).close()


def test_no_space_for_a_segment_mid_run_is_exit_1_and_resumable(
    journal: Journal, jdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A segment that cannot be written mid-run: exit 1, "intact up to the last fsync"."""
    monkeypatch.setattr(os, "write", _enospc)
    with pytest.raises(BackupDirError) as caught:
        journal.write_segment(SegmentPayload(keys=[b"k"]))
    monkeypatch.undo()
    assert caught.value.exit_code == 1
    assert "cannot write the backup segment" in caught.value.message
    assert "the journal is intact up to the last fsync" in caught.value.hint
    journal.close()
    assert len(Journal.read(jdir)) == 1


def test_a_file_where_the_backup_dir_belongs_is_exit_2(tmp_path: Path) -> None:
    """A regular file in the way of the backup dir (or of a parent) is one line, exit 2."""
    (tmp_path / "file").write_bytes(b"x")
    for target in (tmp_path / "file", tmp_path / "file" / "docs"):
        with pytest.raises(BackupDirError) as caught:
            Journal.create(target, first=_first())
        assert caught.value.exit_code == 2
        assert "file" in caught.value.message
    assert (tmp_path / "file").read_bytes() == b"x"


def test_unreadable_directory_is_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Permission denied while creating is reported with the path and a hint, exit 2."""
    real_mkdir = os.mkdir

    def denied(path: object, *args: object, **kwargs: object) -> None:
        if str(path).endswith("docs"):
            raise PermissionError(errno.EACCES, "Permission denied")
        real_mkdir(path, *args, **kwargs)  # type: ignore[arg-type]  # os.mkdir's own arguments

    monkeypatch.setattr(os, "mkdir", denied)
    monkeypatch.setattr(Path, "mkdir", lambda self, mode=0o777: denied(self))
    with pytest.raises(BackupDirError) as caught:
        Journal.create(tmp_path / "docs", first=_first())
    assert caught.value.one_line() == (
        f"cannot create the directory {tmp_path / 'docs'}: Permission denied (hint: check the "
        "permissions of the backup dir, then run the command again; nothing was changed)"
    )


def test_open_checks_every_referenced_segment_before_a_run_starts(
    tmp_path: Path, jdir: Path
) -> None:
    """resume/rollback open read-write: a referenced segment that is missing, a link, or of
    another size refuses the open (exit 2) instead of failing halfway through the run."""
    with Journal.create(jdir, first=_first()) as j:
        ref = j.write_segment(SegmentPayload(keys=[b"a"]))
        j.append([KeysEnumerated(segment=ref, batch=0, keys=1)])
    segment = jdir / "segments" / ref.filename
    blob = segment.read_bytes()
    segment.write_bytes(blob[:-1])
    with pytest.raises(JournalCorruptError, match=rf"size {ref.size - 1} \(expected {ref.size}\)"):
        Journal.open(jdir)
    segment.unlink()
    with pytest.raises(JournalCorruptError, match="is missing from"):
        Journal.open(jdir)
    victim = _victim(tmp_path)
    segment.symlink_to(victim)
    with pytest.raises(BackupDirError, match="is a symbolic link") as caught:
        Journal.open(jdir)
    assert caught.value.exit_code == 2
    _untouched(victim)
    assert len(Journal.read(jdir)) == 2  # inspect still reads the timeline
