"""The user's own queries on the real server and the demo data (real MiniLM embeddings):
five queries run before and after float32 → float16, drop_recreate and online; a threshold
not met fails the run (and stops an online cut-over); a killed run compares against the
baseline it journaled before it was killed."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest
import redis
from click.testing import CliRunner
from helpers import info, wait_indexed

from ftctl import AsyncMigrationExecutor, MigrationExecutor, MigrationPlanner, MigrationValidator
from ftctl.cli import cli
from ftctl.demo import load_documents
from ftctl.errors import UsageError
from ftctl.indexes import create_index
from ftctl.journal import Journal
from ftctl.journal.events import (
    CutoverDone,
    QueryBaseline,
    QueryCompared,
    StepStarted,
)
from ftctl.plan.models import MigrationPlan, dump_plan, load_plan, patch_from_builtins
from ftctl.plan.query_checks import load_query_checks

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "fixtures"
INDEX = "demo_docs"
LOADED = 2900
"""Documents loaded; row 2950 of the embeddings is a query vector no document holds."""
QUERY_ROW = 2950
FLOAT16 = {"update_fields": [{"name": "embedding", "attrs": {"datatype": "float16"}}]}
FLAT = {"update_fields": [{"name": "embedding", "attrs": {"algorithm": "flat"}}]}


def _readme_queries() -> str:
    """The query check file the README shows (its first YAML block after the heading)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("### Your own queries, before and after", 1)[1]
    found = re.search(r"```yaml\n(.*?)```", section, re.DOTALL)
    assert found is not None
    return found[1]


def _query_file(path: Path, **thresholds: dict[str, Any]) -> Path:
    """The README's four queries plus a KNN by a given vector (a real embedding of a
    docstring that is not loaded): text, tag filter, KNN by a stored document, KNN by a
    given vector, hybrid filter + KNN. ``thresholds``: query name → keys to set."""
    raw = msgspec.yaml.decode(_readme_queries())
    vector = np.load(FIXTURES / "embeddings" / "minilm-384-3000.npy")[QUERY_ROW]
    raw["queries"].insert(
        3,
        {
            "name": "given vector",
            "query": "*=>[KNN 10 @embedding $vec]",
            "vector": [float(v) for v in vector],
        },
    )
    for entry in raw["queries"]:
        entry.update(thresholds.get(entry["name"], {}))
    path.write_bytes(msgspec.yaml.encode(raw))
    return path


def _load(r: redis.Redis) -> None:
    create_index(FIXTURES / "schemas" / "demo_docs.yaml", redis_client=r)
    texts, vectors = load_documents(FIXTURES, LOADED)
    pipe = r.pipeline(transaction=False)
    for i, (text, vector) in enumerate(zip(texts, vectors, strict=True)):
        module = text.split(" ", 1)[0].strip(".").lower() or "misc"
        pipe.hset(
            f"doc:{i}", mapping={"text": text, "module": module, "embedding": vector.tobytes()}
        )
    pipe.execute()
    assert wait_indexed(r, INDEX, timeout=60).stats.num_docs == LOADED


def _plan(r: redis.Redis, change: dict[str, Any], mode: str) -> MigrationPlan:
    plan = MigrationPlanner().create_plan(
        INDEX, redis_client=r, schema_patch=patch_from_builtins({"changes": change}), mode=mode
    )  # type: ignore[arg-type]
    assert plan.supported, plan.diff_classification.blocked_reasons
    return plan


def _events(backup_dir: Path) -> list[Any]:
    return Journal.read(backup_dir / INDEX)


def _cli(redis_url: str, *args: str) -> Any:
    return CliRunner().invoke(cli, ["--url", redis_url, *args])


NAMES = ["socket docs", "create tag", "near doc 7", "given vector", "return near doc 100"]


@pytest.fixture
def demo(r: redis.Redis) -> redis.Redis:
    _load(r)
    return r


