"""Online crash-test kit: a small HASH index with an alias, its online plans, what the public
names resolve to, and the child process the tests SIGKILL.

Every scenario lives in its own namespace (``o012_``): index ``o012_docs`` on prefix
``o012_doc:`` with alias ``o012_alias``. Two online plans are made against it by the planner:

- ``shadow``: the vector field's algorithm HNSW → FLAT (a shadow index is built and swapped in);
- ``alter``: a TAG field ``color`` is added (FT.ALTER SCHEMA ADD in place).

Online mode never rewrites a document, so the documents of a scenario must stay byte for
byte what :func:`seed` wrote, whatever was killed where; what changes is only which index the
public names (the index name and the alias) resolve to, and that index's schema.

Run through :func:`child` in a forked process it is the child that the tests SIGKILL::

    child([VERB, RUNNER, URL, WORKDIR, WORKERS], fault, log)

``VERB`` is apply | resume | rollback | cutover | abort, ``RUNNER`` sync | async
(``child(["where"], "", log)`` prints where ftctl was imported from). It prints
one JSON line with the report's result (or the FtctlError it raised) and exits 0 when the
result is succeeded, rolled_back or awaiting_cutover, 1 when it is failed, and the error's
exit code (2: refused, nothing changed) when one was raised.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import redis
import redis.asyncio

from ftctl.executor import AsyncMigrationExecutor, MigrationExecutor
from ftctl.journal.report import MigrationReport
from ftctl.plan import dump_plan, patch_from_builtins
from ftctl.plan.models import MigrationPlan
from ftctl.planner import MigrationPlanner
from ftctl.schema.compare import reported_differences
from ftctl.schema.ftinfo import parse_ft_info
from ftctl.schema.model import IndexSchema
from ftctl.steps.history import HISTORY_KEY_PREFIX
from ftctl.steps.spec import named

DOCS = 120
DIMS = 8
FIELDS = ("title", "tag", "emb", "color")
"""Every field a document may have."""
FAR = 4_102_444_800_000
"""2100-01-01 in ms: absolute expiry times compare exactly."""

PATCHES: dict[str, dict[str, object]] = {
    "shadow": {"changes": {"update_fields": [{"name": "emb", "attrs": {"algorithm": "flat"}}]}},
    "alter": {"changes": {"add_fields": [{"name": "color", "type": "tag"}]}},
}


def index_name(ns: str) -> str:
    return f"{ns}docs"


def alias_name(ns: str) -> str:
    return f"{ns}alias"


def public_names(ns: str) -> list[str]:
    """The names applications query: the index name the plan was made with, and its alias."""
    return [index_name(ns), alias_name(ns)]


def seed(client: redis.Redis, ns: str) -> None:
    """Create the namespace's HNSW index, its alias and its documents (some with a key TTL,
    some with field TTLs, some with a ``color`` the ``alter`` plan will index)."""
    client.execute_command(
        "FT.CREATE", index_name(ns), "ON", "HASH", "PREFIX", "1", f"{ns}doc:", "SCHEMA",
        "title", "TEXT", "tag", "TAG",
        "emb", "VECTOR", "HNSW", "6", "TYPE", "FLOAT32", "DIM", str(DIMS),
        "DISTANCE_METRIC", "COSINE",
    )  # fmt: skip
    client.execute_command("FT.ALIASADD", alias_name(ns), index_name(ns))
    rng = np.random.default_rng(0)
    pipe = client.pipeline(transaction=False)
    for i in range(DOCS):
        key = f"{ns}doc:{i}"
        mapping: dict[str, str | bytes] = {
            "title": f"title {i}",
            "tag": "ab"[i % 2],
            "emb": rng.standard_normal(DIMS).astype(np.float32).tobytes(),
        }
        if i % 3 == 0:
            mapping["color"] = "red"
        pipe.hset(key, mapping=mapping)
        if i % 7 == 0:
            pipe.pexpireat(key, FAR + i)
        if i % 5 == 0:
            pipe.execute_command("HPEXPIREAT", key, FAR + i, "FIELDS", 1, "title")
    pipe.execute()
    wait_indexed(client, index_name(ns))


def wait_indexed(client: redis.Redis, name: str) -> None:
    for _ in range(500):
        stats = parse_ft_info(client.execute_command("FT.INFO", name)).stats
        if not stats.indexing and stats.percent_indexed >= 1.0:
            return
        time.sleep(0.01)
    raise AssertionError(f"index {name} is still indexing")


def make_plan(client: redis.Redis, ns: str, table: str, *, postpone: bool = False) -> MigrationPlan:
    """The online plan of ``table`` (shadow | alter), made by the planner against the live
    index, moving the alias with it."""
    plan = MigrationPlanner().create_plan(
        index_name(ns),
        redis_client=client,
        schema_patch=patch_from_builtins(PATCHES[table]),
        mode="online",
        aliases=[alias_name(ns)],
        postpone_cutover=postpone,
    )
    assert plan.online is not None and plan.online.strategy == table, plan.diff_classification
    return plan


def queries(ns: str) -> bytes:
    """The query check file every apply runs: a tag filter (all ties) and a KNN by a stored
    document's vector, compared before the cut-over."""
    return f"""
queries:
  - {{name: tag, query: "@tag:{{a}}", k: 5, max_count_change: 0}}
  - {{name: near, query: "*=>[KNN 5 @emb $vec]", vector_from_key: "{ns}doc:10", k: 5,
      min_overlap: 0.6}}
""".encode()


