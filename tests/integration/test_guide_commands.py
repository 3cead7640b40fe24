"""Every command line of RedisVL's migrator guide, run as ``ftctl`` on the real server.

``tests/guide/commands.txt`` holds the guide's command lines, verbatim (see its header).
Each case takes one, rewrites ``rvl`` to ``ftctl`` and the guide's
``redis://localhost:6379`` and ``/tmp/...`` to the test's server and directories, sets up
what the guide assumes at that point (its indexes and documents, its patch and schema
files, the guide's earlier commands, run the same way) and checks the effect the guide
documents: exit code, output, and what changed in Redis or on disk.

Where ftctl does differently on purpose, the README's "Differences, and why" says so and the
case checks that behaviour instead:

- ``migrate plan`` plans ``--mode auto``: online where it can. A vector datatype change
  (hash or JSON) then stops at the operator gate, because the query format changes with it
  (``apply`` ends ``awaiting_cutover``; ``migrate cutover`` finishes). A plan made with ``--mode drop_recreate`` (the plan the
  guide shows) replaces the index in one go, as the guide's apply does; both are checked.
- ``migrate rollback`` also recreates the source index, so the guide's follow-up
  ``index create --schema original_schema.yaml`` is refused (the index exists); after
  ``index delete`` it creates it.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis
import yaml
from click.testing import CliRunner

from ftctl import audit, index_info
from ftctl.cli import cli
from ftctl.plan import load_plan
from ftctl.schema.model import TagField, TextField, VectorField

GUIDE = Path(__file__).resolve().parents[1] / "guide"
ROOT = GUIDE.parents[1]
DIMS = 8
FEW = 12
MANY = 5_000
"""Documents of the crash-safe resume case: three journaled quantize batches (segments of
4 batches of the default 500 keys)."""


@dataclass(frozen=True)
class GuideCommand:
    id: str
    section: str
    text: str

    def __str__(self) -> str:
        return self.id


def _commands() -> dict[str, GuideCommand]:
    out: dict[str, GuideCommand] = {}
    for block in (GUIDE / "commands.txt").read_text().split("\n## ")[1:]:
        header, _, body = block.partition("\n")
        ident, _, section = header.partition(" | ")
        out[ident] = GuideCommand(ident, section, body.strip())
    return out


COMMANDS = _commands()


@dataclass(frozen=True)
class Outcome:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def lines(self) -> list[str]:
        return [line.strip() for line in self.stdout.splitlines()]


@dataclass
class Guide:
    """The guide's world: the test's server, working directory and the guide's commands."""

    r: redis.Redis
    url: str
    work: Path

    def argv(self, ident: str, *extra: str) -> list[str]:
        """The guide's command ``ident`` as ftctl argv (``extra`` appended)."""
        text = COMMANDS[ident].text.replace("\\\n", " ")
        text = text.replace("redis://localhost:6379", self.url).replace(
            "/tmp/", f"{self.work}/tmp/"
        )
        argv = shlex.split(text)
        assert argv[0] == "rvl", argv
        return ["ftctl", *argv[1:], *extra]

    def run(self, ident: str, *extra: str, answers: list[str] | None = None) -> Outcome:
        """Run guide command ``ident`` in-process; ``answers`` are typed at the prompts."""
        typed = "\n".join(answers) + "\n" if answers is not None else None
        result = CliRunner().invoke(
            cli, self.argv(ident, *extra)[1:], input=typed, env={"REDIS_URL": self.url}
        )
        return Outcome(result.exit_code, result.stdout, result.stderr)

    def ok(self, ident: str, *extra: str, answers: list[str] | None = None) -> Outcome:
        """:meth:`run` that must exit 0 (a step the guide takes before the one tested)."""
        done = self.run(ident, *extra, answers=answers)
        assert done.exit_code == 0, (ident, done.stdout, done.stderr)
        return done

    def ftctl(self, *args: str) -> Outcome:
        """An ftctl command the guide does not write (a setup step or a follow-up)."""
        result = CliRunner().invoke(cli, ["--url", self.url, *args])
        return Outcome(result.exit_code, result.stdout, result.stderr)

    def interrupted(self, ident: str, fault: str, how: str = "SIGINT") -> Outcome:
        """Run ``ident`` as its own process and send it ``how`` (Ctrl+C, or SIGKILL for a
        crash) exactly at journal event ``fault`` (ftctl's fault hook, ``FTCTL_FAULT``)."""
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(
                p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p
            ),
            "REDIS_URL": self.url,
            "FTCTL_FAULT": fault,
            "FTCTL_FAULT_SIGNAL": how,
        }
        done = subprocess.run(
            [sys.executable, "-c", "from ftctl.cli import main; main()", *self.argv(ident)[1:]],
            cwd=self.work, env=env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        return Outcome(done.returncode, done.stdout, done.stderr)


@pytest.fixture
def guide(r: redis.Redis, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Guide:
    """The guide's working directory (its patch files in it) and a ``tmp/`` for its /tmp."""
    for name in ("schema_patch.yaml", "quantize_patch.yaml"):
        (tmp_path / name).write_bytes((GUIDE / name).read_bytes())
    (tmp_path / "tmp").mkdir()
    monkeypatch.chdir(tmp_path)
    return Guide(r, redis_url, tmp_path)


# --- what the guide assumes exists ------------------------------------------------------------


def vectors(count: int) -> np.ndarray:
    return np.random.default_rng(14).standard_normal((count, DIMS)).astype(np.float32)


def _wait(r: redis.Redis, name: str) -> None:
    deadline = time.monotonic() + 30
    while index_info(name, redis_client=r).stats.indexing:
        assert time.monotonic() < deadline, f"{name} still indexing"
        time.sleep(0.01)


VECTOR = ["VECTOR", "HNSW", "6", "TYPE", "FLOAT32", "DIM", str(DIMS), "DISTANCE_METRIC", "COSINE"]


def hash_myindex(r: redis.Redis, docs: int = FEW) -> None:
    """The wizard's ``myindex``: hash, title (text) and embedding (vector), as the guide's
    wizard session shows it; documents also hold the ``category`` the session adds."""
    r.execute_command(
        "FT.CREATE", "myindex", "ON", "HASH", "PREFIX", "1", "doc:", "SCHEMA",
        "title", "TEXT", "embedding", *VECTOR,
    )  # fmt: skip
    pipe = r.pipeline(transaction=False)
    for i, v in enumerate(vectors(docs)):
        category = "news|sports" if i % 2 else "tech"
        pipe.hset(f"doc:{i + 1}", mapping={"title": f"title {i}", "category": category,
                                           "embedding": v.tobytes()})  # fmt: skip
    pipe.execute()
    _wait(r, "myindex")


def json_myindex(r: redis.Redis) -> None:
    """Step 3's ``myindex``: JSON on ``doc:`` with title, the ``legacy_field`` the guide's
    patch removes, and embedding; documents also hold the ``category`` it adds."""
    r.execute_command(
        "FT.CREATE", "myindex", "ON", "JSON", "PREFIX", "1", "doc:", "SCHEMA",
        "$.title", "AS", "title", "TEXT", "$.legacy_field", "AS", "legacy_field", "TAG",
        "$.embedding", "AS", "embedding", *VECTOR,
    )  # fmt: skip
    for i, v in enumerate(vectors(FEW)):
        doc = {"title": f"title {i}", "legacy_field": "old",
               "category": "news|sports" if i % 2 else "tech", "embedding": v.tolist()}  # fmt: skip
        r.execute_command("JSON.SET", f"doc:{i + 1}", "$", json.dumps(doc))
    _wait(r, "myindex")


BATCH = ("orders_idx", "products_idx", "users_idx")
"""The guide's batch indexes, in the order ftctl runs them (sorted)."""


def batch_indexes(r: redis.Redis) -> None:
    """``products_idx``, ``users_idx``, ``orders_idx`` (hash, an ``embedding`` each, disjoint
    prefixes) and the guide's ``legacy_idx``, which has no ``embedding``."""
    for name in (*BATCH, "legacy_idx"):
        prefix = f"{name.split('_')[0]}:"
        vector = [] if name == "legacy_idx" else ["embedding", *VECTOR]
        r.execute_command("FT.CREATE", name, "ON", "HASH", "PREFIX", "1", prefix, "SCHEMA",
                          "title", "TEXT", *vector)  # fmt: skip
        for i, v in enumerate(vectors(FEW)):
            r.hset(f"{prefix}{i}", mapping={"title": "t", "embedding": v.tobytes()})
        _wait(r, name)


def recreate_index(r: redis.Redis, name: str) -> None:
    """FT.CREATE ``name`` again as :func:`batch_indexes` made it (its documents are there)."""
    prefix = f"{name.split('_')[0]}:"
    r.execute_command("FT.CREATE", name, "ON", "HASH", "PREFIX", "1", prefix, "SCHEMA",
                      "title", "TEXT", "embedding", *VECTOR)  # fmt: skip
    _wait(r, name)


def stored(r: redis.Redis, prefix: str, count: int, dtype: str, first: int = 1) -> bool:
    """Whether each document ``<prefix><first..>`` holds its seeded vector as ``dtype``."""
    return all(
        r.hget(f"{prefix}{i + first}", "embedding") == v.astype(dtype).tobytes()
        for i, v in enumerate(vectors(count))
    )


def vector_field(r: redis.Redis, name: str, field: str = "embedding") -> VectorField:
    found = index_info(name, redis_client=r).schema.field(field)
    assert isinstance(found, VectorField)
    return found


def found(r: redis.Redis, name: str, query: str = "*") -> int:
    reply = r.execute_command("FT.SEARCH", name, query, "LIMIT", "0", "0")
    return int(reply[b"total_results"])


def events(directory: Path, index: str | None = None) -> list[tuple[str, str, int | None]]:
    """(event, step, batch) of every record of the journal(s) under ``directory``."""
    return [(row.event, row.step, row.batch) for t in audit.inspect(directory, index=index)
            for row in t.rows]  # fmt: skip


def report(path: str | Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(Path(path).read_text())
    return loaded


# The guide's two wizard sessions, as typed (Option A).
ADD_CATEGORY = ["1", "category", "tag", "n", "|", "8"]
QUANTIZE = ["2", "2", "", "float16", "", "", "", "8"]

ADD_CATEGORY_SHOWS = [
    "Building a migration plan for index 'myindex'",
    "Current schema:",
    "- Index name: myindex",
    "- Storage type: hash",
    "- title (text)",
    "- embedding (vector)",
    "Choose an action:",
    "2. Update field (sortable, weight, separator, vector config)",
    "3. Remove field",
    "4. Rename field (rename field in all documents)",
    "5. Rename index (change index name)",
    "6. Change prefix (rename all keys)",
    "7. Preview patch (show pending changes as YAML)",
    "8. Finish",
    "Field type options: text, tag, numeric, geo",
    "Sortable: enables sorting and aggregation on this field",
    "Separator: character that splits multiple values (default: comma)",
    "Separator [leave blank to keep existing/default]",
    "Migration plan written to migration_plan.yaml",
    "Mode: drop_recreate",
    "Supported: True",
    "Warnings:",
    "- Index downtime is required",
]
QUANTIZE_SHOWS = [
    "Updatable fields:",
    "1. title (text)",
    "2. embedding (vector)",
    "Select a field to update by number or name",
    "Current vector config for 'embedding':",
    "algorithm: HNSW",
    "datatype: float32",
    "distance_metric: cosine",
    f"dims: {DIMS} (cannot be changed)",
    "m: 16",
    "ef_construction: 200",
    "Leave blank to keep current value.",
    "Algorithm: vector search method (FLAT=brute force, HNSW=graph, SVS-VAMANA=compressed graph)",
    "Algorithm [current: HNSW]",
    "Datatype: float16, float32, bfloat16, float64, int8, uint8",
    "(float16 reduces memory ~50%, int8/uint8 reduce ~75%)",
    "Datatype [current: float32]",
    "Distance metric: how similarity is measured (cosine, l2, ip)",
    "M: number of connections per node (higher=better recall, more memory)",
    "EF_CONSTRUCTION: build-time search depth (higher=better recall, slower build)",
    "Migration plan written to migration_plan.yaml",
    "Mode: drop_recreate",
    "Supported: True",
]


def shows(out: Outcome, expected: list[str]) -> None:
    missing = [line for line in expected if line not in out.stdout]
    assert not missing, (missing, out.stdout)


# --- one check per guide command ---------------------------------------------------------------

Case = Callable[[Guide, GuideCommand], None]
CASES: dict[str, Case] = {}


def case(ident: str) -> Callable[[Case], Case]:
    def register(fn: Case) -> Case:
        assert ident in COMMANDS, ident
        CASES[ident] = fn
        return fn

    return register


@case("quickstart-listall")
def _quickstart_listall(g: Guide, c: GuideCommand) -> None:
    """Lists the server's indexes under the guide's ``Indices:`` header."""
    hash_myindex(g.r)
    out = g.run(c.id)
    assert out.exit_code == 0
    assert out.stdout == "Indices:\n1. myindex\n"


@case("quickstart-wizard")
def _quickstart_wizard(g: Guide, c: GuideCommand) -> None:
    """The guide's session (add tag field ``category``, separator ``|``) prints what the
    guide shows and writes ``migration_plan.yaml`` in drop_recreate mode."""
    hash_myindex(g.r)
    out = g.run(c.id, answers=ADD_CATEGORY)
    assert out.exit_code == 0, out.stderr
    shows(out, ADD_CATEGORY_SHOWS)
    plan = load_plan("migration_plan.yaml")
    assert plan.mode == "drop_recreate" and plan.supported
    added = plan.merged_target_schema.field("category")
    assert isinstance(added, TagField) and added.attrs.separator == "|"
    assert index_info("myindex", redis_client=g.r).schema.field("category") is None


@case("quickstart-apply")
def _quickstart_apply(g: Guide, c: GuideCommand) -> None:
    """Applies the wizard's plan: myindex gains ``category`` (its documents' values are
    searchable), the journal is in ./migration_backups."""
    hash_myindex(g.r)
    g.ok("quickstart-wizard", answers=ADD_CATEGORY)
    out = g.run(c.id)
    assert out.exit_code == 0, out.stderr
    assert "Result: succeeded" in out.lines
    assert isinstance(index_info("myindex", redis_client=g.r).schema.field("category"), TagField)
    assert found(g.r, "myindex", "@category:{sports}") == FEW // 2
    assert (g.work / "migration_backups" / "myindex" / "journal.log").is_file()


@case("quickstart-validate")
def _quickstart_validate(g: Guide, c: GuideCommand) -> None:
    """After the apply, validation passes (schema and document count) and exits 0."""
    hash_myindex(g.r)
    g.ok("quickstart-wizard", answers=ADD_CATEGORY)
    g.ok("quickstart-apply")
    out = g.run(c.id)
    assert out.exit_code == 0, out.stdout
    assert "Result: succeeded" in out.lines
    assert "[ok  ] schema_match: matches the plan" in out.lines
    assert any(line.startswith("[ok  ] doc_count:") for line in out.lines)


@case("step1-listall")
def _step1_listall(g: Guide, c: GuideCommand) -> None:
    """The guide's example: ``Indices:`` then the three indexes, numbered (ftctl sorts)."""
    for name in ("products_idx", "users_idx", "orders_idx"):
        g.r.execute_command("FT.CREATE", name, "PREFIX", "1", f"{name}:", "SCHEMA", "t", "TEXT")
    out = g.run(c.id)
    assert out.exit_code == 0
    assert out.lines == ["Indices:", "1. orders_idx", "2. products_idx", "3. users_idx"]


@case("step2a-wizard")
def _step2a_wizard(g: Guide, c: GuideCommand) -> None:
    """Both example sessions: adding a field, and quantizing the vector to float16 (every
    prompt and the current vector config as the guide shows them)."""
    hash_myindex(g.r)
    added = g.run(c.id, answers=ADD_CATEGORY)
    assert added.exit_code == 0
    shows(added, ADD_CATEGORY_SHOWS)
    quantized = g.run(c.id, answers=QUANTIZE)
    assert quantized.exit_code == 0, quantized.stderr
    shows(quantized, QUANTIZE_SHOWS)
    target = load_plan("migration_plan.yaml").merged_target_schema.field("embedding")
    assert isinstance(target, VectorField) and target.attrs.datatype == "float16"
    assert target.attrs.algorithm == "hnsw" and target.attrs.distance_metric == "cosine"


@case("step2b-plan")
def _step2b_plan(g: Guide, c: GuideCommand) -> None:
    """The guide's schema patch on Step 3's JSON myindex: a plan with the guide's sections
    (snapshot, requested changes, merged target schema, classification, renames, warnings).
    ``--mode auto`` (README) plans it online; ``--mode drop_recreate`` gives the guide's
    mode and downtime warning. On a hash index the patch's ``path: $.category`` warns."""
    json_myindex(g.r)
    out = g.run(c.id)
    assert out.exit_code == 0, out.stderr
    assert "Migration plan written to migration_plan.yaml" in out.lines
    assert "Supported: True" in out.lines
    raw = report("migration_plan.yaml")
    assert list(raw)[:9] == [
        "version", "mode", "mode_reason", "source", "requested_changes", "merged_target_schema",
        "diff_classification", "rename_operations", "warnings",
    ]  # fmt: skip
    assert raw["source"]["stats_snapshot"]["num_docs"] == FEW
    assert raw["source"]["keyspace"]["prefixes"] == ["doc:"]
    assert raw["source"]["keyspace"]["key_sample"]
    assert [f["name"] for f in raw["requested_changes"]["add_fields"]] == ["category"]
    assert raw["requested_changes"]["remove_fields"] == ["legacy_field"]
    assert raw["diff_classification"] == {"supported": True, "blocked_reasons": []}
    assert raw["rename_operations"] == {
        "rename_index": None, "change_prefix": None, "rename_fields": []
    }  # fmt: skip
    plan = load_plan("migration_plan.yaml")
    target = plan.merged_target_schema
    assert [f.name for f in target.fields] == ["title", "embedding", "category"]
    title, embedding = target.field("title"), target.field("embedding")
    assert isinstance(title, TextField) and title.attrs.sortable
    assert isinstance(embedding, VectorField) and embedding.attrs.datatype == "float16"
    assert plan.mode == "online" and plan.mode_reason.startswith("auto:")
    assert (
        plan.warnings
        and index_info("myindex", redis_client=g.r).schema == plan.source.schema_snapshot
    )
    as_guide = g.run(c.id, "--mode", "drop_recreate")
    assert as_guide.exit_code == 0
    plan = load_plan("migration_plan.yaml")
    assert plan.mode == "drop_recreate"
    assert plan.warnings[0].startswith("Index downtime is required")
    g.r.flushall()
    hash_myindex(g.r)
    g.r.execute_command("FT.ALTER", "myindex", "SCHEMA", "ADD", "legacy_field", "TAG")
    on_hash = g.run(c.id)
    assert on_hash.exit_code == 0
    assert any("path '$.category' is the name of a hash field" in w
               for w in load_plan("migration_plan.yaml").warnings)  # fmt: skip


@case("step2c-plan")
def _step2c_plan(g: Guide, c: GuideCommand) -> None:
    """A complete target schema (the live one plus ``category``, title sortable): the plan's
    merged target is that schema, with no patch and no renames."""
    hash_myindex(g.r)
    Path("target_schema.yaml").write_text(TARGET_SCHEMA)
    out = g.run(c.id)
    assert out.exit_code == 0, out.stderr
    assert "Supported: True" in out.lines
    plan = load_plan("migration_plan.yaml")
    assert plan.requested_changes is None and plan.rename_operations.is_empty()
    target = plan.merged_target_schema
    assert [f.name for f in target.fields] == ["title", "embedding", "category"]
    assert isinstance(target.field("category"), TagField)


ORIGINAL_SCHEMA = f"""\
index: {{name: myindex, prefix: "doc:", storage_type: hash}}
fields:
  - {{name: title, type: text}}
  - name: embedding
    type: vector
    attrs: {{dims: {DIMS}, algorithm: hnsw, datatype: float32, distance_metric: cosine}}
"""
TARGET_SCHEMA = f"""\
index: {{name: myindex, prefix: "doc:", storage_type: hash}}
fields:
  - {{name: title, type: text, attrs: {{sortable: true}}}}
  - name: embedding
    type: vector
    attrs: {{dims: {DIMS}, algorithm: hnsw, datatype: float32, distance_metric: cosine}}
  - {{name: category, type: tag, attrs: {{separator: "|"}}}}
"""


def _patched(g: Guide) -> None:
    """myindex has the guide's patched schema, and still answers for its documents."""
    live = index_info("myindex", redis_client=g.r).schema
    assert [f.name for f in live.fields] == ["title", "embedding", "category"]
    assert vector_field(g.r, "myindex").attrs.datatype == "float16"
    assert found(g.r, "myindex", "@category:{sports}") == FEW // 2


def _cut_over(g: Guide, backups: Path) -> None:
    """``migrate cutover`` of the online apply waiting at the gate in ``backups``."""
    cut = g.ftctl("migrate", "cutover", "--backup-dir", str(backups))
    assert cut.exit_code == 0, cut.stdout
    assert "Result: succeeded" in cut.stdout


@case("step4-apply")
def _step4_apply(g: Guide, c: GuideCommand) -> None:
    """Applies Step 2's plan (online: the float16 change waits at the cut-over gate, the
    source still serving); after ``migrate cutover`` the index has the patched schema, and
    the report (with the guide's timing keys) and benchmark report are written."""
    json_myindex(g.r)
    g.ok("step2b-plan")
    out = g.run(c.id)
    assert out.exit_code == 0, out.stderr
    assert "Result: awaiting_cutover" in out.lines
    assert vector_field(g.r, "myindex").attrs.datatype == "float32"
    assert report("benchmark_report.yaml")
    _cut_over(g, g.work / "migration_backups")
    _patched(g)
    written = report("migration_report.yaml")
    assert written["result"] == "awaiting_cutover"  # the apply's report; cutover's is printed
    assert "total_migration_duration_seconds" in written["timings"]


@case("async-apply")
def _async_apply(g: Guide, c: GuideCommand) -> None:
    """``--async`` runs the same migration through the asyncio executor, same result."""
    json_myindex(g.r)
    g.ok("step2b-plan")
    out = g.run(c.id)
    assert out.exit_code == 0, out.stderr
    assert "Result: awaiting_cutover" in out.lines
    _cut_over(g, g.work / "migration_backups")
    _patched(g)


def _quantize_plan(g: Guide, path: str = "migration_plan.yaml", *mode: str) -> None:
    """A float32 → float16 plan of hash myindex, made as the guide makes plans (Option B's
    command with the guide's quantize patch); ``mode`` adds ``--mode``."""
    made = g.ftctl("migrate", "plan", "--index", "myindex", "--schema-patch",
                   "quantize_patch.yaml", "--plan-out", path, *mode)  # fmt: skip
    assert made.exit_code == 0, made.stderr


ESTIMATE_SHOWS = [
    "Pre-migration disk space estimate:",
    f"Index: myindex ({FEW} documents)",
    f"Vector field 'embedding': {DIMS} dims, float32 -> float16",
    "RDB snapshot (BGSAVE): ~",
    "Total new disk required: ~",
    f"Post-migration memory savings: ~{FEW * DIMS * 2} B (50% reduction)",
]


@case("crashsafe-estimate")
def _crashsafe_estimate(g: Guide, c: GuideCommand) -> None:
    """A dry run: the guide's estimate lines, AOF not estimated, nothing touched in Redis."""
    hash_myindex(g.r)
    _quantize_plan(g)
    before = (g.r.dbsize(), g.r.execute_command("FT._LIST"))
    out = g.run(c.id)
    assert out.exit_code == 0, out.stderr
    shows(out, ESTIMATE_SHOWS)
    assert "AOF growth: not estimated (pass --aof-enabled if AOF is on)" in out.lines
    assert (g.r.dbsize(), g.r.execute_command("FT._LIST")) == before


@case("crashsafe-estimate-aof")
def _crashsafe_estimate_aof(g: Guide, c: GuideCommand) -> None:
    """``--aof-enabled`` estimates the AOF growth too."""
    hash_myindex(g.r)
    _quantize_plan(g)
    out = g.run(c.id)
    assert out.exit_code == 0
    shows(out, ESTIMATE_SHOWS)
    assert any(re.fullmatch(r"AOF growth: ~[\d.]+ [KM]?B", line) for line in out.lines), out.lines


@case("crashsafe-apply")
def _crashsafe_apply(g: Guide, c: GuideCommand) -> None:
    """A new backup (journal and vector segments) in /tmp/migration_backups. The plan as
    ``migrate plan`` writes it runs online and stops at the cut-over gate (README): the
    guide's next step, validate, fails until ``migrate cutover`` has swapped the new index
    in. A ``--mode drop_recreate`` plan, the guide's, finishes in this one apply."""
    hash_myindex(g.r)
    _quantize_plan(g)
    backups = g.work / "tmp" / "migration_backups"
    out = g.run(c.id)
    assert out.exit_code == 0, out.stderr
    assert report("migration_report.yaml")["result"] == "awaiting_cutover"
    assert out.stdout.count(f"ftctl migrate cutover --backup-dir {backups}") == 1
    assert "The shadow index is built and verified; the source still serves." in out.lines
    assert list((backups / "myindex" / "segments").glob("*.zst"))
    assert vector_field(g.r, "myindex").attrs.datatype == "float32"
    assert found(g.r, "myindex") == FEW
    early = g.run("step5-validate")
    assert early.exit_code == 1
    assert "attrs.datatype expected 'float16', found 'float32'" in early.stdout
    assert "needs 'ftctl migrate cutover --backup-dir" in early.stdout
    assert "re-run the same apply" not in early.stdout
    cut = g.ftctl("migrate", "cutover", "--backup-dir", str(backups))
    assert cut.exit_code == 0, cut.stdout
    assert vector_field(g.r, "myindex").attrs.datatype == "float16"
    assert stored(g.r, "doc:", FEW, "<f2")
    assert g.run("step5-validate").exit_code == 0

    g.r.flushall()
    hash_myindex(g.r)
    _quantize_plan(g, "migration_plan.yaml", "--mode", "drop_recreate")
    (backups / "myindex").rename(g.work / "earlier-run")
    out = g.run(c.id)
    assert out.exit_code == 0, out.stderr
    assert report("migration_report.yaml")["result"] == "succeeded"
    assert vector_field(g.r, "myindex").attrs.datatype == "float16"
    assert stored(g.r, "doc:", FEW, "<f2")


@case("crashsafe-rerun")
def _crashsafe_rerun(g: Guide, c: GuideCommand) -> None:
    """The guide's plan (drop_recreate), its process killed during quantization (batch 1 of
    3 written, not yet journaled); re-running the exact command skips the journaled
    batches, finishes, and every vector is the float16 of its original: nothing converted
    twice or lost."""
    hash_myindex(g.r, MANY)
    _quantize_plan(g, "migration_plan.yaml", "--mode", "drop_recreate")
    stopped = g.interrupted(c.id, "before:batch_done:quantize:1", "SIGKILL")
    assert stopped.exit_code == -9, stopped.stderr
    out = g.run(c.id)
    assert out.exit_code == 0, out.stderr
    assert report("migration_report.yaml")["result"] == "succeeded"
    journal = events(g.work / "tmp" / "migration_backups")
    second_run = [i for i, (e, _, _) in enumerate(journal) if e == "run_started"][1]
    done = [b for e, s, b in journal if (e, s) == ("batch_done", "quantize")]
    before = [b for e, s, b in journal[:second_run] if (e, s) == ("batch_done", "quantize")]
    assert sorted(done) == [0, 1, 2] and 1 not in before
    assert stored(g.r, "doc:", MANY, "<f2")


@case("step5-validate")
def _step5_validate(g: Guide, c: GuideCommand) -> None:
    """After Step 4, validation on its own: schema, document count, sampled keys, indexing
    failures, all passed, in the --report-out file."""
    json_myindex(g.r)
    g.ok("step2b-plan")
    g.ok("step4-apply")
    _cut_over(g, g.work / "migration_backups")
    out = g.run(c.id)
    assert out.exit_code == 0, out.stdout
    written = report("migration_report.yaml")
    assert written["result"] == "succeeded"
    checks = {x["check"]: x["passed"] for x in written["validation"]["checks"]}
    for name in ("schema_match", "doc_count", "key_sample", "indexing_failures"):
        assert checks[name] is True, name


@case("recover-info")
def _recover_info(g: Guide, c: GuideCommand) -> None:
    """Without --url (the server from $REDIS_URL): the index's schema and documents when it
    exists; exit 2 "does not exist" when it was dropped."""
    hash_myindex(g.r)
    out = g.run(c.id)
    assert out.exit_code == 0
    assert (
        out.lines[0] == "Index: myindex" and f"Documents: {FEW} (indexing failures: 0)" in out.lines
    )
    g.r.execute_command("FT.DROPINDEX", "myindex")
    gone = g.run(c.id)
    assert gone.exit_code == 2 and "index 'myindex' does not exist" in gone.stderr


def _interrupted_online(g: Guide, c: GuideCommand) -> Path:
    """plan.yaml as ``migrate plan`` writes it (online), its apply stopped by Ctrl+C once the
    float16 copies are written; returns the backup dir."""
    hash_myindex(g.r)
    _quantize_plan(g, "plan.yaml")
    stopped = g.interrupted(c.id, "after:step_finished:expand")
    assert stopped.exit_code == 130, stopped.stderr
    assert "interrupted" in stopped.stderr
    return g.work / "tmp" / "backups"


@case("resume-interrupted")
def _resume_interrupted(g: Guide, c: GuideCommand) -> None:
    """``--workers 4``, interrupted: exit 130 with where the journal is, and the index still
    serves every document with its original vector (nothing lost)."""
    backups = _interrupted_online(g, c)
    assert (backups / "myindex" / "journal.log").is_file()
    assert found(g.r, "myindex") == FEW
    assert vector_field(g.r, "myindex").attrs.datatype == "float32"
    assert stored(g.r, "doc:", FEW, "<f4")


@case("resume-rerun")
def _resume_rerun(g: Guide, c: GuideCommand) -> None:
    """Re-running the interrupted command resumes from the journal (the finished expand
    step is not run again) up to the cut-over gate; cutover finishes with exact vectors."""
    backups = _interrupted_online(g, c)
    out = g.run(c.id)
    assert out.exit_code == 0, out.stderr
    assert "Result: awaiting_cutover" in out.lines
    assert [e for e, s, _ in events(backups) if s == "expand"].count("step_started") == 1
    assert g.ftctl("migrate", "cutover", "--backup-dir", str(backups)).exit_code == 0
    assert stored(g.r, "doc:", FEW, "<f2")


def _applied_drop_recreate(g: Guide) -> None:
    """plan.yaml in the guide's mode, applied with the guide's command to /tmp/backups."""
    hash_myindex(g.r)
    _quantize_plan(g, "plan.yaml", "--mode", "drop_recreate")
    g.ok("resume-interrupted")
    assert stored(g.r, "doc:", FEW, "<f2")


@case("rollback")
def _rollback(g: Guide, c: GuideCommand) -> None:
    """Every original float32 vector is back, byte for byte. ftctl also recreates the
    source index (README: the guide's rollback restores data only)."""
    _applied_drop_recreate(g)
    out = g.run(c.id)
    assert out.exit_code == 0, out.stdout
    assert stored(g.r, "doc:", FEW, "<f4")
    assert vector_field(g.r, "myindex").attrs.datatype == "float32"
    assert found(g.r, "myindex") == FEW


@case("rollback-recreate")
def _rollback_recreate(g: Guide, c: GuideCommand) -> None:
    """After ftctl's rollback the index is there, so creating it is refused (exit 2,
    nothing changed: README); once the index is deleted, the command recreates it."""
    _applied_drop_recreate(g)
    g.ok("rollback")
    Path("original_schema.yaml").write_text(ORIGINAL_SCHEMA)
    refused = g.run(c.id)
    assert refused.exit_code == 2 and "index 'myindex' already exists" in refused.stderr
    assert g.ftctl("index", "delete", "--index", "myindex").exit_code == 0
    out = g.run(c.id)
    assert out.exit_code == 0 and out.lines == ["Index created: myindex"]
    _wait(g.r, "myindex")
    assert found(g.r, "myindex") == FEW
    assert vector_field(g.r, "myindex").attrs.datatype == "float32"


def _batch_plan(path: str = "batch_plan.yaml") -> dict[str, Any]:
    raw = report(path)
    assert raw["requires_quantization"] is True
    return raw


def _applicable(raw: dict[str, Any]) -> list[str]:
    return [i["name"] for i in raw["indexes"] if i["applicable"]]


@case("batch-quickstart-plan")
def _batch_quickstart_plan(g: Guide, c: GuideCommand) -> None:
    """Every ``*_idx`` index with an ``embedding`` gets its own plan; ``legacy_idx`` is
    skipped with the reason (field 'embedding' not found); fail_fast by default."""
    batch_indexes(g.r)
    out = g.run(c.id)
    assert out.exit_code == 0, out.stderr
    raw = _batch_plan()
    assert raw["failure_policy"] == "fail_fast"
    assert _applicable(raw) == list(BATCH)
    (legacy,) = [i for i in raw["indexes"] if not i["applicable"]]
    assert legacy["name"] == "legacy_idx" and "'embedding'" in legacy["skip_reason"]
    for name in BATCH:
        assert load_plan(Path("plans") / f"{name}.yaml").supported


@case("batch-quickstart-apply")
def _batch_quickstart_apply(g: Guide, c: GuideCommand) -> None:
    """Quantizes each applicable index; batch_state.yaml and ./reports/ by default."""
    batch_indexes(g.r)
    g.ok("batch-quickstart-plan")
    out = g.run(c.id)
    assert out.exit_code == 0, out.stderr
    for name in BATCH:
        assert vector_field(g.r, name).attrs.datatype == "float16"
        assert stored(g.r, f"{name.split('_')[0]}:", FEW, "<f2", first=0)
    assert report("batch_state.yaml")["status"] == "completed"
    assert (Path("reports") / "batch_report.yaml").is_file()


def _status_lines(g: Guide, ident: str) -> list[str]:
    out = g.run(ident)
    assert out.exit_code == 0
    return out.lines


@case("batch-quickstart-status")
def _batch_quickstart_status(g: Guide, c: GuideCommand) -> None:
    """The guide's status layout: batch id, times, each completed index with its time."""
    batch_indexes(g.r)
    g.ok("batch-quickstart-plan")
    g.ok("batch-quickstart-apply")
    lines = _status_lines(g, c.id)
    batch_id = report("batch_state.yaml")["batch_id"]
    assert lines[:3] == [
        "Batch Migration Status",
        "======================",
        f"Batch ID: {batch_id}",
    ]
    for prefix in ("Started: ", "Updated: "):
        assert any(line.startswith(prefix) for line in lines), prefix
    assert "Completed: 3" in lines
    for name in BATCH:
        assert any(re.fullmatch(rf"- {name}: success \(\d\d:\d\d:\d\d\)", x) for x in lines), name
    assert "In Progress: -" in lines and "Remaining: 0" in lines


@case("batch-plan-pattern")
def _batch_plan_pattern(g: Guide, c: GuideCommand) -> None:
    """``--pattern "*_idx"`` selects the indexes whose names match (legacy_idx matches and
    is skipped for its missing field); an index named otherwise is not considered."""
    batch_indexes(g.r)
    g.r.execute_command("FT.CREATE", "catalog", "PREFIX", "1", "catalog:", "SCHEMA", "t", "TEXT")
    assert g.run(c.id).exit_code == 0
    raw = _batch_plan()
    assert sorted(i["name"] for i in raw["indexes"]) == sorted([*BATCH, "legacy_idx"])
    assert _applicable(raw) == list(BATCH)


@case("batch-plan-indexes")
def _batch_plan_indexes(g: Guide, c: GuideCommand) -> None:
    """``--indexes a,b,c`` plans exactly those three."""
    batch_indexes(g.r)
    assert g.run(c.id).exit_code == 0
    raw = _batch_plan()
    assert sorted(i["name"] for i in raw["indexes"]) == list(BATCH) == sorted(_applicable(raw))


@case("batch-plan-indexes-file")
def _batch_plan_indexes_file(g: Guide, c: GuideCommand) -> None:
    """``--indexes-file`` reads the names, one a line (the guide's ``echo -e`` file)."""
    batch_indexes(g.r)
    Path("indexes.txt").write_text("products_idx\nusers_idx\norders_idx\n")
    assert g.run(c.id).exit_code == 0
    raw = _batch_plan()
    assert sorted(i["name"] for i in raw["indexes"]) == list(BATCH) == sorted(_applicable(raw))


@case("batch-apply-fail-fast")
def _batch_apply_fail_fast(g: Guide, c: GuideCommand) -> None:
    """fail_fast stops at the first failure: orders_idx (dropped after planning) fails,
    the indexes after it are not run and keep their float32 vectors; exit 1."""
    batch_indexes(g.r)
    g.ok("batch-quickstart-plan")
    g.r.execute_command("FT.DROPINDEX", "orders_idx")
    out = g.run(c.id)
    assert out.exit_code == 1
    state = report("batch_state.yaml")
    assert state["status"] == "failed"
    assert [(x["name"], x["status"]) for x in state["completed"]] == [("orders_idx", "failed")]
    assert state["remaining"] == ["products_idx", "users_idx"]
    for name in ("products_idx", "users_idx"):
        assert vector_field(g.r, name).attrs.datatype == "float32"


@case("batch-plan-continue")
def _batch_plan_continue(g: Guide, c: GuideCommand) -> None:
    """``--failure-policy continue_on_error`` is stored in the batch plan."""
    batch_indexes(g.r)
    assert g.run(c.id).exit_code == 0
    raw = _batch_plan()
    assert raw["failure_policy"] == "continue_on_error"
    assert _applicable(raw) == list(BATCH)


@case("batch-apply-continue")
def _batch_apply_continue(g: Guide, c: GuideCommand) -> None:
    """With continue_on_error a failed index (dropped after planning) does not stop the
    others: they are quantized; the batch ends partial_failure, exit 1."""
    batch_indexes(g.r)
    g.ok("batch-plan-continue")
    g.r.execute_command("FT.DROPINDEX", "orders_idx")
    out = g.run(c.id)
    assert out.exit_code == 1
    state = report("batch_state.yaml")
    assert state["status"] == "partial_failure"
    assert {x["name"]: x["status"] for x in state["completed"]} == {
        "orders_idx": "failed", "products_idx": "success", "users_idx": "success"
    }  # fmt: skip
    for name in ("products_idx", "users_idx"):
        assert vector_field(g.r, name).attrs.datatype == "float16"


@case("batch-resume")
def _batch_resume(g: Guide, c: GuideCommand) -> None:
    """A batch-apply interrupted inside its first index resumes from the state file and
    finishes every index, each vector converted exactly once."""
    batch_indexes(g.r)
    g.ok("batch-quickstart-plan")
    stopped = g.interrupted("batch-quickstart-apply", "after:batch_done:quantize:0")
    assert stopped.exit_code == 130, stopped.stderr
    assert report("batch_state.yaml")["status"] == "in_progress"
    out = g.run(c.id)
    assert out.exit_code == 0, out.stderr
    assert report("batch_state.yaml")["status"] == "completed"
    for name in BATCH:
        assert stored(g.r, f"{name.split('_')[0]}:", FEW, "<f2", first=0), name


def _partial_failure(g: Guide) -> None:
    """A continue_on_error batch whose users_idx was missing when it ran (partial_failure)."""
    batch_indexes(g.r)
    g.ok("batch-plan-continue")
    g.r.execute_command("FT.DROPINDEX", "users_idx")
    assert g.run("batch-apply-continue").exit_code == 1


@case("batch-resume-retry")
def _batch_resume_retry(g: Guide, c: GuideCommand) -> None:
    """``--retry-failed`` runs the failed index again (here: once it exists again) and the
    batch completes."""
    _partial_failure(g)
    recreate_index(g.r, "users_idx")
    out = g.run(c.id)
    assert out.exit_code == 0, out.stderr
    state = report("batch_state.yaml")
    assert state["status"] == "completed"
    assert {x["name"]: x["status"] for x in state["completed"]}["users_idx"] == "success"
    assert stored(g.r, "users:", FEW, "<f2", first=0)


@case("batch-status")
def _batch_status(g: Guide, c: GuideCommand) -> None:
    """The guide's example shape for a failed index: ``- users_idx: failed - <error> (time)``."""
    _partial_failure(g)
    lines = _status_lines(g, c.id)
    assert "Completed: 3" in lines
    assert any(re.fullmatch(r"- orders_idx: success \(\d\d:\d\d:\d\d\)", x) for x in lines)
    (failed,) = [x for x in lines if x.startswith("- users_idx: failed - ")]
    error = report("batch_state.yaml")["completed"][-1]["error"]
    assert "'users_idx'" in error
    assert re.fullmatch(rf"- users_idx: failed - {re.escape(error)} \(\d\d:\d\d:\d\d\)", failed)
    assert lines[-2:] == ["Failed: 1", f"- users_idx: {error}"]


def test_every_guide_command_has_a_case() -> None:
    """commands.txt lists the guide's 32 command lines, each with a case here."""
    assert len(COMMANDS) == 32
    assert set(CASES) == set(COMMANDS)
    assert all(c.text.startswith("rvl ") for c in COMMANDS.values())


@pytest.mark.parametrize("command", list(COMMANDS.values()), ids=str)
def test_guide_command(command: GuideCommand, guide: Guide) -> None:
    """The guide's command line, as ftctl, has the effect the guide documents (or the one
    README's differences say ftctl has instead); see each case's docstring."""
    CASES[command.id](guide, command)