def test_readme_example_is_a_valid_query_check_file() -> None:
    """The README's example file parses: four queries with the thresholds it shows."""
    checks = load_query_checks(_readme_queries().encode())
    assert [q.name for q in checks.queries] == [n for n in NAMES if n != "given vector"]
    assert checks.queries[1].max_count_change == 0
    assert checks.queries[3].k == 10 and checks.queries[3].min_overlap == 0.9


def test_five_queries_before_and_after_float16_drop_recreate(
    demo: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    """migrate apply --query-check-file: the baseline is journaled before the drop, the
    target is queried with float16 vectors, the report shows overlap@10 and both counts of
    each of the five queries, the CLI prints them; validate compares with the journal."""
    r = demo
    stored = r.hget("doc:7", "embedding")
    plan_file = tmp_path / "plan.yaml"
    plan_file.write_bytes(dump_plan(_plan(r, FLOAT16, "drop_recreate")))
    queries = _query_file(tmp_path / "q.yaml")
    backups, report_file = tmp_path / "b", tmp_path / "report.yaml"
    result = _cli(
        redis_url, "migrate", "apply", "--plan", str(plan_file), "--backup-dir", str(backups),
        "--query-check-file", str(queries), "--report-out", str(report_file),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Result: succeeded" in result.output
    assert re.search(r"\[ok  \] query:near doc 7: overlap@10 1\.00 \(10 of 10", result.output)
    assert len(r.hget("doc:7", "embedding") or b"") == 384 * 2

    report = msgspec.yaml.decode(report_file.read_bytes())
    rows = {q["name"]: q for q in report["validation"]["queries"]}
    assert list(rows) == NAMES
    for name, row in rows.items():
        assert row["k"] == 10 and row["passed"], row
        assert row["overlap"] >= 0.9, (name, row)
        assert row["count_before"] == row["count_after"], (name, row)
        assert row["index"] == INDEX
    assert rows["create tag"]["count_before"] > 10  # its top 10 is all ties, and holds
    assert rows["near doc 7"]["count_before"] == 10
    checks = {c["name"]: c["passed"] for c in report["validation"]["query_checks"]}
    assert all(checks[f"query:{name}"] for name in NAMES)

    events = _events(backups)
    baseline = next(e for e in events if isinstance(e, QueryBaseline))
    drop = next(e for e in events if isinstance(e, StepStarted) and e.step == "drop")
    assert baseline.seq < drop.seq
    by_name = {q.name: q for q in baseline.queries}
    assert by_name["near doc 7"].vector == stored and by_name["near doc 7"].datatype == "float32"
    assert by_name["near doc 7"].ids[0] == b"doc:7"

    # migrate validate finds the journal and compares with its baseline.
    validated = _cli(
        redis_url, "migrate", "validate", "--plan", str(plan_file), "--query-check-file",
        str(queries), "--backup-dir", str(backups), "--report-out", str(tmp_path / "v.yaml"),
    )  # fmt: skip
    assert validated.exit_code == 0, validated.output
    again = msgspec.yaml.decode((tmp_path / "v.yaml").read_bytes())["validation"]["queries"]
    assert [q["count_before"] for q in again] == [rows[n]["count_before"] for n in NAMES]
    timeline = _cli(redis_url, "migrate", "journal", "inspect", "--backup-dir", str(backups))
    assert "query_baseline" in timeline.output
    assert "near doc 7 on 'demo_docs': overlap@10 1.00, results 10 → 10" in timeline.output
    elsewhere = MigrationValidator().validate
    with pytest.raises(UsageError, match="holds no journal of this plan"):
        elsewhere(load_plan(plan_file), redis_client=r, backup_dir=tmp_path / "empty")
    # Without the journal the queries only run on the target.
    alone = MigrationValidator().validate(
        load_plan(plan_file), redis_client=r, query_check_file=queries
    )
    assert alone.result == "succeeded"
    assert all(q.overlap is None and q.count_after for q in alone.validation.queries)


def test_online_float16_compares_on_the_new_index_before_the_cut_over(
    demo: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    """An online float32 → float16 apply (asyncio executor) compares the five queries on the
    new index and stops at the operator gate (the query vector's format changes with the
    datatype): every query held its top 10 before anyone approves the cut-over, and the
    report after it still shows them."""
    r = demo
    plan = _plan(r, FLOAT16, "online")
    assert plan.online is not None and plan.online.postpone_cutover
    executor = AsyncMigrationExecutor()
    report = asyncio.run(
        executor.apply(
            plan,
            redis_url=redis_url,
            backup_dir=tmp_path / "b",
            query_check_file=_query_file(tmp_path / "q.yaml"),
        )
    )
    assert report.result == "awaiting_cutover", report.error
    rows = {q.name: q for q in report.validation.queries}
    assert list(rows) == NAMES
    assert all(q.passed and q.overlap is not None and q.overlap >= 0.9 for q in rows.values())
    assert {q.index for q in rows.values()} == {plan.online.shadow_name}
    assert not any(isinstance(e, CutoverDone) for e in _events(tmp_path / "b"))

    done = asyncio.run(executor.cutover(tmp_path / "b", redis_url=redis_url))
    assert done.result == "succeeded", done.error
    assert [q.name for q in done.validation.queries if q.passed] == NAMES
    events = _events(tmp_path / "b")
    compared = [e.seq for e in events if isinstance(e, QueryCompared)]
    cutover = next(e for e in events if isinstance(e, CutoverDone))
    assert len(compared) == 5 and max(compared) < cutover.seq
    assert len(r.hget("doc:7", "embedding") or b"") == 384 * 2


def _apply_argv(redis_url: str, plan_file: Path, backups: Path, queries: Path) -> list[str]:
    return [sys.executable, "-c", "from ftctl.cli import main; main()", "--url", redis_url,
            "migrate", "apply", "--plan", str(plan_file), "--backup-dir", str(backups),
            "--query-check-file", str(queries)]  # fmt: skip


def _killed_after_baseline(argv: list[str]) -> None:
    env = {**os.environ, "FTCTL_FAULT": "after:step_finished:query_baseline"}
    killed = subprocess.run(argv, env=env, capture_output=True, timeout=120)
    assert killed.returncode == -9, killed.stderr


def _lose_neighbours(r: redis.Redis, backups: Path) -> tuple[list[bytes], int]:
    """Delete two of doc:7's ten nearest (as the baseline recorded them) and three 'create'
    documents: what the source answered is no longer what the data can answer. Returns the
    neighbours deleted and how many 'create' documents went."""
    baseline = next(e for e in _events(backups) if isinstance(e, QueryBaseline))
    near = next(q for q in baseline.queries if q.name == "near doc 7")
    tag = next(q for q in baseline.queries if q.name == "create tag")
    gone = [near.ids[1], near.ids[2]]
    assert not set(gone) & set(tag.ids[:3])
    creates = 3 + sum(r.hget(key, "module") == b"create" for key in gone)
    assert r.delete(*gone, *tag.ids[:3]) == 5
    return gone, creates


def test_a_killed_apply_compares_with_its_journaled_baseline_and_fails_below_threshold(
    demo: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    """SIGKILL right after the baseline, then documents change: resume (from the journal
    alone) compares with the baseline taken before the kill, not with one taken again, so
    the lost neighbours show (overlap 0.8 < 0.9) and the tag filter's lower count
    (max_count_change 0): result failed, exit 1; the other queries pass."""
    r = demo
    plan_file = tmp_path / "plan.yaml"
    plan_file.write_bytes(dump_plan(_plan(r, FLOAT16, "drop_recreate")))
    backups = tmp_path / "b"
    argv = _apply_argv(redis_url, plan_file, backups, _query_file(tmp_path / "q.yaml"))
    _killed_after_baseline(argv)
    gone, creates = _lose_neighbours(r, backups)

    resumed = _cli(redis_url, "migrate", "resume", "--backup-dir", str(backups),
                   "--report-out", str(tmp_path / "report.yaml"))  # fmt: skip
    assert resumed.exit_code == 1, resumed.output
    assert "Result: failed" in resumed.output
    assert "[FAIL] query:near doc 7: overlap@10 0.80 (8 of 10, min 0.9)" in resumed.output
    report = msgspec.yaml.decode((tmp_path / "report.yaml").read_bytes())
    assert report["result"] == "failed"
    rows = {q["name"]: q for q in report["validation"]["queries"]}
    assert rows["near doc 7"]["overlap"] == 0.8 and not rows["near doc 7"]["passed"]
    assert sorted(rows["near doc 7"]["missing"]) == sorted(k.decode() for k in gone)
    tag = rows["create tag"]
    assert (tag["count_after"], tag["passed"]) == (tag["count_before"] - creates, False)
    assert all(rows[n]["passed"] for n in ("socket docs", "given vector"))
    assert any("query:near doc 7" in e for e in report["validation"]["errors"])
    assert sum(isinstance(e, QueryBaseline) for e in _events(backups)) == 1


def test_a_failed_query_on_the_shadow_stops_the_cut_over_until_accepted(
    demo: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    """Online (shadow index): a query below its threshold on the shadow stops the run before
    the cut-over (exit 1, the source still answers its name); apply again with a lower
    threshold accepts it and cuts over; a changed query is refused (exit 2)."""
    r = demo
    plan = _plan(r, FLAT, "online")
    assert plan.online is not None and plan.online.strategy == "shadow"
    plan_file = tmp_path / "plan.yaml"
    plan_file.write_bytes(dump_plan(plan))
    backups = tmp_path / "b"
    queries = _query_file(tmp_path / "q.yaml")
    _killed_after_baseline(_apply_argv(redis_url, plan_file, backups, queries))
    _lose_neighbours(r, backups)
    args = ["migrate", "apply", "--plan", str(plan_file), "--backup-dir", str(backups)]

    stopped = _cli(redis_url, *args, "--query-check-file", str(queries))
    assert stopped.exit_code == 1, stopped.output
    assert "query checks failed" in stopped.output and "not cut over" in stopped.output
    assert info(r, INDEX).index_name == INDEX
    assert not any(isinstance(e, CutoverDone) for e in _events(backups))

    changed = _query_file(tmp_path / "changed.yaml", **{"near doc 7": {"k": 5}})
    refused = _cli(redis_url, *args, "--query-check-file", str(changed))
    assert refused.exit_code == 2, refused.output
    assert "query 'near doc 7' is not the one" in refused.output

    looser = _query_file(
        tmp_path / "looser.yaml",
        **{"near doc 7": {"min_overlap": 0.8}, "create tag": {"max_count_change": 5}},
    )
    accepted = _cli(redis_url, *args, "--query-check-file", str(looser))
    assert accepted.exit_code == 0, accepted.output
    assert any(isinstance(e, CutoverDone) for e in _events(backups))
    report = MigrationExecutor().apply(plan, redis_client=r, backup_dir=backups)
    rows = {q.name: q for q in report.validation.queries}
    assert rows["near doc 7"].overlap == 0.8 and rows["near doc 7"].passed
    assert rows["near doc 7"].min_overlap == 0.8


def test_queries_the_plan_cannot_answer_are_refused_before_anything_runs(
    demo: redis.Redis, tmp_path: Path
) -> None:
    """A vector of the wrong length is a UsageError before the journal exists; a query the
    source rejects refuses the run (nothing changed: the index is still float32)."""
    r = demo
    plan = _plan(r, FLOAT16, "drop_recreate")
    short = tmp_path / "short.yaml"
    short.write_bytes(
        b"queries: [{name: v, query: '*=>[KNN 3 @embedding $vec]', vector: [1, 2, 3]}]"
    )
    with pytest.raises(UsageError, match="its vector has 3 values"):
        MigrationExecutor().apply(
            plan, redis_client=r, backup_dir=tmp_path / "b1", query_check_file=short
        )
    assert not (tmp_path / "b1" / INDEX).exists()
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"queries: [{name: broken, query: '@text:('}]")
    with pytest.raises(ValueError, match="query 'broken' fails on the source index"):
        MigrationExecutor().apply(
            plan, redis_client=r, backup_dir=tmp_path / "b2", query_check_file=bad
        )
    assert len(r.hget("doc:7", "embedding") or b"") == 384 * 4


def test_an_in_place_alter_compares_on_the_altered_index(demo: redis.Redis, tmp_path: Path) -> None:
    """FT.ALTER (a field added in place): the queries run on the index itself before the
    ALTER and after it has re-indexed. The text and tag queries keep their top 10 exactly;
    the HNSW graph is rebuilt, so a KNN query may see a neighbour swapped (which is what the
    check is for: thresholds of 0.5 here keep the test about where it runs)."""
    r = demo
    plan = _plan(r, {"add_fields": [{"name": "words", "type": "numeric"}]}, "online")
    assert plan.online is not None and plan.online.strategy == "alter"
    knn = {"min_overlap": 0.5}
    queries = _query_file(
        tmp_path / "q.yaml", **{n: knn for n in NAMES if n not in ("socket docs", "create tag")}
    )
    report = MigrationExecutor().apply(
        plan, redis_client=r, backup_dir=tmp_path / "b", query_check_file=queries
    )
    assert report.result == "succeeded", report.error
    rows = {q.name: q for q in report.validation.queries}
    assert list(rows) == NAMES and {q.index for q in rows.values()} == {INDEX}
    assert rows["socket docs"].overlap == rows["create tag"].overlap == 1.0
    assert all(q.overlap is not None and q.overlap >= 0.5 for q in rows.values())


def test_queries_with_params_bind_them_on_source_and_target(
    demo: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    """A query with parameters besides its vector (a tag filter ``$module``) runs with the
    file's ``params`` on the source and on the target; without them the source refuses it
    and the run stops before anything changed, naming the query."""
    r = demo
    module = r.hget("doc:7", "module")
    assert module is not None
    entry = {
        "name": "filtered near doc 7",
        "query": "(@module:{$module})=>[KNN 10 @embedding $vec AS dist]",
        "vector_from_key": "doc:7",
        "params": {"module": module.decode()},
    }
    queries = tmp_path / "q.yaml"
    queries.write_bytes(msgspec.yaml.encode({"queries": [entry]}))
    plan = _plan(r, FLOAT16, "drop_recreate")
    report = MigrationExecutor().apply(
        plan, redis_url=redis_url, backup_dir=tmp_path / "b", query_check_file=queries
    )
    assert report.result == "succeeded", report.error
    (row,) = report.validation.queries
    assert row.passed and row.overlap == 1.0 and 0 < row.count_after == row.count_before <= 10
    baseline = next(e for e in _events(tmp_path / "b") if isinstance(e, QueryBaseline))
    assert baseline.queries[0].params == {"module": module.decode()}

    del entry["params"]
    queries.write_bytes(msgspec.yaml.encode({"queries": [entry]}))
    before = r.hget("doc:7", "embedding")
    refused = _cli(
        redis_url, "migrate", "apply", "--plan", str(_plan_file(r, tmp_path)),
        "--backup-dir", str(tmp_path / "c"), "--query-check-file", str(queries),
    )  # fmt: skip
    assert refused.exit_code == 2, refused.output
    assert "filtered near doc 7" in refused.output and "module" in refused.output
    assert r.hget("doc:7", "embedding") == before


def _plan_file(r: redis.Redis, tmp_path: Path) -> Path:
    path = tmp_path / "flat.yaml"
    path.write_bytes(dump_plan(_plan(r, FLAT, "drop_recreate")))
    return path
