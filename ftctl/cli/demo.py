"""``ftctl demo``: a real migration, end to end, on an embedded Redis 8 + Search.

Starts the embedded server and renders each stage of :func:`ftctl.demo.run_demo`: the demo
index and its sentence embeddings, the plan (float32 → float16 plus a new field), the apply
with its journal, the audit trail, and the rollback that puts every original byte back.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import click

from ftctl.cli import options
from ftctl.cli.render import report_summary, timeline
from ftctl.cli.state import AppState, pass_state
from ftctl.demo import (
    Applied,
    Audited,
    Loaded,
    Planned,
    RolledBack,
    fixtures_present,
    load_demo,
    run_demo,
)
from ftctl.server import EmbeddedServer

_REPO_FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


@click.command(cls=options.Command)
@click.option("--docs", default=3000, show_default=True, type=click.IntRange(10, 100_000))
@click.option(
    "--fixtures",
    type=click.Path(file_okay=False, path_type=Path),
    default=_REPO_FIXTURES,
    show_default=False,
    help="The repository's fixtures/ (random vectors when missing).",
)
@click.option(
    "--load-only",
    is_flag=True,
    help="Only create the demo index and load its documents, on the server at --url.",
)
@pass_state
def demo(state: AppState, docs: int, fixtures: Path, load_only: bool) -> None:
    """Run a real float32→float16 + add-field migration and its rollback on an embedded server.

    With --load-only, create index 'demo_docs' and load the documents on your server instead,
    to try the migrate commands on real data.
    """
    echo = click.echo
    if load_only:
        loaded = load_demo(fixtures=fixtures, docs=docs, redis_url=state.url)
        real = "sentence embeddings" if fixtures_present(fixtures) else "random vectors"
        echo(f"Loaded {loaded.documents:,} documents ({real}) into index '{loaded.index}'")
        return
    with EmbeddedServer() as server, tempfile.TemporaryDirectory(prefix="ftctl-demo-") as work:
        echo(f"Embedded Redis 8 + Search at {server.url}")
        stages = run_demo(
            server.url, fixtures=fixtures, backup_dir=Path(work) / "backups", docs=docs
        )
        for stage in stages:
            match stage:
                case Loaded(index=index, documents=documents):
                    echo(f"Loaded {documents:,} documents into index '{index}'")
                case Planned(plan=plan):
                    echo(f"\nPlan: supported={plan.supported}, mode={plan.mode}")
                    for warning in plan.warnings:
                        echo(f"  - {warning}")
                case Applied(report=report):
                    echo("\n== apply")
                    report_summary(report)
                    if report.result == "succeeded":
                        echo(
                            f"{stage.sample_key} embedding is now {stage.sample_bytes} bytes "
                            f"(float16), was {stage.original_bytes}"
                        )
                case Audited(rows=rows):
                    echo("\n== journal (first and last events)")
                    timeline(rows[:6] + rows[-4:])
                case RolledBack(report=undone, documents=documents, restored=restored):
                    echo("\n== rollback")
                    report_summary(undone)
                    if restored:
                        echo(
                            f"\nAll {documents:,} documents are back byte for byte; the demo is done."
                        )
