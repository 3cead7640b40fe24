"""Hostile and broken inputs, one table, through the ``ftctl`` CLI against the real server.

Each case prepares its input (an index name, a planted link, a damaged journal, a bad file,
a failing disk), runs one command, and checks the exit code (0 ok, 1 ran and failed, 2
refused with nothing changed), the one-line message (never a traceback), that Redis is
unchanged when the command refused, and that nothing outside the backup dir was created,
changed or removed — the whole test directory is walked, including the places a hostile
name such as ``../../x`` would have reached. Cases that succeed (hostile index names are
legal) then roll back by ``--index <real name>`` and must restore Redis exactly.
"""

from __future__ import annotations

import errno
import os
import re
import resource
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import pytest
import redis
from click.testing import CliRunner
from helpers import DOCS, create_index, load_docs, patch, wait_indexed
from oldjournals import snapshot

from ftctl.cli import cli
from ftctl.journal import Journal
from ftctl.journal.framing import frame
from ftctl.journal.layout import index_dir_name
from ftctl.plan.models import dump_plan
from ftctl.planner import MigrationPlanner

ADD_COLOR = {"add_fields": [{"name": "color", "type": "tag"}]}
TO_FLOAT16 = {"update_fields": [{"name": "emb", "attrs": {"datatype": "float16"}}]}


@dataclass
class World:
    """One case's playground: Redis, and a directory tree in which the backup dir sits
    three levels down so that ``..`` and ``../..`` stay inside what the test walks."""

    r: redis.Redis
    url: str
    root: Path
    backup: Path = field(init=False)
    inputs: Path = field(init=False)
    victim: Path = field(init=False)
    original: dict[str, Any] = field(default_factory=dict)
    held: Journal | None = None
    """A journal this process holds open (its lock taken), closed after the test."""

    def __post_init__(self) -> None:
        self.backup = self.root / "outer" / "work" / "backup"
        self.backup.parent.mkdir(parents=True)
        self.inputs = self.root / "inputs"
        self.inputs.mkdir()
        self.victim = self.root / "victim.txt"
        self.victim.write_bytes(b"precious")
        self.victim.chmod(0o644)

    def source(self, name: str = "docs", prefix: str = "doc:") -> None:
        create_index(self.r, name=name, prefix=prefix)
        load_docs(self.r, prefix=prefix, count=DOCS)
        wait_indexed(self.r, name)
        self.original = snapshot(self.r)

    def plan_file(self, name: str = "docs", changes: dict[str, Any] = ADD_COLOR) -> Path:
        plan = MigrationPlanner().create_plan(
            name, redis_url=self.url, schema_patch=patch(**changes)
        )
        assert plan.supported, plan.diff_classification.blocked_reasons
        path = self.inputs / f"plan{len(list(self.inputs.iterdir()))}.yaml"
        path.write_bytes(dump_plan(plan))
        return path

    def applied(self, changes: dict[str, Any] = ADD_COLOR) -> Path:
        """Apply a plan of ``docs`` into the backup dir (through the CLI); its journal dir."""
        self.source()
        args = ["migrate", "apply", "--plan", str(self.plan_file(changes=changes)),
                "--backup-dir", str(self.backup), "--accept-data-loss"]  # fmt: skip
        result = invoke(self, args)
        assert result.exit_code == 0, result.output
        return self.backup / "docs"

    def journal(self) -> Path:
        return self.backup / "docs" / "journal.log"


def invoke(world: World, args: list[str]) -> Any:
    return CliRunner().invoke(cli, ["--url", world.url, *args], catch_exceptions=True)


def walk(root: Path, skip: Path) -> dict[str, tuple[int, int, bytes]]:
    """Every entry under ``root`` but ``skip``: kind+mode, size, and content of files."""
    out: dict[str, tuple[int, int, bytes]] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        if here == skip or skip in here.parents:
            dirnames[:] = []
            continue
        for name in dirnames + filenames:
            path = here / name
            if path == skip:
                continue
            info = os.lstat(path)
            content = path.read_bytes() if stat.S_ISREG(info.st_mode) else b""
            out[str(path.relative_to(root))] = (info.st_mode, info.st_size, content)
    return out


