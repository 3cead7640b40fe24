"""``ftctl migrate batch-plan | batch-apply | batch-resume | batch-status``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import msgspec

from ftctl.batch import BatchMigrationExecutor, BatchMigrationPlanner, batch_status, regenerate
from ftctl.cli import options
from ftctl.cli.exits import exit_unless
from ftctl.cli.migrate import migrate
from ftctl.cli.render import batch_status_lines
from ftctl.cli.state import AppState, pass_state
from ftctl.journal.batch import BatchReport
from ftctl.plan.batch import BatchPlan
from ftctl.text import printable


def _progress(name: str, position: int, total: int, status: str) -> None:
    click.echo(printable(f"[{position}/{total}] {name}: {status}"))


def _summary(batch: BatchPlan, plan_out: str) -> None:
    click.echo(f"Batch plan written to {plan_out}")
    click.echo(f"Batch ID: {batch.batch_id}")
    click.echo(f"Failure policy: {batch.failure_policy}")
    applicable = batch.applicable
    click.echo(f"Applicable: {len(applicable)}")
    for entry in applicable:
        click.echo(printable(f"  - {entry.name}: {entry.plan_path}"))
    skipped = [i for i in batch.indexes if not i.applicable]
    click.echo(f"Skipped: {len(skipped)}")
    for entry in skipped:
        click.echo(printable(f"  - {entry.name}: {entry.skip_reason}"))


def _finish(report: BatchReport) -> None:
    s = report.summary
    click.echo(
        f"Batch {report.batch_id}: {report.status} ({s.successful} succeeded, {s.failed} failed, "
        f"{s.skipped} skipped, {s.remaining} not run)"
    )
    for index in report.indexes:
        if index.status == "failed":
            click.echo(printable(f"  - {index.name}: failed - {index.error}"))
    exit_unless(report.status, "completed")


@migrate.command("batch-plan")
@click.option("--pattern", help="Glob over index names (e.g. '*_idx').")
@click.option("--indexes", help="Comma-separated index names.")
@click.option("--indexes-file", type=click.Path(dir_okay=False), help="One index name a line.")
@click.option("--schema-patch", required=True, type=click.Path(dir_okay=False))
@click.option(
    "--failure-policy",
    type=click.Choice(["fail_fast", "continue_on_error"]),
    default="fail_fast",
    show_default=True,
)
@click.option("--plan-out", required=True, type=click.Path(dir_okay=False))
@pass_state
def batch_plan_command(
    state: AppState,
    pattern: str | None,
    indexes: str | None,
    indexes_file: str | None,
    schema_patch: str,
    failure_policy: Any,
    plan_out: str,
) -> None:
    """Plan one shared patch over many indexes; writes plans/<index>.yaml beside --plan-out."""
    batch = BatchMigrationPlanner().create_batch_plan(
        redis_url=state.url,
        pattern=pattern,
        indexes=indexes,
        indexes_file=indexes_file,
        schema_patch_path=schema_patch,
        failure_policy=failure_policy,
        plan_out=plan_out,
    )
    _summary(batch, plan_out)


run_options = options.compose(options.accept_data_loss, options.batch_size, options.workers)


@migrate.command("batch-apply")
@options.plan_file
@options.backup_dir()
@options.batch_state
@click.option("--report-dir", default="./reports/", show_default=True, type=click.Path())
@run_options
@options.allow_other_server
@pass_state
def batch_apply_command(
    state: AppState,
    plan_path: str,
    backup_dir: Path,
    state_path: str,
    report_dir: str,
    accept_data_loss: bool,
    batch_size: int,
    workers: int,
    allow_other_server: bool,
) -> None:
    """Migrate every applicable index of a batch plan, one after another (exit 1 if any failed)."""
    report = BatchMigrationExecutor().apply(
        plan_path,
        redis_url=state.url,
        backup_dir=backup_dir,
        state_path=state_path,
        report_dir=report_dir,
        accept_data_loss=accept_data_loss,
        batch_size=batch_size,
        num_workers=workers,
        progress_callback=_progress,
        allow_other_server=allow_other_server,
    )
    _finish(report)


@migrate.command("batch-resume")
@options.batch_state
@click.option("--retry-failed", is_flag=True, help="Run failed indexes again.")
@options.backup_dir(required=False, help="Must be the batch's own.")
@click.option("--report-dir", type=click.Path(), help="[default: the one batch-apply used]")
@run_options
@pass_state
def batch_resume_command(
    state: AppState,
    state_path: str,
    retry_failed: bool,
    backup_dir: Path | None,
    report_dir: str | None,
    accept_data_loss: bool,
    batch_size: int,
    workers: int,
) -> None:
    """Continue an interrupted batch from its journal (exit 1 if any index failed)."""
    report = BatchMigrationExecutor().resume(
        state_path,
        redis_url=state.url,
        backup_dir=backup_dir,
        retry_failed=retry_failed,
        accept_data_loss=accept_data_loss,
        report_dir=report_dir,
        batch_size=batch_size,
        num_workers=workers,
        progress_callback=_progress,
    )
    _finish(report)


@migrate.command("batch-status")
@options.batch_state
@options.backup_dir(required=False, help="Find the batch journal here.")
@options.as_json("Machine-readable output.")
@click.option(
    "--regenerate",
    "regenerate_files",
    is_flag=True,
    help="Re-render batch_state.yaml and batch_report.yaml from the journal.",
)
def batch_status_command(
    state_path: str, backup_dir: Path | None, as_json: bool, regenerate_files: bool
) -> None:
    """Progress of a batch, from its journal (no Redis needed)."""
    if regenerate_files:
        for path in regenerate(state_path, backup_dir=backup_dir):
            click.echo(f"Rendered {path}", err=True)
    status = batch_status(state_path, backup_dir=backup_dir)
    if as_json:
        click.echo(msgspec.json.encode(status).decode())
    else:
        for line in batch_status_lines(status):
            click.echo(line)


__all__ = [
    "batch_apply_command",
    "batch_plan_command",
    "batch_resume_command",
    "batch_status_command",
]
