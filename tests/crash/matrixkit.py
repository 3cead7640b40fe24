"""Rollback-matrix kit: seeded data, the plan of each mode, what Redis holds, and the child.

Every scenario lives in its own namespace (``m012_``): index ``m012_docs`` on prefix
``m012_doc:`` (and, for online plans, alias ``m012_alias``), holding :data:`DOCS` documents
(some with a key TTL, some with field TTLs, a few without a vector). Three plans:

- ``drop_recreate``: the crash suite's change (:func:`crashkit.build_plan`): rename a field,
  change the prefix and quantize float32 → float16;
- ``alter``: add a TAG field (FT.ALTER SCHEMA ADD in place, made by the planner);
- ``shadow``: the vector field's algorithm HNSW → FLAT (a shadow index swapped in).

The seed is the same for every namespace and mode, so one snapshot of the original documents
(namespace stripped) is compared with ``==`` against every scenario's.

:func:`child` runs in a forked process::

    child([VERB, RUNNER, URL, WORKDIR, WORKERS], env, log)

``VERB`` is apply | rollback, ``RUNNER`` sync | async; ``env`` is set first (the fault
variables). It prints one JSON line with the report's result and error (or the FtctlError it
raised) and exits 0 when the result is succeeded or rolled_back, 1 when it is failed, and the
error's exit code when one was raised. A rollback runs with the forward conversion poisoned
(:func:`poison_forward_conversion`): a rollback that converted a vector again would fail.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import crashkit
import numpy as np
import redis
import redis.asyncio

from ftctl.plan import dump_plan, patch_from_builtins
from ftctl.plan.models import MigrationPlan
from ftctl.planner import MigrationPlanner
from ftctl.schema.compare import reported_differences
from ftctl.schema.ftinfo import parse_ft_info
from ftctl.schema.model import IndexSchema
from ftctl.steps.history import HISTORY_KEY_PREFIX
from ftctl.steps.spec import named

DOCS = 60
DIMS = crashkit.DIMS
BATCH_SIZE = 5
"""Keys per server call; a segment (journal batch) holds four: 60 documents are 3 batches,
so batch 1 is one in the middle."""
FIELDS = ("title", "tag", "emb", "color")
FAR = crashkit.FAR

MODES = ("drop_recreate", "alter", "shadow")
ONLINE_PATCHES: dict[str, dict[str, object]] = {
    "alter": {"changes": {"add_fields": [{"name": "color", "type": "tag"}]}},
    "shadow": {"changes": {"update_fields": [{"name": "emb", "attrs": {"algorithm": "flat"}}]}},
}


def index_name(ns: str) -> str:
    return crashkit.index_name(ns)


def alias_name(ns: str) -> str:
    return f"{ns}alias"


def public_names(ns: str, mode: str) -> list[str]:
    """The names applications query: the index name, and the alias online plans move.

    drop_recreate plans carry no alias (the plan has no place for one yet), so the scenario
    creates none there.
    """
    return [index_name(ns)] if mode == "drop_recreate" else [index_name(ns), alias_name(ns)]


def seed(client: redis.Redis, ns: str, mode: str) -> None:
    """The namespace's HNSW index (and its alias for online plans) and its documents."""
    client.execute_command(
        "FT.CREATE", index_name(ns), "ON", "HASH", "PREFIX", "1", f"{ns}doc:", "SCHEMA",
        "title", "TEXT", "tag", "TAG",
        "emb", "VECTOR", "HNSW", "6", "TYPE", "FLOAT32", "DIM", str(DIMS),
        "DISTANCE_METRIC", "COSINE",
    )  # fmt: skip
    if mode != "drop_recreate":
        client.execute_command("FT.ALIASADD", alias_name(ns), index_name(ns))
    rng = np.random.default_rng(0)
    pipe = client.pipeline(transaction=False)
    for i in range(DOCS):
        key = f"{ns}doc:{i}"
        mapping: dict[str, str | bytes] = {"title": f"title {i}", "tag": "ab"[i % 2]}
        vector = rng.standard_normal(DIMS).astype(np.float32).tobytes()
        if i % 23 != 3:
            mapping["emb"] = vector
        if i % 3 == 0:
            mapping["color"] = "red"
        pipe.hset(key, mapping=mapping)
        if i % 7 == 0:
            pipe.pexpireat(key, FAR + i)
        if i % 5 == 0:
            fields = [f for f in ("title", "tag", "emb") if f in mapping]
            pipe.execute_command("HPEXPIREAT", key, FAR + i, "FIELDS", len(fields), *fields)
    pipe.execute()
    crashkit.wait_indexed(client, index_name(ns))