# --- the cases ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    id: str
    prepare: Callable[[World], list[str]]
    """Sets up Redis and files; returns the command line (after ``--url``)."""
    code: int
    message: str
    """A regex the output must contain."""
    applies: str | None = None
    """For hostile index names that are legal: the name; the case rolls it back."""


def _hostile_name(name: str) -> Callable[[World], list[str]]:
    def prepare(world: World) -> list[str]:
        world.source(name=name)
        return ["migrate", "apply", "--plan", str(world.plan_file(name)),
                "--backup-dir", str(world.backup)]  # fmt: skip

    return prepare


def _apply_docs(world: World) -> list[str]:
    world.source()
    return ["migrate", "apply", "--plan", str(world.plan_file()), "--backup-dir", str(world.backup)]


def _planted(name: str, *, directory: bool = False) -> Callable[[World], list[str]]:
    """A fresh backup dir whose docs/<name> (or docs itself) is a link to the victim."""

    def prepare(world: World) -> list[str]:
        args = _apply_docs(world)
        if directory:
            world.backup.mkdir(parents=True)
            (world.backup / "docs").symlink_to(world.root / "outer")
        else:
            (world.backup / "docs").mkdir(parents=True)
            (world.backup / "docs" / name).symlink_to(world.victim)
        return args

    return prepare


def _after_apply(
    damage: Callable[[World], None], verb: str = "rollback", changes: dict[str, Any] = ADD_COLOR
) -> Callable[[World], list[str]]:
    """A migration applied, its backup dir then damaged, then ``verb`` run on it."""

    def prepare(world: World) -> list[str]:
        world.applied(changes)
        world.original = snapshot(world.r)  # "unchanged" now means: as the apply left it
        damage(world)
        if verb == "inspect":
            return ["migrate", "journal", "inspect", "--backup-dir", str(world.backup)]
        if verb == "apply":
            plan = sorted(world.inputs.iterdir())[-1]
            return ["migrate", "apply", "--plan", str(plan), "--backup-dir", str(world.backup),
                    "--accept-data-loss"]  # fmt: skip
        return ["migrate", verb, "--backup-dir", str(world.backup)]

    return prepare


def _flip(offset_of: Callable[[bytes], int]) -> Callable[[World], None]:
    def damage(world: World) -> None:
        data = bytearray(world.journal().read_bytes())
        data[offset_of(bytes(data))] ^= 0x20
        world.journal().write_bytes(bytes(data))

    return damage


def _record_offsets(data: bytes) -> list[int]:
    offsets, pos = [], 0
    while pos < len(data):
        offsets.append(pos)
        pos += 8 + int.from_bytes(data[pos : pos + 4], "little")
    return offsets


def _first_without_type(world: World) -> None:
    data = world.journal().read_bytes()
    rest = data[_record_offsets(data)[1] :]
    world.journal().write_bytes(frame(msgspec.msgpack.encode({"seq": 1, "index": "docs"})) + rest)


def _torn_tail(world: World) -> None:
    data = world.journal().read_bytes()
    world.journal().write_bytes(data[: _record_offsets(data)[-1] + 11])


def _segment(world: World) -> Path:
    return sorted((world.backup / "docs" / "segments").iterdir())[0]


def _segment_to_link(world: World) -> None:
    _segment(world).unlink()
    _segment(world).parent.joinpath("000001.zst").symlink_to(world.victim)


def _segment_truncated(world: World) -> None:
    path = _segment(world)
    path.write_bytes(path.read_bytes()[:-1])


def _segments_dir_to_link(world: World) -> None:
    segments = world.backup / "docs" / "segments"
    shutil.move(segments, world.backup / "moved-segments")
    segments.symlink_to(world.backup / "moved-segments")


def _lock_held(world: World) -> None:
    world.held = Journal.open(world.backup / "docs")


def _bad_file(
    name: str, content: bytes, args: Callable[[World, Path], list[str]]
) -> Callable[[World], list[str]]:
    def prepare(world: World) -> list[str]:
        world.source()
        path = world.inputs / name
        if content == b"<dir>":
            path.mkdir()
        else:
            path.write_bytes(content)
        return args(world, path)

    return prepare


def _apply_plan(world: World, path: Path) -> list[str]:
    return ["migrate", "apply", "--plan", str(path), "--backup-dir", str(world.backup)]


