"""``ftctl migrate apply|resume|rollback|validate|journal inspect``: the executor's commands.

Exit codes: 0 success, 1 the migration ran and failed (a report is still written), 2 refused
with nothing changed, 130 interrupted at a batch boundary (resumable).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any, Literal, cast

import click
import msgspec

from ftctl import audit
from ftctl.cli import AppState, pass_state
from ftctl.cli.migrate import migrate
from ftctl.cli.render import Progress, report_summary, timeline, write_yaml
from ftctl.errors import EXIT_FAILED
from ftctl.executor import AsyncMigrationExecutor, MigrationExecutor
from ftctl.journal.report import MigrationReport
from ftctl.plan.models import MigrationPlan, load_plan
from ftctl.validator import MigrationValidator

_backup_dir = click.option(
    "--backup-dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory of the journal and the backup segments.",
)


def _run_options(command: click.decorators.FC) -> click.decorators.FC:
    for decorator in reversed(
        [
            click.option(
                "--batch-size",
                default=500,
                show_default=True,
                type=click.IntRange(1, 100_000),
                help="Keys per pipeline batch.",
            ),
            click.option(
                "--workers",
                default=1,
                show_default=True,
                type=click.IntRange(1, 64),
                help="Connections working on disjoint batches.",
            ),
            click.option(
                "--timeout",
                default=3600.0,
                show_default=True,
                type=click.FloatRange(min=1),
                help="Seconds to wait for the index to be built.",
            ),
            click.option(
                "--reconnect-timeout",
                default=60.0,
                show_default=True,
                type=click.FloatRange(min=0),
                help="Seconds to keep reconnecting (and resuming) after losing the server.",
            ),
            click.option(
                "--report-out",
                type=click.Path(dir_okay=False),
                help="Write the migration report (YAML).",
            ),
            click.option(
                "--benchmark-out",
                type=click.Path(dir_okay=False),
                help="Write per-step timings (YAML).",
            ),
        ]
    ):
        command = decorator(command)
    return command


def _confirm_data_loss(plan: MigrationPlan, accept: bool) -> bool:
    """``--accept-data-loss``, or an interactive yes on a terminal."""
    if accept or not plan.requires_data_loss_ack:
        return True
    if not sys.stdin.isatty():
        return False
    lossy = ", ".join(
        f"{v.field} {v.source_datatype}→{v.target_datatype}" for v in plan.vector_changes if v.lossy
    )
    return click.confirm(f"This migration changes vectors lossily ({lossy}). Continue?", err=True)


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
        where = report.backup.backup_dir or str(backup_dir)
        click.echo(
            "The shadow index is built and verified; the source still serves. Swap it in with "
            f"'ftctl migrate cutover --backup-dir {where}' or drop it with "
            f"'ftctl migrate abort --backup-dir {where}'."
        )
        return
    if report.result not in ("succeeded", "rolled_back"):
        raise SystemExit(EXIT_FAILED)


_async = click.option("--async", "use_async", is_flag=True, help="Use the asyncio executor.")
_index = click.option("--index", help="Which index's journal, when the backup dir holds several.")

Verb = Literal["apply", "resume", "rollback", "cutover", "abort"]


def execute(use_async: bool, verb: Verb, *args: Any, **kwargs: Any) -> MigrationReport:
    """Call one verb of the sync or the asyncio executor (same names, same arguments)."""
    progress = Progress()
    if verb != "abort":
        kwargs["progress_callback"] = progress
    try:
        if use_async:
            coroutine = getattr(AsyncMigrationExecutor(), verb)(*args, **kwargs)
            return cast(MigrationReport, asyncio.run(coroutine))
        return cast(MigrationReport, getattr(MigrationExecutor(), verb)(*args, **kwargs))
    finally:
        progress.close()


@migrate.command()
@click.option(
    "--plan",
    "plan_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="The reviewed plan YAML.",
)
@_backup_dir
@_run_options
@_async
@click.option("--accept-data-loss", is_flag=True, help="Allow lossy vector conversions.")
@click.option(
    "--skip-invalid-vectors",
    is_flag=True,
    help="Leave vectors that cannot be converted untouched instead of refusing the run.",
)
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
) -> None:
    """Apply a plan; re-running the same command resumes from the journal."""
    plan = load_plan(plan_path)
    accept = _confirm_data_loss(plan, accept_data_loss)
    report = execute(
        use_async, "apply", plan, redis_url=state.url, backup_dir=backup_dir,
        batch_size=batch_size, num_workers=workers, accept_data_loss=accept, timeout=timeout,
        skip_invalid_vectors=skip_invalid_vectors, reconnect_timeout=reconnect_timeout,
    )  # fmt: skip
    _finish(report, backup_dir, report_out, benchmark_out)


@migrate.command()
@_backup_dir
@_index
@_run_options
@_async
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
) -> None:
    """Resume an interrupted apply from its journal alone (the plan is in the journal)."""
    report = execute(
        use_async, "resume", backup_dir, index=index, redis_url=state.url,
        batch_size=batch_size, num_workers=workers, timeout=timeout,
        reconnect_timeout=reconnect_timeout,
    )  # fmt: skip
    _finish(report, backup_dir, report_out, benchmark_out)


@migrate.command()
@_backup_dir
@_index
@click.option(
    "--force", is_flag=True, help="Overwrite vectors that were changed after the migration."
)
@_run_options
@_async
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
) -> None:
    """Undo a migration from its journal: vectors, keys, fields and the source index."""
    report = execute(
        use_async, "rollback", backup_dir, index=index, redis_url=state.url, force=force,
        batch_size=batch_size, num_workers=workers, timeout=timeout,
        reconnect_timeout=reconnect_timeout,
    )  # fmt: skip
    _finish(report, None, report_out, None)


@migrate.command()
@click.option("--plan", "plan_path", required=True, type=click.Path(dir_okay=False))
@click.option("--report-out", type=click.Path(dir_okay=False), help="Write the report (YAML).")
@pass_state
def validate(state: AppState, plan_path: str, report_out: str | None) -> None:
    """Check the live index against the plan's target schema and counts (read-only)."""
    plan = load_plan(plan_path)
    report = MigrationValidator().validate(plan, redis_url=state.url)
    _finish(report, None, report_out, None)


@migrate.group()
def journal() -> None:
    """Read migration journals (the audit trail)."""


@journal.command()
@_backup_dir
@click.option("--index", help="Only this index's journal.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per event, per line.")
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
@_backup_dir
@_index
@click.option(
    "--kind", type=click.Choice(["apply", "rollback"]), default="apply", show_default=True
)
@click.option("--report-out", type=click.Path(dir_okay=False), help="Write the report (YAML).")
def report_command(
    backup_dir: Path, index: str | None, kind: Literal["apply", "rollback"], report_out: str | None
) -> None:
    """Regenerate the migration report from the journal alone."""
    report = audit.migration_report(backup_dir, index=index, kind=kind)
    if report_out:
        write_yaml(report_out, report)
    report_summary(report)
