"""``ftctl migrate cutover|abort``: the operator gate of an online migration.

A plan made with ``--postpone-cutover`` stops once its shadow index is built and verified
(result ``awaiting_cutover``); ``cutover`` journals the approval and swaps it in, ``abort``
drops the shadow and leaves everything as it was.
"""

from __future__ import annotations

from pathlib import Path

import click

from ftctl.cli import AppState, pass_state
from ftctl.cli.migrate import migrate
from ftctl.cli.migrate_run import _async, _index, execute
from ftctl.cli.render import report_summary, write_yaml
from ftctl.errors import EXIT_FAILED

_backup_dir = click.option(
    "--backup-dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory of the online migration's journal.",
)
_report_out = click.option("--report-out", type=click.Path(dir_okay=False), help="Report YAML.")


@migrate.command("cutover")
@_backup_dir
@_index
@_report_out
@click.option("--timeout", default=3600.0, show_default=True, type=click.FloatRange(min=1))
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64))
@_async
@pass_state
def cutover_command(
    state: AppState,
    backup_dir: Path,
    index: str | None,
    report_out: str | None,
    timeout: float,
    workers: int,
    use_async: bool,
) -> None:
    """Swap a verified shadow index in (one MULTI/EXEC) and finish the online migration."""
    report = execute(
        use_async, "cutover", backup_dir, index=index, redis_url=state.url, timeout=timeout,
        num_workers=workers,
    )  # fmt: skip
    if report_out:
        write_yaml(report_out, report)
    report_summary(report)
    if report.cutover_at:
        click.echo(f"Cut-over at {report.cutover_at}")
    if report.result != "succeeded":
        raise SystemExit(EXIT_FAILED)


@migrate.command("abort")
@_backup_dir
@_index
@_report_out
@_async
@pass_state
def abort_command(
    state: AppState, backup_dir: Path, index: str | None, report_out: str | None, use_async: bool
) -> None:
    """Drop the shadow of an online migration that was not cut over (exit 2 if it was)."""
    report = execute(use_async, "abort", backup_dir, index=index, redis_url=state.url)
    if report_out:
        write_yaml(report_out, report)
    report_summary(report)
    if report.result != "rolled_back":
        raise SystemExit(EXIT_FAILED)
