"""``ftctl migrate cutover|abort|pause|unpause``: the operator's hand on an online migration.

A plan made with ``--postpone-cutover`` stops once its shadow index is built and verified
(result ``awaiting_cutover``); ``cutover`` journals the approval and swaps it in, ``abort``
drops the shadow and leaves everything as it was. ``pause`` and ``unpause`` hold and release
the document writes of a run that rewrites documents (a flag file in its journal directory).
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
from ftctl.executor import pause, unpause
from ftctl.plan.pacing import Pacing

_backup_dir = options.backup_dir(help="Directory of the online migration's journal.")


@migrate.command("cutover")
@_backup_dir
@options.journal_index
@options.report_out
@options.timeout
@options.workers
@options.use_async
@options.pacing
@pass_state
def cutover_command(
    state: AppState,
    backup_dir: Path,
    index: str | None,
    report_out: str | None,
    timeout: float,
    workers: int,
    use_async: bool,
    pacing: Pacing | None,
) -> None:
    """Swap a verified shadow index in (one MULTI/EXEC) and finish the online migration."""
    report = execute(
        use_async, "cutover", backup_dir, index=index, redis_url=state.url, timeout=timeout,
        num_workers=workers, pacing=pacing,
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
@options.batch_size
@options.workers
@options.use_async
@options.pacing
@pass_state
def abort_command(
    state: AppState,
    backup_dir: Path,
    index: str | None,
    report_out: str | None,
    batch_size: int,
    workers: int,
    use_async: bool,
    pacing: Pacing | None,
) -> None:
    """Drop the shadow of an online migration that was not cut over (exit 2 if it was)."""
    report = execute(
        use_async, "abort", backup_dir, index=index, redis_url=state.url,
        batch_size=batch_size, num_workers=workers, pacing=pacing,
    )  # fmt: skip
    if report_out:
        write_yaml(report_out, report)
    report_summary(report)
    exit_unless(report.result, "rolled_back")


@migrate.command("pause")
@_backup_dir
@options.journal_index
def pause_command(backup_dir: Path, index: str | None) -> None:
    """Hold the document writes of an online run (strategy expand) between two batches.

    Creates the flag file PAUSE in the run's journal directory: a running apply, resume,
    rollback, cutover or abort journals the pause at its next batch boundary and waits,
    holding nothing on the server (Ctrl+C still stops it); a run started while the flag is
    there starts paused. 'ftctl migrate unpause' lets it go on.
    """
    flag = pause(backup_dir, index)
    state = "Pause requested" if flag.changed else "Already paused"
    click.echo(
        f"{state} ({flag.path}): the run holds its writes at its next batch boundary; "
        f"'ftctl migrate unpause --backup-dir {backup_dir}' lets it go on."
    )


@migrate.command("unpause")
@_backup_dir
@options.journal_index
def unpause_command(backup_dir: Path, index: str | None) -> None:
    """Remove the pause flag: a paused online run goes on at its next look (within a second)."""
    flag = unpause(backup_dir, index)
    if flag.changed:
        click.echo(f"Pause flag removed ({flag.path}): the run goes on.")
    else:
        click.echo(f"Not paused: there is no {flag.path}.")
