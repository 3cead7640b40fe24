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
from ftctl.cli.render import report_summary, write_yaml
from ftctl.errors import EXIT_FAILED
from ftctl.online import abort, cutover

_backup_dir = click.option(
    "--backup-dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory of the online migration's journal.",
)
_index = click.option("--index", help="Which index's journal, when the backup dir holds several.")
_report_out = click.option("--report-out", type=click.Path(dir_okay=False), help="Report YAML.")


@migrate.command("cutover")
@_backup_dir
@_index
@_report_out
@click.option("--timeout", default=3600.0, show_default=True, type=click.FloatRange(min=1))
@pass_state
def cutover_command(
    state: AppState, backup_dir: Path, index: str | None, report_out: str | None, timeout: float
) -> None:
    """Swap a verified shadow index in (one MULTI/EXEC) and finish the online migration."""
    report = cutover(backup_dir, index=index, client=state.client(), timeout=timeout)
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
@pass_state
def abort_command(
    state: AppState, backup_dir: Path, index: str | None, report_out: str | None
) -> None:
    """Drop the shadow of an online migration that was not cut over (exit 2 if it was)."""
    report = abort(backup_dir, index=index, client=state.client())
    if report_out:
        write_yaml(report_out, report)
    report_summary(report)
    if report.result != "rolled_back":
        raise SystemExit(EXIT_FAILED)
