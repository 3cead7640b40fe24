"""Crash-test kit: seeded data, a hand-built plan, state snapshots, and the child process.

Every scenario lives in its own namespace (``s012_``): index ``s012_docs`` on prefix
``s012_doc:``, migrated to prefix ``s012_item:`` with field ``title`` renamed to ``headline``
and vector ``emb`` quantized float32 → float16. Snapshots strip the namespace, so the states
of different scenarios (same seed) compare with ``==``.

Run as a script (or through :func:`child` in a forked process) it is the child that the
tests SIGKILL::

    python crashkit.py apply|resume|rollback URL WORKDIR WORKERS [BATCH_SIZE]

It prints one JSON line with the report's result (or the FtctlError it raised) and exits
0 on success, the error's exit code otherwise.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import redis
import redis.asyncio

from ftctl.executor import MigrationExecutor, rollback
from ftctl.journal.report import MigrationReport
from ftctl.plan.models import (
    DiffClassification,
    FieldRename,
    Keyspace,
    MigrationPlan,
    RenameOperations,
    SourceSnapshot,
    VectorChange,
    dump_plan,
)
from ftctl.schema.ftinfo import parse_ft_info
from ftctl.schema.model import VectorField

DOCS = 300
DIMS = 8
BATCH_SIZE = 50
FAR = 4_102_444_800_000
"""2100-01-01 in ms: absolute expiry times compare exactly between runs."""


FORKSERVER_PRELOAD = ["pytest", "crashkit", "onlinekit", "ftctl.executor"]
"""What the crash tests' forkserver imports once, so a child does not: ftctl and the kits,
and pytest, which every forked child would otherwise import again to re-create the main
module (the ``pytest`` script) — ~50 ms of CPU per child."""


def index_name(ns: str) -> str:
    return f"{ns}docs"


def seed(client: redis.Redis, ns: str) -> None:
    """Create the namespace's index and its documents (identical for every namespace).

    Some keys have a TTL, some documents have field TTLs on the renamed, the re-encoded and
    an untouched field, and a few have no vector at all.
    """
    client.execute_command(
        "FT.CREATE", index_name(ns), "ON", "HASH", "PREFIX", "1", f"{ns}doc:", "SCHEMA",
        "title", "TEXT", "tag", "TAG",
        "emb", "VECTOR", "HNSW", "6", "TYPE", "FLOAT32", "DIM", str(DIMS),
        "DISTANCE_METRIC", "COSINE",
    )  # fmt: skip
    rng = np.random.default_rng(0)
    pipe = client.pipeline(transaction=False)
    for i in range(DOCS):
        key = f"{ns}doc:{i}"
        mapping: dict[str, str | bytes] = {"title": f"title {i}", "tag": "ab"[i % 2]}
        vector = rng.standard_normal(DIMS).astype(np.float32).tobytes()
        if i % 61 != 3:
            mapping["emb"] = vector
        pipe.hset(key, mapping=mapping)
        if i % 7 == 0:
            pipe.pexpireat(key, FAR + i)
        if i % 5 == 0:
            fields = [f for f in ("title", "tag", "emb") if f in mapping]
            pipe.execute_command("HPEXPIREAT", key, FAR + i, "FIELDS", len(fields), *fields)
    pipe.execute()
    wait_indexed(client, index_name(ns))


def wait_indexed(client: redis.Redis, name: str) -> None:
    for _ in range(500):
        stats = parse_ft_info(client.execute_command("FT.INFO", name)).stats
        if not stats.indexing and stats.percent_indexed >= 1.0:
            return
        time.sleep(0.01)
    raise AssertionError(f"index {name} is still indexing")


def build_plan(client: redis.Redis, ns: str) -> MigrationPlan:
    """The plan (by hand, as the planner would): rename a field, change prefix, quantize."""
    info = parse_ft_info(client.execute_command("FT.INFO", index_name(ns)))
    source = info.schema
    fields = []
    for f in source.fields:
        if isinstance(f, VectorField):
            f = msgspec.structs.replace(
                f, attrs=msgspec.structs.replace(f.attrs, datatype="float16")
            )
        if f.name == "title":
            f = msgspec.structs.replace(f, name="headline")
        fields.append(f)
    target = msgspec.structs.replace(
        source,
        fields=fields,
        index=msgspec.structs.replace(source.index, prefix=f"{ns}item:"),
        unreported=[],
    )
    return MigrationPlan(
        source=SourceSnapshot(
            index_name=index_name(ns),
            schema_snapshot=source,
            stats_snapshot=info.stats,
            keyspace=Keyspace(storage_type="hash", prefixes=[f"{ns}doc:"]),
        ),
        merged_target_schema=target,
        diff_classification=DiffClassification(supported=True),
        rename_operations=RenameOperations(
            change_prefix=f"{ns}item:",
            rename_fields=[FieldRename(old_name="title", new_name="headline")],
        ),
        vector_changes=[
            VectorChange(
                field="emb",
                source_datatype="float32",
                target_datatype="float16",
                dims=DIMS,
                lossy=True,
                reencode_documents=True,
            )
        ],
    )


def queries(ns: str) -> bytes:
    """The query check file every apply runs: a tag filter (all ties), a query on the field
    the plan renames (rewritten for the target), a KNN by a stored document's vector."""
    return f"""
queries:
  - {{name: tag, query: "@tag:{{a}}", k: 5, max_count_change: 0}}
  - {{name: title, query: "@title:(title)", k: 5}}
  - {{name: near, query: "*=>[KNN 5 @emb $vec]", vector_from_key: "{ns}doc:10", k: 5,
      min_overlap: 0.6}}
""".encode()