def make_plan(client: redis.Redis, ns: str, mode: str) -> MigrationPlan:
    """The plan of ``mode`` against the live index of ``ns``."""
    if mode == "drop_recreate":
        return crashkit.build_plan(client, ns)
    plan = MigrationPlanner().create_plan(
        index_name(ns),
        redis_client=client,
        schema_patch=patch_from_builtins(ONLINE_PATCHES[mode]),
        mode="online",
        aliases=[alias_name(ns)],
    )
    assert plan.online is not None and plan.online.strategy == mode, plan.diff_classification
    return plan


def prepare(client: redis.Redis, ns: str, mode: str, workdir: Path) -> MigrationPlan:
    """Seed ``ns``, plan ``mode`` and write the plan to ``workdir/plan.yaml``."""
    seed(client, ns, mode)
    plan = make_plan(client, ns, mode)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "plan.yaml").write_bytes(dump_plan(plan))
    return plan


def documents(client: redis.Redis, ns: str) -> dict[bytes, Any]:
    """Every key of the namespace, namespace stripped: type, fields and their bytes, key
    expiry and each field's expiry (two pipelines)."""
    keys = sorted(client.scan_iter(match=f"{ns}*", count=1000))
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.type(key)
        pipe.hgetall(key)
        pipe.pexpiretime(key)
        pipe.execute_command("HPEXPIRETIME", key, "FIELDS", len(FIELDS), *FIELDS)
    replies = pipe.execute()
    out: dict[bytes, Any] = {}
    for i, key in enumerate(keys):
        kind, fields, expiry, field_expiry = replies[4 * i : 4 * i + 4]
        out[key.replace(ns.encode(), b"")] = {
            "type": kind,
            "fields": fields,
            "pexpiretime": expiry,
            "field_expiry": dict(zip(FIELDS, field_expiry, strict=True)),
        }
    return out


def _text(raw: object) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def serving_problems(
    client: redis.Redis, ns: str, mode: str, source: IndexSchema, original: dict[bytes, Any]
) -> list[str]:
    """Why the namespace is not served as before the migration: every public name resolves
    to the namespace's only index, which has the ``source`` schema, is fully indexed, finds
    every document by ``*`` and a document by its own vector (KNN); only that index keeps a
    schema-history record."""
    out: list[str] = []
    indexes = sorted(n for n in map(_text, client.execute_command("FT._LIST")) if n.startswith(ns))
    resolved: dict[str, str | None] = {}
    infos = {}
    for name in public_names(ns, mode):
        try:
            info = parse_ft_info(client.execute_command("FT.INFO", name))
        except redis.ResponseError as exc:
            resolved[name] = None
            out.append(f"'{name}' does not resolve: {exc}")
            continue
        resolved[name] = info.index_name
        infos[info.index_name] = info
    real = set(resolved.values())
    if len(real) != 1 or None in real:
        return [*out, f"public names resolve to {resolved}"]
    (index,) = real
    assert index is not None
    if indexes != [index]:
        out.append(f"indexes of the namespace {indexes}, want only '{index}'")
    info = infos[index]
    differences = reported_differences(named(source, index), info.schema)
    if differences:
        out.append(f"'{index}' schema differs from the source: {'; '.join(differences)}")
    if info.stats.indexing or info.stats.percent_indexed < 1.0:
        out.append(f"'{index}' is not fully indexed")
    if info.stats.num_docs != DOCS:
        out.append(f"'{index}' holds {info.stats.num_docs} documents, want {DOCS}")
    probe = b"doc:10"
    vector = original[probe]["fields"][b"emb"]
    for name in public_names(ns, mode):
        found = client.execute_command("FT.SEARCH", name, "*", "LIMIT", "0", "0")
        total = found[b"total_results"] if isinstance(found, dict) else found[0]
        if total != DOCS:
            out.append(f"FT.SEARCH {name} * finds {total}, want {DOCS}")
        knn = client.execute_command(
            "FT.SEARCH", name, "*=>[KNN 1 @emb $v]", "PARAMS", "2", "v", vector,
            "NOCONTENT", "DIALECT", "2",
        )  # fmt: skip
        ids = [r[b"id"] for r in knn[b"results"]] if isinstance(knn, dict) else knn[1:]
        if ids != [f"{ns}doc:10".encode()]:
            out.append(f"KNN on {name} by doc:10's vector finds {ids}")
    history = sorted(
        _text(k)[len(HISTORY_KEY_PREFIX) :]
        for k in client.scan_iter(match=f"{HISTORY_KEY_PREFIX}{ns}*", count=1000)
    )
    stray = [h for h in history if h != index]
    if stray:
        out.append(f"schema history kept for indexes that are gone: {stray}")
    return out