def prepare(
    client: redis.Redis, ns: str, workdir: Path, table: str, *, postpone: bool = False
) -> MigrationPlan:
    """Seed the namespace, plan ``table`` and write the plan to ``workdir/plan.yaml`` and
    the query check file to ``workdir/queries.yaml``."""
    seed(client, ns)
    plan = make_plan(client, ns, table, postpone=postpone)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "plan.yaml").write_bytes(dump_plan(plan))
    (workdir / "queries.yaml").write_bytes(queries(ns))
    return plan


def documents(client: redis.Redis, ns: str) -> dict[bytes, Any]:
    """Every key of the namespace: type, fields and bytes, key and field expiry (read in
    one pipeline)."""
    keys = sorted(client.scan_iter(match=f"{ns}*", count=1000))
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.type(key)
        pipe.hgetall(key)
        pipe.pexpiretime(key)
        pipe.execute_command("HPEXPIRETIME", key, "FIELDS", len(FIELDS), *FIELDS)
    replies = pipe.execute()
    return {key: replies[4 * i : 4 * i + 4] for i, key in enumerate(keys)}


def _text(raw: object) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)


@dataclass
class Serving:
    """What the public names answer, read from the server."""

    resolved: dict[str, str | None]
    """Public name → the real index it resolves to (None: unknown)."""
    indexes: list[str]
    """Every real index of the namespace (FT._LIST)."""
    schemas: dict[str, IndexSchema] = field(default_factory=dict)
    """Real index → its FT.INFO schema."""
    ready: dict[str, bool] = field(default_factory=dict)
    """Real index → fully indexed."""
    hits: dict[str, int | None] = field(default_factory=dict)
    """Public name → FT.SEARCH * result count (None: the query failed)."""
    history: list[str] = field(default_factory=list)
    """Index names of the namespace with a schema-history record."""

    def problems(self, schema: IndexSchema, expect: str) -> list[str]:
        """Why this is not "every name resolves to the one index of the namespace, which has
        ``schema``, is fully indexed and answers every document; no shadow or cut-back index
        is left and only that index has a schema-history record"."""
        out: list[str] = []
        real = set(self.resolved.values())
        if len(real) != 1 or None in real:
            out.append(f"{expect}: names resolve to {self.resolved}")
            return out
        (index,) = real
        assert index is not None
        if self.indexes != [index]:
            out.append(f"{expect}: indexes {self.indexes}, want only {index}")
        differences = reported_differences(named(schema, index), self.schemas[index])
        if differences:
            out.append(f"{expect}: '{index}' schema differs: {'; '.join(differences)}")
        if not self.ready.get(index):
            out.append(f"{expect}: '{index}' is not fully indexed")
        wrong = {n: h for n, h in self.hits.items() if h != DOCS}
        if wrong:
            out.append(f"{expect}: FT.SEARCH by name found {wrong}, want {DOCS}")
        stray = [h for h in self.history if h not in self.indexes]
        if stray:
            out.append(f"{expect}: schema history left for dropped indexes {stray}")
        return out

    def answering(self, schemas: list[IndexSchema], *, built: bool = True) -> list[str]:
        """Why the names do not all answer complete results from an index with one of
        ``schemas`` (the state a SIGKILL may leave an online run in), fully built unless
        ``built`` is False (FT.ALTER re-scans in place while the index keeps answering)."""
        out: list[str] = []
        for name, index in self.resolved.items():
            if index is None:
                out.append(f"'{name}' resolves to nothing")
                continue
            if not any(
                not reported_differences(named(s, index), self.schemas[index]) for s in schemas
            ):
                out.append(f"'{name}' → '{index}' has neither schema")
            if built and not self.ready.get(index):
                out.append(f"'{name}' → '{index}' is not fully indexed")
        wrong = {n: h for n, h in self.hits.items() if h != DOCS}
        if wrong:
            out.append(f"FT.SEARCH by name found {wrong}, want {DOCS}")
        return out