def _plan_patch(world: World, path: Path) -> list[str]:
    out = world.inputs / "out.yaml"
    return [
        "migrate",
        "plan",
        "--index",
        "docs",
        "--schema-patch",
        str(path),
        "--plan-out",
        str(out),
    ]


def _batch_apply(world: World, path: Path) -> list[str]:
    return ["migrate", "batch-apply", "--plan", str(path), "--backup-dir", str(world.backup),
            "--state", str(world.inputs / "state.yaml"), "--report-dir", str(world.inputs)]  # fmt: skip


def _batch_status(world: World, path: Path) -> list[str]:
    return ["migrate", "batch-status", "--state", str(path)]


def _batch_plan_indexes_file(world: World, path: Path) -> list[str]:
    patch_file = world.inputs / "patch.yaml"
    patch_file.write_bytes(msgspec.yaml.encode({"version": 1, "changes": ADD_COLOR}))
    return ["migrate", "batch-plan", "--indexes-file", str(path), "--schema-patch", str(patch_file),
            "--plan-out", str(world.inputs / "batch.yaml")]  # fmt: skip


def _empty_backup_dir_batch(world: World) -> list[str]:
    world.source()
    patch_file = world.inputs / "patch.yaml"
    patch_file.write_bytes(msgspec.yaml.encode({"version": 1, "changes": ADD_COLOR}))
    plan_out = world.inputs / "batch.yaml"
    result = invoke(world, ["migrate", "batch-plan", "--indexes", "docs", "--schema-patch",
                            str(patch_file), "--plan-out", str(plan_out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    return ["migrate", "batch-apply", "--plan", str(plan_out), "--backup-dir", "",
            "--state", str(world.inputs / "state.yaml"), "--report-dir", str(world.inputs)]  # fmt: skip


def _file_in_the_way(world: World) -> list[str]:
    args = _apply_docs(world)
    world.backup.write_bytes(b"not a directory")
    args[-1] = str(world.backup / "sub")
    return args


def _index_dir_is_a_file(world: World) -> list[str]:
    args = _apply_docs(world)
    world.backup.mkdir(parents=True)
    (world.backup / "docs").write_bytes(b"not a directory")
    return args


ABSOLUTE = "/abs/path"  # replaced by a path inside the test's root at run time

CASES = [
    # hostile index names are legal in Redis: the journal stays one entry of the backup dir
    *(
        Case(f"index name {name[:12]!r}", _hostile_name(name), 0, "succeeded", applies=name)
        for name in ["..", ".", "../../x", ABSOLUTE, "a/b", "", "x" * 10_000, "batch", "idx:docs"]
    ),
    # the backup dir and what is planted in it
    Case("symlinked index dir", _planted("", directory=True), 2,
         r"error: \S+/backup/docs is a symbolic link; ftctl does not follow it"),
    Case("symlinked journal.log", _planted("journal.log"), 2, r"journal\.log is a symbolic link"),
    Case("symlinked journal.lock", _planted("journal.lock"), 2, r"journal\.lock is a symbolic link"),
    Case("symlinked segments dir", _planted("segments"), 2, r"docs/segments is a symbolic link"),
    Case("symlinked segment file", _after_apply(_segment_to_link, changes=TO_FLOAT16), 2,
         r"segments/000001\.zst is a symbolic link"),
    Case("symlinked segments dir (existing journal)",
         _after_apply(_segments_dir_to_link, changes=TO_FLOAT16), 2, r"segments is a symbolic link"),
    Case("segment of the wrong size", _after_apply(_segment_truncated, changes=TO_FLOAT16), 2,
         r"segment \S+/000001\.zst does not match the journal: size \d+ \(expected \d+\)"),
    Case("a file where the backup dir belongs", _file_in_the_way, 2,
         r"error: cannot create or write the backup directory \S+/work/backup\S*: Not a "
         r"directory \(hint: a file stands where a directory belongs: choose another "
         r"--backup-dir"),
    Case("a file where the index dir belongs", _index_dir_is_a_file, 2,
         r"backup/docs is not a directory"),
    Case("empty --backup-dir (batch-apply)", _empty_backup_dir_batch, 2,
         r"'--backup-dir': is empty"),
    Case("lock held by another run", _after_apply(_lock_held), 2,
         r"is in use by another ftctl process"),
    # journals: damage is never taken for "no journal", never cut silently
    Case("damaged first record, re-run apply", _after_apply(_flip(lambda d: 20), "apply"), 2,
         r"journal\.log is damaged at byte 0 \(record 1\): record at byte 0 has a bad checksum, "
         r"but a valid record follows"),
    Case("damaged first record, rollback", _after_apply(_flip(lambda d: 20)), 2,
         r"journal\.log is damaged at byte 0 \(record 1\)"),
    Case("damaged first record, inspect", _after_apply(_flip(lambda d: 20), "inspect"), 2,
         r"journal\.log is damaged at byte 0 \(record 1\)"),
    Case("first record without a type", _after_apply(_first_without_type, "inspect"), 2,
         r"record 1 at byte 0 is not an event this ftctl knows"),
    Case("damaged middle record", _after_apply(_flip(lambda d: _record_offsets(d)[3] + 9)), 2,
         r"is damaged at byte \d+ \(record 4\).*a valid record follows"),
    Case("complete but damaged last record", _after_apply(_flip(lambda d: len(d) - 2), "resume"),
         2, r"is damaged at byte \d+ \(record \d+, the last\): record at byte \d+ has a bad "
         r"checksum; the record is complete"),
    # files ftctl reads
    Case("plan: not YAML", _bad_file("p.yaml", b"a: [", _apply_plan), 2, r"'\S+p\.yaml' is not valid YAML"),
    Case("plan: wrong shape", _bad_file("p.yaml", b"- 1\n", _apply_plan), 2,
         r"'\S+p\.yaml' is not a valid migration plan"),
    Case("plan: not UTF-8", _bad_file("p.yaml", b"version: \xff\xfe\n", _apply_plan), 2, r"p\.yaml"),
    Case("plan: a directory", _bad_file("p.yaml", b"<dir>", _apply_plan), 2,
         r"Invalid value for '--plan': File '\S+p\.yaml' is a directory"),
    Case("patch: wrong shape", _bad_file("x.yaml", b"changes: 7\n", _plan_patch), 2,
         r"'\S+x\.yaml' is not a valid schema patch"),
    Case("batch plan: wrong shape", _bad_file("b.yaml", b"- 1\n", _batch_apply), 2,
         r"'\S+b\.yaml' is not a valid batch plan"),
    Case("batch state: wrong shape", _bad_file("s.yaml", b"- nope\n", _batch_status), 2,
         r"'\S+s\.yaml' is not a batch state file"),
    Case("indexes file: not UTF-8", _bad_file("i.txt", b"docs\xff\n", _batch_plan_indexes_file), 2,
         r"indexes file '\S+i\.txt' is not UTF-8 text \(byte 4\)"),
]  # fmt: skip


@pytest.fixture
def world(
    r: redis.Redis, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[World]:
    """A fresh playground; the current directory is an empty one the walk covers."""
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    made = World(r, redis_url, tmp_path)
    yield made
    if made.held is not None:
        made.held.close()


def _run_case(case: Case, world: World) -> Any:
    args = case.prepare(world)
    redis_before = snapshot(world.r)
    files_before = walk(world.root, world.backup)
    result = invoke(world, args)
    output = result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), output
    assert "Traceback" not in output
    assert result.exit_code == case.code, output
    assert re.search(case.message, output), output
    if case.code != 0:
        assert snapshot(world.r) == redis_before
        assert world.victim.read_bytes() == b"precious"
        assert world.victim.stat().st_mode & 0o777 == 0o644
    assert walk(world.root, world.backup) == files_before
    return result


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input(case: Case, world: World) -> None:
    """Each hostile or broken input gets its exit code and one-line message; refused ones
    leave Redis as it was, and nothing outside the backup dir changes."""
    if case.applies == ABSOLUTE:
        case = Case(case.id, _hostile_name(str(world.root / "abs" / "path")), 0, "succeeded",
                    applies=str(world.root / "abs" / "path"))  # fmt: skip
    _run_case(case, world)
    if case.applies is not None:
        name = case.applies
        assert [p.name for p in world.backup.iterdir()] == [index_dir_name(name)]
        first = Journal.first_run(world.backup / index_dir_name(name))
        assert first is not None and getattr(first, "index_name", None) == name
        rolled = invoke(world, ["migrate", "rollback", "--backup-dir", str(world.backup),
                                "--index", name])  # fmt: skip
        assert rolled.exit_code == 0, rolled.output
        assert snapshot(world.r) == world.original


def test_damaged_journal_is_never_truncated_by_apply(world: World) -> None:
    """Issue 12.4: a damaged first record used to look like no journal, and a re-run apply
    truncated the journal. It is refused and the bytes stay as they were."""
    world.applied()
    _flip(lambda d: 20)(world)
    damaged = world.journal().read_bytes()
    plan = sorted(world.inputs.iterdir())[-1]
    result = invoke(
        world, ["migrate", "apply", "--plan", str(plan), "--backup-dir", str(world.backup)]
    )
    assert result.exit_code == 2, result.output
    assert world.journal().read_bytes() == damaged


def test_torn_tail_is_cut_with_a_note_and_the_run_goes_on(world: World) -> None:
    """A last record cut short by a crash is normal: rollback cuts it, says so, and runs."""
    world.applied()
    _torn_tail(world)
    result = invoke(world, ["migrate", "rollback", "--backup-dir", str(world.backup)])
    assert result.exit_code == 0, result.output
    assert "journal torn tail cut" in result.output
    assert "incomplete record" in result.output


def test_empty_backup_dir_from_the_api_is_a_usage_error(world: World) -> None:
    """An empty backup dir never means the current directory (the CLI turns --backup-dir ''
    into '.' before the library sees it; the library refuses the empty string)."""
    from ftctl.errors import UsageError
    from ftctl.executor import MigrationExecutor, rollback

    world.source()
    plan = world.plan_file()
    for call in (
        lambda: MigrationExecutor().apply(plan, redis_url=world.url, backup_dir=""),
        lambda: rollback("", redis_url=world.url),
    ):
        with pytest.raises(UsageError, match="--backup-dir is empty"):
            call()
    assert list(Path.cwd().iterdir()) == []
    assert snapshot(world.r) == world.original


# --- real disk failures in a subprocess (RLIMIT_FSIZE: writes fail with EFBIG) -------------


def _ftctl(
    world: World, args: list[str], fsize: int | None = None
) -> subprocess.CompletedProcess[str]:
    def limit() -> None:
        if fsize is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run(
        [sys.executable, "-c", "from ftctl.cli import main; main()", "--url", world.url, *args],
        capture_output=True, text=True, env=env, preexec_fn=limit, timeout=300, check=False,
    )  # fmt: skip


def test_file_size_limit_at_create_is_exit_2_and_nothing_changed(world: World) -> None:
    """The first event cannot be written (EFBIG): exit 2, one line, Redis as it was."""
    args = [*_apply_docs(world), "--accept-data-loss"]
    done = _ftctl(world, args, fsize=1000)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert re.search(
        r"error: cannot write the journal \S+/docs/journal\.log: File too large \(hint: the file "
        r"size limit was reached: raise it \(ulimit -f\) or free space, then run the command "
        r"again; nothing was changed\)",
        done.stderr,
    ), done.stderr
    assert snapshot(world.r) == world.original
    assert Journal.exists(world.backup / "docs") is False


def test_file_size_limit_mid_run_is_exit_1_and_resume_finishes(world: World) -> None:
    """The journal fills up after Redis changed: exit 1, "intact up to the last fsync";
    resume without the limit finishes, and Redis equals a clean run's result."""
    clean = world.applied(TO_FLOAT16)
    size = (clean / "journal.log").stat().st_size
    expected = snapshot(world.r)
    shutil.rmtree(world.backup)
    world.r.flushall()
    world.source()
    plan = world.plan_file(changes=TO_FLOAT16)
    args = ["migrate", "apply", "--plan", str(plan), "--backup-dir", str(world.backup),
            "--accept-data-loss"]  # fmt: skip
    done = _ftctl(world, args, fsize=size - 300)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert re.search(r"error: .*journal\.log.* File too large", done.stderr), done.stderr
    assert "the journal is intact up to the last fsync" in done.stderr
    resumed = _ftctl(world, ["migrate", "resume", "--backup-dir", str(world.backup)])
    assert resumed.returncode == 0, resumed.stderr
    assert snapshot(world.r) == expected


def test_no_space_for_a_segment_is_one_line(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """ENOSPC while writing a backup segment (before anything in Redis changed): exit 2,
    one line naming the problem, no traceback."""
    world.source()
    plan = world.plan_file(changes=TO_FLOAT16)
    real_write = os.write

    def write(fd: int, data: Any) -> int:
        if os.readlink(f"/proc/self/fd/{fd}").endswith((".zst", ".zst.tmp")):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", write)
    result = invoke(world, ["migrate", "apply", "--plan", str(plan), "--backup-dir",
                            str(world.backup), "--accept-data-loss"])  # fmt: skip
    monkeypatch.undo()
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert result.exit_code == 2, result.output
    assert "cannot write the backup segment" in result.output
    assert "nothing was changed" in result.output
    assert "No space left on device" in result.output


def test_read_only_file_system_is_exit_2(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """EROFS on creating the backup dir: exit 2, a hint to choose a writable dir."""
    args = _apply_docs(world)
    real_mkdir = os.mkdir

    def mkdir(path: Any, *rest: Any, **kwargs: Any) -> None:
        if str(world.root / "outer") in str(path):
            raise OSError(errno.EROFS, "Read-only file system")
        real_mkdir(path, *rest, **kwargs)

    monkeypatch.setattr(os, "mkdir", mkdir)
    result = invoke(world, args)
    monkeypatch.undo()
    assert result.exit_code == 2, result.output
    assert re.search(r"Read-only file system \(hint: the file system is read-only: choose a "
                     r"writable --backup-dir", result.output), result.output  # fmt: skip
    assert snapshot(world.r) == world.original


def test_batch_with_hostile_index_names_stays_in_its_directories(world: World) -> None:
    """batch-plan/batch-apply over indexes named '../x', 'a/b' and 'batch': per-index plans,
    journals and reports get safe names, the batch journal is batch-<id>/, nothing lands
    outside the backup, plan and report dirs, and each index rolls back by its real name."""
    names = ["../x", "a/b", "batch"]
    for number, name in enumerate(names):
        create_index(world.r, name=name, prefix=f"p{number}:")
        load_docs(world.r, prefix=f"p{number}:", count=10)
        wait_indexed(world.r, name)
    world.original = snapshot(world.r)
    (world.inputs / "names.txt").write_text("\n".join(names) + "\n")
    patch_file = world.inputs / "patch.yaml"
    patch_file.write_bytes(msgspec.yaml.encode({"version": 1, "changes": ADD_COLOR}))
    plans, reports = world.inputs / "plans-out", world.inputs / "reports"
    plans.mkdir()
    files_before = walk(world.root, world.backup)
    planned = invoke(world, ["migrate", "batch-plan", "--indexes-file", str(world.inputs / "names.txt"),
                             "--schema-patch", str(patch_file), "--plan-out", str(plans / "batch.yaml")])  # fmt: skip
    assert planned.exit_code == 0, planned.output
    assert sorted(p.name for p in (plans / "plans").iterdir()) == sorted(
        f"{index_dir_name(n)}.yaml" for n in names
    )
    applied = invoke(world, ["migrate", "batch-apply", "--plan", str(plans / "batch.yaml"),
                             "--backup-dir", str(world.backup), "--state", str(world.inputs / "state.yaml"),
                             "--report-dir", str(reports)])  # fmt: skip
    assert applied.exit_code == 0, applied.output
    entries = sorted(p.name for p in world.backup.iterdir())
    batch_dirs = [e for e in entries if e.startswith("batch-") and "~" not in e]
    assert len(batch_dirs) == 1
    assert sorted(set(entries) - set(batch_dirs)) == sorted(index_dir_name(n) for n in names)
    assert sorted(p.name for p in reports.iterdir()) == sorted(
        [f"{index_dir_name(n)}_report.yaml" for n in names] + ["batch_report.yaml"]
    )
    after = walk(world.root, world.backup)
    created = set(after) - set(files_before)
    assert all(
        path.startswith(("inputs/plans-out", "inputs/reports", "inputs/state.yaml"))
        for path in created
    ), created
    assert {k: v for k, v in after.items() if k in files_before} == files_before
    for name in names:
        rolled = invoke(
            world, ["migrate", "rollback", "--backup-dir", str(world.backup), "--index", name]
        )
        assert rolled.exit_code == 0, rolled.output
    assert snapshot(world.r) == world.original