def forget(client: redis.Redis, ns: str) -> None:
    """Drop a finished scenario's indexes, keys and history (FT.CREATE scans the keyspace:
    leftovers would slow every later scenario down)."""
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


def poison_forward_conversion() -> None:
    """Make every conversion between two datatypes fail: a rollback must restore the bytes
    it backed up, never recompute the forward conversion (float32 → float16 here)."""
    from ftctl.plan import codecs

    original = codecs.convert_batch

    def convert_batch(data: bytes, src: str, dst: str, *args: Any, **kwargs: Any) -> bytes:
        if src != dst:
            raise AssertionError(f"rollback converted {src} → {dst}")
        return original(data, src, dst, *args, **kwargs)

    codecs.convert_batch = convert_batch


def _run(verb: str, runner: str, url: str, workdir: Path, workers: int) -> Any:
    from ftctl.executor import AsyncMigrationExecutor, MigrationExecutor

    backup = workdir / "backup"
    common: dict[str, Any] = {
        "batch_size": BATCH_SIZE,
        "num_workers": workers,
        "reconnect_timeout": 0.0,
    }
    if runner == "sync":
        client = redis.Redis.from_url(url, protocol=3)
        try:
            if verb == "apply":
                return MigrationExecutor().apply(
                    workdir / "plan.yaml", client=client, backup_dir=backup,
                    accept_data_loss=True, **common,
                )  # fmt: skip
            return MigrationExecutor().rollback(backup, client=client, **common)
        finally:
            client.close()

    async def run_async() -> Any:
        aclient = redis.asyncio.Redis.from_url(url, protocol=3)
        try:
            if verb == "apply":
                return await AsyncMigrationExecutor().apply(
                    workdir / "plan.yaml", client=aclient, backup_dir=backup,
                    accept_data_loss=True, **common,
                )  # fmt: skip
            return await AsyncMigrationExecutor().rollback(backup, client=aclient, **common)
        finally:
            await aclient.aclose()

    return asyncio.run(run_async())


def main(argv: list[str]) -> int:
    from ftctl.errors import FtctlError

    verb, runner, url, workdir, workers = argv[0], argv[1], argv[2], Path(argv[3]), int(argv[4])
    if verb == "rollback":
        poison_forward_conversion()
    try:
        report = _run(verb, runner, url, workdir, workers)
    except FtctlError as exc:
        said = {"error": type(exc).__name__, "message": exc.message, "hint": exc.hint}
        print(json.dumps(said), flush=True)
        return exc.exit_code
    print(json.dumps({"result": report.result, "error": report.error}), flush=True)
    return 0 if report.result in ("succeeded", "rolled_back") else 1


FAULT_VARIABLES = ("FTCTL_FAULT", "FTCTL_FAULT_SIGNAL", "FTCTL_FAULT_RAISE")


def child(argv: list[str], env: dict[str, str], log: str) -> None:
    """Entry of a forked child: ``main`` with the fault variables of ``env``.

    Output goes to ``log``; the exit code is the process's, also written as the log's last
    line (``{"exit": code}``) for every exit but a kill.
    """
    import gc

    for name in FAULT_VARIABLES:
        os.environ.pop(name, None)
    os.environ.update(env)
    gc.freeze()  # what the forkserver preloaded is never garbage: skip it when collecting
    out = open(log, "a", encoding="utf-8")  # noqa: SIM115 - open until the process ends
    sys.stdout = sys.stderr = out
    started = time.monotonic()
    try:
        code = main(argv)
    except BaseException as exc:  # the marker below must be written for every exit but a kill
        print(json.dumps({"unexpected": repr(exc)}), flush=True)
        code = 1
    gc.collect()
    cpu = os.times()
    said = {"exit": code, "seconds": round(time.monotonic() - started, 3)}
    print(json.dumps({**said, "cpu": round(cpu.user + cpu.system, 3)}), flush=True)
    out.flush()
    os._exit(code)
