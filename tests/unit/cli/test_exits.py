"""How commands end: one error prefix, exit codes in one place, a closed stdout is quiet."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from helpers import ROOT, run_with_closed_stdout

from ftctl import indexes
from ftctl.cli import cli
from ftctl.cli.exits import EXIT_BROKEN_PIPE, error_text, exit_unless
from ftctl.errors import FtctlError, RefusedError, UsageError
from ftctl.plan.batch import OverlapError


def test_error_text_is_one_line_with_its_hint() -> None:
    """A one-line message: `error: ` + message + (hint: …), whitespace folded."""
    exc = UsageError("index 'x' does not exist", "run 'ftctl index listall'")
    assert error_text(exc) == "error: index 'x' does not exist (hint: run 'ftctl index listall')"
    assert error_text(FtctlError("a\tb  c")) == "error: a b c"


def test_error_text_keeps_the_lines_of_a_multi_line_message() -> None:
    """batch-plan's overlap refusal keeps its lines (the guide's text) after `error: `, with
    its hint last; it used to be printed with a different prefix."""
    text = error_text(OverlapError(["a <-> b: 'p:' <-> 'p:q:'"], []))
    lines = text.splitlines()
    assert lines[0] == "error: Refusing to create batch plan: overlapping indexes detected."
    assert "- a <-> b: 'p:' <-> 'p:q:'" in lines
    assert lines[-1].startswith("(hint: split the indexes")


def test_exit_unless_exits_1_for_any_other_outcome() -> None:
    """A report whose result is not one of the successes listed ends with exit 1."""
    exit_unless("succeeded", "succeeded")
    exit_unless("rolled_back", "succeeded", "rolled_back")
    with pytest.raises(click.exceptions.Exit) as raised:
        exit_unless("failed", "succeeded")
    assert raised.value.exit_code == 1


def test_library_errors_end_with_their_code_and_one_line(tmp_path: Path) -> None:
    """A FtctlError raised by a library call: `error: …` on stderr, its exit code, no
    traceback (here a plan file that does not exist: exit 2)."""
    result = CliRunner().invoke(
        cli, ["migrate", "estimate", "--plan", str(tmp_path / "missing.yaml")]
    )
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ") and len(result.stderr.splitlines()) == 1
    assert "Traceback" not in result.output


def test_refusal_from_the_library_keeps_its_exit_code(monkeypatch: pytest.MonkeyPatch) -> None:
    """The exit code is the error's own (RefusedError: 2), through every command."""

    def refuse(*_: object, **__: object) -> None:
        raise RefusedError("no", "because")

    monkeypatch.setattr(indexes, "delete_index", refuse)
    result = CliRunner().invoke(cli, ["index", "delete", "--index", "x"])
    assert (result.exit_code, result.stderr) == (2, "error: no (hint: because)\n")


def test_broken_pipe_not_on_stdout_is_not_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    """A BrokenPipeError while stdout is fine (here: a CliRunner buffer) is not taken for a
    closed reader: the command fails (exit 1) instead of ending quietly with 141."""

    def broken(**_: object) -> list[str]:
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(indexes, "list_public_indexes", broken)
    result = CliRunner().invoke(cli, ["index", "listall"])
    assert result.exit_code == 1


@pytest.mark.parametrize(
    "args",
    [
        ("migrate", "estimate", "--plan", str(ROOT / "fixtures" / "plans" / "guide_plan.yaml")),
        ("--help",),  # printed while the root group parses, before any command runs
    ],
    ids=["command-output", "root-help"],
)
def test_closed_stdout_ends_quietly_with_141(args: tuple[str, ...]) -> None:
    """`ftctl … | head -1` once head has exited: exit 141 (128 + SIGPIPE, as for cat or
    grep; never 1, which means a migration failed), nothing on stderr, no traceback."""
    done = run_with_closed_stdout(*args)
    assert done.returncode == EXIT_BROKEN_PIPE, done.stderr
    assert done.stderr == b""
