"""Shared options: ``--url`` on every command, one definition of each shared option."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from ftctl.cli import cli

UNREACHABLE = "redis://127.0.0.1:1"
"""Nothing listens on port 1: connecting fails at once, and the error names the URL used."""


def _commands(
    group: click.Group = cli, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    for name, command in sorted(group.commands.items()):
        yield (*path, name), command
        if isinstance(command, click.Group):
            yield from _commands(command, (*path, name))


COMMANDS = list(_commands())


def _option(command: click.Command, name: str) -> click.Option | None:
    for param in command.params:
        if isinstance(param, click.Option) and name in param.opts:
            return param
    return None


def test_the_walk_sees_the_whole_tree() -> None:
    """The walk below reaches nested groups and their commands (so it cannot pass vacuously)."""
    paths = {" ".join(path) for path, _ in COMMANDS}
    assert {"index listall", "migrate apply", "migrate journal inspect", "server start"} <= paths
    assert {"demo", "migrate batch-apply", "migrate cutover"} <= paths


@pytest.mark.parametrize(
    "path", [path for path, _ in COMMANDS], ids=[" ".join(p) for p, _ in COMMANDS]
)
def test_every_command_accepts_url_after_its_name(path: tuple[str, ...]) -> None:
    """`ftctl <command> --url URL` parses for every command and group of the CLI, as the
    RedisVL guide writes it; a new command without --url fails here."""
    result = CliRunner().invoke(cli, [*path, "--url", UNREACHABLE, "--help"])
    assert result.exit_code == 0, result.output
    assert "--url" in result.output


def _reached(args: list[str], env: dict[str, str] | None = None) -> str:
    """The URL `index listall` tried to reach with these arguments."""
    result = CliRunner().invoke(cli, args, env=env)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: cannot reach Redis at ")
    return result.stderr.removeprefix("error: cannot reach Redis at ").split(":")[1].strip("/")


def test_subcommand_url_wins_over_the_global_one_and_the_environment() -> None:
    """The innermost --url given is used; $REDIS_URL counts only when no --url is typed."""
    env = {"REDIS_URL": "redis://127.0.0.3:1"}
    assert _reached(["index", "listall"], env) == "127.0.0.3"
    assert _reached(["--url", "redis://127.0.0.4:1", "index", "listall"], env) == "127.0.0.4"
    assert _reached(["index", "listall", "--url", "redis://127.0.0.5:1"], env) == "127.0.0.5"
    assert _reached(["index", "--url", "redis://127.0.0.6:1", "listall"], env) == "127.0.0.6"
    args = ["--url", "redis://127.0.0.7:1", "index", "--url", "redis://127.0.0.8:1"]
    assert _reached([*args, "listall", "--url", "redis://127.0.0.9:1"], env) == "127.0.0.9"
    assert _reached([*args, "listall"], env) == "127.0.0.8"


def test_shared_options_have_one_definition() -> None:
    """--batch-size, --workers and --backup-dir have the same type, bounds and default in
    every command that has them (single, batch and online runs alike)."""
    seen: dict[str, set[str]] = {"--batch-size": set(), "--workers": set(), "--backup-dir": set()}
    for path, command in COMMANDS:
        for name in seen:
            option = _option(command, name)
            if option is not None:
                seen[name].add(" ".join(path))
                kind = option.type
                if name == "--batch-size":
                    assert isinstance(kind, click.IntRange)
                    assert (kind.min, kind.max, option.default) == (1, 100_000, 500), path
                elif name == "--workers":
                    assert isinstance(kind, click.IntRange)
                    assert (kind.min, kind.max, option.default) == (1, 64, 1), path
                else:
                    assert isinstance(kind, click.Path), path
                    assert (kind.file_okay, kind.dir_okay, kind.type) == (False, True, Path)
    assert {"migrate apply", "migrate batch-apply"} <= seen["--batch-size"]
    assert {"migrate cutover", "migrate batch-resume"} <= seen["--workers"]
    assert {"migrate apply", "migrate cutover", "migrate batch-status"} <= seen["--backup-dir"]


@pytest.mark.parametrize("workers", ["0", "65"])
def test_batch_workers_have_the_single_run_bounds(workers: str) -> None:
    """batch-apply refuses --workers outside 1..64 like apply does (exit 2, before any work)."""
    for command in (["migrate", "apply"], ["migrate", "batch-apply"]):
        result = CliRunner().invoke(
            cli, [*command, "--plan", "p.yaml", "--backup-dir", "b", "--workers", workers]
        )
        assert result.exit_code == 2
        assert "--workers" in result.stderr and "1<=x<=64" in result.stderr


def test_quiet_help_says_what_quiet_keeps() -> None:
    """`-q` keeps errors only (see tests/unit/test_logs.py), and its help says so: it once
    said "Warnings and errors only."."""
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    (line,) = [x for x in result.output.splitlines() if "--quiet" in x]
    assert line.split("--quiet", 1)[1].strip() == "Errors only."