def serving(client: redis.Redis, ns: str) -> Serving:
    """Read what the namespace's public names resolve to, and every index of the namespace."""
    indexes = sorted(n for n in map(_text, client.execute_command("FT._LIST")) if n.startswith(ns))
    state = Serving(resolved={}, indexes=indexes)
    for index in indexes:
        info = parse_ft_info(client.execute_command("FT.INFO", index))
        state.schemas[index] = info.schema
        state.ready[index] = not info.stats.indexing and info.stats.percent_indexed >= 1.0
    for name in public_names(ns):
        try:
            info = parse_ft_info(client.execute_command("FT.INFO", name))
        except redis.ResponseError:
            state.resolved[name] = None
            state.hits[name] = None
            continue
        state.resolved[name] = info.index_name
        if info.index_name not in state.schemas:  # not listed: should not happen
            state.schemas[info.index_name] = info.schema
        try:
            reply = client.execute_command("FT.SEARCH", name, "*", "LIMIT", "0", "0")
            state.hits[name] = int(reply[b"total_results"])
        except redis.ResponseError:
            state.hits[name] = None
    state.history = sorted(
        _text(k)[len(HISTORY_KEY_PREFIX) :]
        for k in client.scan_iter(match=f"{HISTORY_KEY_PREFIX}{ns}*", count=1000)
    )
    return state


def forget(client: redis.Redis, ns: str) -> None:
    """Drop a finished scenario's indexes, aliases, documents and history records: every
    FT.CREATE scans the whole keyspace, so leftovers would slow later scenarios down."""
    for name in map(_text, client.execute_command("FT._LIST")):
        if name.startswith(ns):
            client.execute_command("FT.DROPINDEX", name)
    keys = [
        *client.scan_iter(match=f"{ns}*", count=1000),
        *client.scan_iter(match=f"{HISTORY_KEY_PREFIX}{ns}*", count=1000),
    ]
    if keys:
        client.delete(*keys)


# --- the child process ---------------------------------------------------------------------


def _sync(verb: str, url: str, workdir: Path, workers: int) -> MigrationReport:
    backup = workdir / "backup"
    client = redis.Redis.from_url(url, protocol=3)
    executor = MigrationExecutor()
    try:
        if verb == "apply":
            return executor.apply(
                workdir / "plan.yaml", client=client, backup_dir=backup, num_workers=workers,
                query_check_file=workdir / "queries.yaml",
            )  # fmt: skip
        if verb in ("resume", "rollback", "cutover"):
            run = getattr(executor, verb)
            return run(backup, client=client, num_workers=workers)  # type: ignore[no-any-return]
        if verb == "abort":
            return executor.abort(backup, client=client)
    finally:
        client.close()
    raise SystemExit(f"unknown verb {verb}")


async def _async(verb: str, url: str, workdir: Path, workers: int) -> MigrationReport:
    backup = workdir / "backup"
    client = redis.asyncio.Redis.from_url(url, protocol=3)
    executor = AsyncMigrationExecutor()
    try:
        if verb == "apply":
            return await executor.apply(
                workdir / "plan.yaml", client=client, backup_dir=backup, num_workers=workers,
                query_check_file=workdir / "queries.yaml",
            )  # fmt: skip
        if verb in ("resume", "rollback", "cutover"):
            run = getattr(executor, verb)
            return await run(backup, client=client, num_workers=workers)  # type: ignore[no-any-return]
        if verb == "abort":
            return await executor.abort(backup, client=client)
    finally:
        await client.aclose()
    raise SystemExit(f"unknown verb {verb}")


def main(argv: list[str]) -> int:
    from ftctl.errors import FtctlError

    if argv[0] == "where":
        import ftctl

        print(json.dumps({"ftctl": ftctl.__file__}), flush=True)
        return 0
    verb, runner, url, workdir, workers = argv[0], argv[1], argv[2], Path(argv[3]), int(argv[4])
    try:
        if runner == "async":
            report = asyncio.run(_async(verb, url, workdir, workers))
        else:
            report = _sync(verb, url, workdir, workers)
    except FtctlError as exc:
        print(json.dumps({"error": type(exc).__name__, "message": exc.message}), flush=True)
        return exc.exit_code
    print(json.dumps({"result": report.result, "message": report.error}), flush=True)
    return 0 if report.result in ("succeeded", "rolled_back", "awaiting_cutover") else 1


def child(argv: list[str], fault: str, log: str) -> None:
    """Entry of a forked child (multiprocessing): ``main`` with ``FTCTL_FAULT`` = ``fault``.

    Output goes to ``log``; the exit code is the process's, and also the log's last line
    (``{"exit": code}``) for every exit except a kill.
    """
    import gc

    # What the child inherited from the forkserver is never garbage: keeping the collector
    # off it saves ~0.1 s per child (a full collection touches every inherited page).
    gc.freeze()
    os.environ.pop("FTCTL_FAULT", None)
    if fault:
        os.environ["FTCTL_FAULT"] = fault
    out = open(log, "a", encoding="utf-8")  # noqa: SIM115 - open until the process ends
    sys.stdout = sys.stderr = out
    try:
        code = main(argv)
    except BaseException as exc:  # the marker below must be written for every exit but a kill
        print(json.dumps({"unexpected": repr(exc)}), flush=True)
        code = 1
    gc.collect()
    print(json.dumps({"exit": code}), flush=True)
    out.flush()
    os._exit(code)
