"""``ftctl migrate cutover|abort``: the operator gate of an online migration.

A plan made with ``--postpone-cutover`` stops once its shadow index is built and verified
(result ``awaiting_cutover``); ``cutover`` journals the approval and swaps it in, ``abort``
drops the shadow and leaves everything as it was.
"""

from __future__ import annotations

from pathlib import Path

import click

from ftctl.cli import options
from ftctl.cli.exits import exit_unless
from ftctl.cli.migrate import migrate
from ftctl.cli.migrate_run import execute
from ftctl.cli.render import report_summary, write_yaml
from ftctl.cli.state import AppState, pass_state

_backup_dir = options.backup_dir(help="Directory of the online migration's journal.")


@migrate.command("cutover")
@_backup_dir
@options.journal_index
@options.report_out
@options.timeout
@options.workers
@options.use_async
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
    exit_unless(report.result, "succeeded")


@migrate.command("abort")
@_backup_dir
@options.journal_index
@options.report_out
@options.use_async
@pass_state
def abort_command(
    state: AppState, backup_dir: Path, index: str | None, report_out: str | None, use_async: bool
) -> None:
    """Drop the shadow of an online migration that was not cut over (exit 2 if it was)."""
    report = execute(use_async, "abort", backup_dir, index=index, redis_url=state.url)
    if report_out:
        write_yaml(report_out, report)
    report_summary(report)
    exit_unless(report.result, "rolled_back")
