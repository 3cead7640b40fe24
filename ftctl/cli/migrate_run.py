"""``ftctl migrate apply|resume|rollback|validate|journal inspect``: the executor's commands.

Exit codes: 0 success, 1 the migration ran and failed (a report is still written), 2 refused
with nothing changed, 130 interrupted at a batch boundary (resumable).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Literal, cast

import click
import msgspec

from ftctl import audit
from ftctl.cli import options
from ftctl.cli.exits import exit_unless
from ftctl.cli.migrate import migrate
from ftctl.cli.render import Progress, report_summary, timeline, write_yaml
from ftctl.cli.state import AppState, pass_state
from ftctl.executor import AsyncMigrationExecutor, MigrationExecutor
from ftctl.journal.report import MigrationReport
from ftctl.plan.models import load_plan
from ftctl.plan.pacing import Pacing
from ftctl.validator import MigrationValidator

run_options = options.compose(
    options.batch_size,
    options.workers,
    options.timeout,
    options.reconnect_timeout,
    options.report_out,
    options.benchmark_out,
)


def _finish(
    report: MigrationReport,
    backup_dir: Path | None,
    report_out: str | None,
    benchmark_out: str | None,
) -> None:
    if report_out:
        write_yaml(report_out, report)
    if benchmark_out and backup_dir is not None:
        directory = Path(report.backup.journal).parent if report.backup.journal else backup_dir
        write_yaml(benchmark_out, audit.benchmark_report(directory))
    report_summary(report)
    if report.result == "awaiting_cutover":
        click.echo("The shadow index is built and verified; the source still serves.")
    exit_unless(report.result, "succeeded", "rolled_back", "awaiting_cutover")


Verb = Literal["apply", "resume", "rollback", "cutover", "abort"]


def execute(use_async: bool, verb: Verb, *args: Any, **kwargs: Any) -> MigrationReport:
    """Call one verb of the sync or the asyncio executor (same names, same arguments)."""
    progress = Progress()
    kwargs["progress_callback"] = progress
    try:
        if use_async:
            coroutine = getattr(AsyncMigrationExecutor(), verb)(*args, **kwargs)
            return cast(MigrationReport, asyncio.run(coroutine))
        return cast(MigrationReport, getattr(MigrationExecutor(), verb)(*args, **kwargs))
    finally:
        progress.close()


@migrate.command()
@options.plan_file
@options.backup_dir()
@run_options
@options.use_async
@options.accept_data_loss_compat
@options.skip_invalid_vectors
@options.query_check_file
@options.allow_edited_plan
@options.allow_other_server
@options.pacing
@pass_state
def apply(
    state: AppState,
    plan_path: str,
    backup_dir: Path,
    batch_size: int,
    workers: int,
    timeout: float,
    reconnect_timeout: float,
    report_out: str | None,
    benchmark_out: str | None,
    use_async: bool,
    accept_data_loss: bool,
    skip_invalid_vectors: bool,
    query_check_file: str | None,
    allow_edited_plan: bool,
    allow_other_server: bool,
    pacing: Pacing | None,
) -> None:
    """Apply a plan; re-running the same command resumes from the journal.

    A reviewed lossy plan runs as the guide's apply does: the plan's warnings show the
    measured recall (--accept-data-loss is accepted and changes nothing).
    """
    plan = load_plan(plan_path)
    report = execute(
        use_async, "apply", plan, redis_url=state.url, backup_dir=backup_dir,
        batch_size=batch_size, num_workers=workers, timeout=timeout,
        skip_invalid_vectors=skip_invalid_vectors, reconnect_timeout=reconnect_timeout,
        query_check_file=query_check_file,
        allow_edited_plan=allow_edited_plan,
        allow_other_server=allow_other_server, pacing=pacing,
    )  # fmt: skip
    _finish(report, backup_dir, report_out, benchmark_out)


@migrate.command()
@options.backup_dir()
@options.journal_index
@run_options
@options.use_async
@options.pacing
@pass_state
def resume(
    state: AppState,
    backup_dir: Path,
    index: str | None,
    batch_size: int,
    workers: int,
    timeout: float,
    reconnect_timeout: float,
    report_out: str | None,
    benchmark_out: str | None,
    use_async: bool,
    pacing: Pacing | None,
) -> None:
    """Resume an interrupted apply from its journal alone (the plan is in the journal)."""
    report = execute(
        use_async, "resume", backup_dir, index=index, redis_url=state.url,
        batch_size=batch_size, num_workers=workers, timeout=timeout,
        reconnect_timeout=reconnect_timeout, pacing=pacing,
    )  # fmt: skip
    _finish(report, backup_dir, report_out, benchmark_out)


@migrate.command()
@options.backup_dir()
@options.journal_index
@click.option(
    "--force", is_flag=True, help="Overwrite vectors that were changed after the migration."
)
@run_options
@options.use_async
@options.pacing
@pass_state
def rollback(
    state: AppState,
    backup_dir: Path,
    index: str | None,
    force: bool,
    batch_size: int,
    workers: int,
    timeout: float,
    reconnect_timeout: float,
    report_out: str | None,
    benchmark_out: str | None,
    use_async: bool,
    pacing: Pacing | None,
) -> None:
    """Undo a migration from its journal: vectors, keys, fields and the source index."""
    report = execute(
        use_async, "rollback", backup_dir, index=index, redis_url=state.url, force=force,
        batch_size=batch_size, num_workers=workers, timeout=timeout,
        reconnect_timeout=reconnect_timeout, pacing=pacing,
    )  # fmt: skip
    _finish(report, None, report_out, None)


@migrate.command()
@options.plan_file
@options.report_out
@options.query_check_file
@options.backup_dir(
    required=False,
    help="The apply's backup dir: its journaled query baseline is compared "
    "(default: the plan's default backup dir, when the query check file has queries).",
)
@pass_state
def validate(
    state: AppState,
    plan_path: str,
    report_out: str | None,
    query_check_file: str | None,
    backup_dir: Path | None,
) -> None:
    """Check the live index against the plan's target schema and counts (read-only)."""
    plan = load_plan(plan_path)
    report = MigrationValidator().validate(
        plan, redis_url=state.url, query_check_file=query_check_file, backup_dir=backup_dir
    )
    _finish(report, None, report_out, None)


@migrate.group(cls=options.Group)
def journal() -> None:
    """Read migration journals (the audit trail)."""


@journal.command()
@options.backup_dir()
@options.journal_index
@options.as_json("One JSON object per event, per line.")
def inspect(backup_dir: Path, index: str | None, as_json: bool) -> None:
    """Print the timeline of a journal: event, time, step, batch, counts."""
    for found in audit.inspect(backup_dir, index=index):
        if found.recovered_tail:
            click.echo(f"note: {found.directory}: {found.recovered_tail}", err=True)
        if as_json:
            for row in found.rows:
                click.echo(msgspec.json.encode(row).decode())
        else:
            click.echo(f"== {found.directory}")
            timeline(found.rows)


@migrate.command("report")
@options.backup_dir()
@options.journal_index
@click.option(
    "--kind", type=click.Choice(["apply", "rollback"]), default="apply", show_default=True
)
@options.report_out
def report_command(
    backup_dir: Path, index: str | None, kind: Literal["apply", "rollback"], report_out: str | None
) -> None:
    """Regenerate the migration report from the journal alone."""
    report = audit.migration_report(backup_dir, index=index, kind=kind)
    if report_out:
        write_yaml(report_out, report)
    report_summary(report)
