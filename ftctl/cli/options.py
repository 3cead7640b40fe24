"""Options several commands share, each defined once, and the classes that add ``--url``.

One definition per option means one type, one set of bounds and one default wherever it
appears: ``--batch-size`` is 1..100,000 and ``--workers`` 1..64 for single and batch runs
alike, and ``--backup-dir`` is always a directory path.

Every command and group accepts ``--url`` after its name as well as before it (``ftctl
index listall --url redis://…``, as the RedisVL guide writes it). The innermost one given
wins; ``$REDIS_URL`` is read by the root group's ``--url`` only, so it never overrides a
``--url`` typed on the command line.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar

import click

from ftctl.cli.state import AppState

F = TypeVar("F", bound=Callable[..., Any])


class Decorator(Protocol):
    """An option decorator: returns the command function it was given."""

    def __call__(self, f: F, /) -> F: ...


URL_HELP = "Redis URL [default: $REDIS_URL, then redis://localhost:6379]"


def _url_given(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is not None:
        ctx.ensure_object(AppState).url = value


def url_option() -> click.Option:
    """``--url`` of a subcommand: replaces the global one (and ``$REDIS_URL``) when given."""
    return click.Option(
        ["--url"],
        expose_value=False,
        callback=_url_given,
        help="Redis URL; overrides the global --url and $REDIS_URL.",
    )


class Command(click.Command):
    """A command that accepts ``--url`` after its name."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.params.append(url_option())


class Group(click.Group):
    """A group that accepts ``--url`` after its name; its commands and subgroups do too."""

    command_class = Command
    group_class = type  # subgroups are of this class as well

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.params.append(url_option())


def compose(*decorators: Decorator) -> Decorator:
    """Several option decorators as one, applied in the order listed (as if stacked)."""

    def apply(command: F, /) -> F:
        for decorator in reversed(decorators):
            command = decorator(command)
        return command

    return apply


class _Directory(click.Path):
    """A directory path that refuses an empty value (``Path("")`` would be ``.``, the current
    directory, which nobody means by leaving the value out)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and not value.strip():
            self.fail("is empty: pass the directory for the journal and backups", param, ctx)
        return super().convert(value, param, ctx)


def backup_dir(
    *, required: bool = True, help: str = "Directory of the journal and the backup segments."
) -> Decorator:
    """``--backup-dir`` (a directory; passed to the command as a Path, or None)."""
    return click.option(
        "--backup-dir",
        required=required,
        type=_Directory(file_okay=False, path_type=Path),
        help=help,
    )


def index_name(help: str) -> Decorator:
    """``--index/-i NAME``, required (the index a command works on)."""
    return click.option("--index", "-i", "index_name", required=True, help=help)


journal_index: Decorator = click.option(
    "--index", help="Which index's journal, when the backup dir holds several."
)
plan_file: Decorator = click.option(
    "--plan", "plan_path", required=True, type=click.Path(dir_okay=False), help="The plan YAML."
)
batch_state: Decorator = click.option(
    "--state",
    "state_path",
    default="batch_state.yaml",
    show_default=True,
    type=click.Path(),
    help="The batch state file (rendered from the batch journal).",
)
batch_size: Decorator = click.option(
    "--batch-size",
    default=500,
    show_default=True,
    type=click.IntRange(1, 100_000),
    help="Keys per pipeline batch.",
)
workers: Decorator = click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Connections working on disjoint batches.",
)
timeout: Decorator = click.option(
    "--timeout",
    default=3600.0,
    show_default=True,
    type=click.FloatRange(min=1),
    help="Seconds to wait for an index to be built.",
)
reconnect_timeout: Decorator = click.option(
    "--reconnect-timeout",
    default=60.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Seconds to keep reconnecting (and resuming from the journal) after losing the server.",
)
skip_invalid_vectors: Decorator = click.option(
    "--skip-invalid-vectors",
    is_flag=True,
    help="Leave vectors that cannot be converted untouched instead of refusing the run.",
)
report_out: Decorator = click.option(
    "--report-out", type=click.Path(dir_okay=False), help="Write the report (YAML)."
)
benchmark_out: Decorator = click.option(
    "--benchmark-out", type=click.Path(dir_okay=False), help="Write per-step timings (YAML)."
)
use_async: Decorator = click.option(
    "--async", "use_async", is_flag=True, help="Use the asyncio executor."
)
accept_data_loss: Decorator = click.option(
    "--accept-data-loss", is_flag=True, help="Allow lossy vector conversions (required for them)."
)
accept_data_loss_compat: Decorator = click.option(
    "--accept-data-loss",
    is_flag=True,
    help="Accepted for compatibility: a reviewed lossy plan runs without it (as in the guide).",
)
query_check_file: Decorator = click.option(
    "--query-check-file",
    type=click.Path(dir_okay=False, exists=True),
    help="RedisVL's query checks (YAML: fetch_ids, keys_exist), run with the validation.",
)
allow_edited_plan: Decorator = click.option(
    "--allow-edited-plan",
    is_flag=True,
    help="Apply a plan edited after it was made (its digest no longer matches); its values "
    "are still re-validated against its schemas.",
)
allow_other_server: Decorator = click.option(
    "--allow-other-server",
    is_flag=True,
    help="Apply on another server than the plan was made against (e.g. the same data "
    "behind another address, after a restart).",
)


def as_json(help: str) -> Decorator:
    """``--json``: machine-readable output."""
    return click.option("--json", "as_json", is_flag=True, help=help)


__all__ = [
    "URL_HELP",
    "Command",
    "Group",
    "accept_data_loss",
    "accept_data_loss_compat",
    "allow_edited_plan",
    "allow_other_server",
    "as_json",
    "backup_dir",
    "batch_size",
    "batch_state",
    "benchmark_out",
    "compose",
    "index_name",
    "journal_index",
    "plan_file",
    "query_check_file",
    "report_out",
    "timeout",
    "url_option",
    "use_async",
    "workers",
]