def prepare(client: redis.Redis, ns: str, workdir: Path) -> None:
    """Seed the namespace and write its plan to ``workdir/plan.yaml`` and its query check
    file to ``workdir/queries.yaml``."""
    seed(client, ns)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "plan.yaml").write_bytes(dump_plan(build_plan(client, ns)))
    (workdir / "queries.yaml").write_bytes(queries(ns))


def _strip(value: Any, ns: str) -> Any:
    if isinstance(value, str):
        return value.replace(ns, "")
    if isinstance(value, bytes):
        return value.replace(ns.encode(), b"")
    if isinstance(value, dict):
        return {_strip(k, ns): _strip(v, ns) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_strip(v, ns) for v in value]
    return value


def snapshot(client: redis.Redis, ns: str) -> dict[str, Any]:
    """Every key of the namespace (fields, bytes, key and field expiry) and every index.

    Indexes are FT.INFO-parsed schemas plus their document and failure counts; names and
    prefixes are shown without the namespace.
    """
    keys: dict[bytes, Any] = {}
    for key in sorted(client.scan_iter(match=f"{ns}*", count=1000)):
        fields = client.hgetall(key)
        names = sorted(fields)
        expiries = client.execute_command("HPEXPIRETIME", key, "FIELDS", len(names), *names)
        keys[key.replace(ns.encode(), b"")] = {
            "type": client.type(key),
            "fields": fields,
            "pexpiretime": client.pexpiretime(key),
            "field_expiry": dict(zip(names, expiries, strict=True)),
        }
    indexes: dict[str, Any] = {}
    for raw in client.execute_command("FT._LIST"):
        name = raw.decode() if isinstance(raw, bytes) else str(raw)
        if not name.startswith(ns):
            continue
        info = parse_ft_info(client.execute_command("FT.INFO", name))
        indexes[name.replace(ns, "")] = {
            "schema": _strip(msgspec.to_builtins(info.schema), ns),
            "num_docs": info.stats.num_docs,
            "failures": info.stats.hash_indexing_failures,
        }
    return {"keys": keys, "indexes": indexes}


# --- the child process ---------------------------------------------------------------------


def _progress(step: str, done: int, total: int) -> None:
    print(json.dumps({"progress": step, "done": done, "total": total}), flush=True)


def main(argv: list[str]) -> int:
    from ftctl.errors import FtctlError

    command, url, workdir, workers = argv[0], argv[1], Path(argv[2]), int(argv[3])
    batch_size = int(argv[4]) if len(argv) > 4 else BATCH_SIZE
    backup = workdir / "backup"
    client = redis.Redis.from_url(url, protocol=3)
    try:
        if command == "apply":
            report = MigrationExecutor().apply(
                workdir / "plan.yaml",
                client=client,
                backup_dir=backup,
                batch_size=batch_size,
                num_workers=workers,
                accept_data_loss=True,
                progress_callback=_progress,
                query_check_file=workdir / "queries.yaml",
            )
        elif command == "apply-async":
            import asyncio

            from ftctl.executor import AsyncMigrationExecutor

            async def run_async() -> MigrationReport:
                aclient = redis.asyncio.Redis.from_url(url, protocol=3)
                try:
                    return await AsyncMigrationExecutor().apply(
                        workdir / "plan.yaml",
                        client=aclient,
                        backup_dir=backup,
                        batch_size=batch_size,
                        num_workers=workers,
                        accept_data_loss=True,
                        query_check_file=workdir / "queries.yaml",
                    )
                finally:
                    await aclient.aclose()

            report = asyncio.run(run_async())
        elif command == "resume":
            report = MigrationExecutor().resume(
                backup, client=client, batch_size=batch_size, num_workers=workers
            )
        elif command == "rollback":
            report = rollback(backup, client=client, batch_size=batch_size, num_workers=workers)
        else:
            raise SystemExit(f"unknown command {command}")
    except FtctlError as exc:
        print(
            json.dumps({"error": type(exc).__name__, "message": exc.message, "hint": exc.hint}),
            flush=True,
        )
        return exc.exit_code
    finally:
        client.close()
    print(json.dumps({"result": report.result}), flush=True)
    return 0 if report.result in ("succeeded", "rolled_back") else 1


def child(argv: list[str], fault: str, log: str) -> None:
    """Entry of a forked child (multiprocessing): ``main`` with ``FTCTL_FAULT`` = ``fault``.

    Output goes to ``log``; the exit code is the process's exit code, and is also written
    as the log's last line (``{"exit": code}``) for every exit except a kill.
    """
    import os

    os.environ.pop("FTCTL_FAULT", None)
    if fault:
        os.environ["FTCTL_FAULT"] = fault
    import gc

    # What the child inherited from the forkserver is never garbage: keeping the collector
    # off it saves ~0.1 s per child (a full collection touches every inherited page).
    gc.freeze()
    out = open(log, "a", encoding="utf-8")  # noqa: SIM115 - open until the process ends
    sys.stdout = sys.stderr = out
    try:
        code = main(argv)
    except BaseException as exc:  # the marker below must be written for every exit but a kill
        print(json.dumps({"unexpected": repr(exc)}), flush=True)
        code = 1
    # Anything printed while objects are collected must still reach the log: a closed
    # stdout at interpreter exit turned a successful child into exit code 255.
    gc.collect()
    print(json.dumps({"exit": code}), flush=True)
    out.flush()
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
