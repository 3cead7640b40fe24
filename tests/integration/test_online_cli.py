"""The CLI runs an online (shadow) plan and its rollback with ``--workers 2``, under the
asyncio and the sync runner, while queries by the public names never fail."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner
from online_load import INDEX, create

from ftctl.cli import cli
from ftctl.plan import dump_plan, patch_from_builtins
from ftctl.planner import MigrationPlanner
from ftctl.schema.compare import reported_differences
from ftctl.schema.ftinfo import parse_ft_info
from ftctl.schema.model import IndexSchema
from ftctl.steps.spec import named

DOCS = 1_000
ALIAS = "docs_alias"
HNSW = {"changes": {"update_fields": [{"name": "emb", "attrs": {"algorithm": "hnsw", "m": 8}}]}}


@contextmanager
def _queries(url: str) -> Iterator[list[str]]:
    """FT.INFO and FT.SEARCH by the index name and the alias, in a loop until the block
    ends; yields the failures (a query that errs or does not find every document)."""
    failures: list[str] = []
    stop = threading.Event()
    counts = [0]

    def loop() -> None:
        client = redis.Redis.from_url(url, protocol=3)
        try:
            while not stop.is_set():
                for name in (INDEX, ALIAS):
                    try:
                        client.execute_command("FT.INFO", name)
                        reply = client.execute_command("FT.SEARCH", name, "*", "LIMIT", "0", "0")
                    except redis.ResponseError as exc:
                        failures.append(f"{name}: {exc}")
                        continue
                    if int(reply[b"total_results"]) != DOCS:
                        failures.append(f"{name}: {reply[b'total_results']} results")
                    counts[0] += 1
        finally:
            client.close()

    reader = threading.Thread(target=loop, daemon=True)
    reader.start()
    time.sleep(0.05)
    try:
        yield failures
    finally:
        time.sleep(0.05)
        stop.set()
        reader.join(10)
    assert counts[0] > 10, "the reader hardly ran: the test proves nothing"


def _resolves(r: redis.Redis, schema: IndexSchema) -> str:
    """The one real index both names resolve to; asserts it has ``schema`` and every doc."""
    real = {parse_ft_info(r.execute_command("FT.INFO", n)).index_name for n in (INDEX, ALIAS)}
    assert len(real) == 1, real
    (index,) = real
    info = parse_ft_info(r.execute_command("FT.INFO", index))
    assert reported_differences(named(schema, index), info.schema) == []
    assert info.stats.num_docs == DOCS
    assert [x.decode() for x in r.execute_command("FT._LIST")] == [index]
    return index


@pytest.mark.parametrize("runner", [["--async"], []], ids=["async", "sync"])
def test_cli_online_apply_and_rollback_with_workers_keep_answering(
    r: redis.Redis, redis_url: str, tmp_path: Path, runner: list[str]
) -> None:
    """`migrate apply` then `migrate rollback`, both with --workers 2 (and --async), run an
    online shadow plan and its cut-back: exit 0, the target then the source schema under the
    index name and its alias, and no query by either name fails before, during or after."""
    create(r, "hash", DOCS, algorithm="FLAT")
    r.execute_command("FT.ALIASADD", ALIAS, INDEX)
    plan = MigrationPlanner().create_plan(
        INDEX,
        redis_client=r,
        schema_patch=patch_from_builtins(HNSW),
        mode="online",
        aliases=[ALIAS],
    )
    assert plan.online is not None and plan.online.strategy == "shadow"
    plan_file = tmp_path / "plan.yaml"
    plan_file.write_bytes(dump_plan(plan))
    backups = str(tmp_path / "backups")
    base = ["--url", redis_url, "migrate"]
    with _queries(redis_url) as failures:
        _resolves(r, plan.source.schema_snapshot)
        out = CliRunner().invoke(
            cli,
            [*base, "apply", "--plan", str(plan_file), "--backup-dir", backups, *runner,
             "--workers", "2"],
        )  # fmt: skip
        assert out.exit_code == 0, out.output
        assert "Result: succeeded" in out.output
        assert _resolves(r, plan.merged_target_schema) == plan.online.shadow_name
        out = CliRunner().invoke(
            cli, [*base, "rollback", "--backup-dir", backups, *runner, "--workers", "2"]
        )
        assert out.exit_code == 0, out.output
        assert "Result: rolled_back" in out.output
        assert _resolves(r, plan.source.schema_snapshot) not in (INDEX, plan.online.shadow_name)
    assert failures == []
