"""Expand crash-test kit: tiny indexes whose change rewrites documents, their online plans
(strategy ``expand``), normalised snapshots, a writer, and the child process the tests kill.

Every scenario lives in its own namespace (``e012_``): index ``e012_docs`` on prefix
``e012_doc:`` with alias ``e012_alias``, :data:`DOCS` documents of :data:`DIMS` dims. A
*kind* is one change the planner sends to the expand strategy:

- ``quantize``: HASH vector ``emb`` float32 → float16 (converted in place through a
  temporary field, a second index on the final layout);
- ``rename``: HASH field ``title`` → ``headline``;
- ``rename_json``: JSON path ``$.title`` → ``$.headline``;
- ``prefix``: the prefix ``doc:`` → ``item:`` (documents copied to their new keys).

Snapshots strip the namespace and the plan-derived parts of generated names (the shadow,
final and cut-back indexes, temporary fields), so two namespaces seeded alike compare with
``==``.

Run through :func:`child` in a forked process it is the child that the tests SIGKILL::

    child([VERB, RUNNER, URL, WORKDIR, BATCH], fault, log)

``VERB`` is apply | resume | rollback | cutover | abort, ``RUNNER`` sync | async. ``fault`` is
an ``FTCTL_FAULT`` value, or ``progress:<step>:<n>``: SIGKILL once ``step`` reports ``n``
documents done (its WATCH groups up to there are written, the rest not: the middle of a
phase that journals no batches). It prints one JSON line with the report's result (or the
FtctlError it raised) and exits 0 when the result is succeeded, rolled_back or
awaiting_cutover, 1 when it is failed, and the error's exit code when one was raised.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
import time
from collections.abc import Callable
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
from ftctl.schema.ftinfo import parse_ft_info
from ftctl.steps.history import HISTORY_KEY_PREFIX

DOCS = 40
DIMS = 8
BATCH = 10
"""Keys per WATCH group: every pass over the documents takes several groups."""
FAR = 4_102_444_800_000
"""2100-01-01 in ms: absolute expiry times compare exactly."""
KINDS = ("quantize", "rename", "rename_json", "prefix")


def patch(kind: str, ns: str) -> dict[str, object]:
    if kind == "quantize":
        return {"changes": {"update_fields": [{"name": "emb", "attrs": {"datatype": "float16"}}]}}
    if kind in ("rename", "rename_json"):
        return {"changes": {"rename_fields": [{"old_name": "title", "new_name": "headline"}]}}
    return {"changes": {"index": {"prefix": f"{ns}item:"}}}


def index_name(ns: str) -> str:
    return f"{ns}docs"


def alias_name(ns: str) -> str:
    return f"{ns}alias"


def public_names(ns: str) -> list[str]:
    return [index_name(ns), alias_name(ns)]


def _vector(rng: np.random.Generator) -> bytes:
    return rng.standard_normal(DIMS).astype(np.float32).tobytes()


def _json_doc(i: int, rng: np.random.Generator, title: str | None = None) -> str:
    values = [round(float(x), 3) for x in rng.standard_normal(DIMS)]
    return json.dumps({"title": title or f"title {i}", "tag": "ab"[i % 2], "emb": values})


def seed(client: redis.Redis, ns: str, kind: str) -> None:
    """Create the namespace's HNSW index, its alias and its documents: some with a key TTL,
    hash documents with field TTLs (on the renamed and the converted field), one without
    a vector."""
    storage = "JSON" if kind == "rename_json" else "HASH"
    path = "$." if storage == "JSON" else ""
    fields = [
        f"{path}title", "AS", "title", "TEXT", f"{path}tag", "AS", "tag", "TAG",
        f"{path}emb", "AS", "emb",
    ]  # fmt: skip
    client.execute_command(
        "FT.CREATE", index_name(ns), "ON", storage, "PREFIX", "1", f"{ns}doc:", "SCHEMA",
        *fields, "VECTOR", "HNSW", "6", "TYPE", "FLOAT32", "DIM", str(DIMS),
        "DISTANCE_METRIC", "COSINE",
    )  # fmt: skip
    client.execute_command("FT.ALIASADD", alias_name(ns), index_name(ns))
    rng = np.random.default_rng(0)
    pipe = client.pipeline(transaction=False)
    for i in range(DOCS):
        key = f"{ns}doc:{i}"
        if storage == "JSON":
            pipe.execute_command("JSON.SET", key, "$", _json_doc(i, rng))
        else:
            mapping: dict[str, str | bytes] = {"title": f"title {i}", "tag": "ab"[i % 2]}
            if i != 3:
                mapping["emb"] = _vector(rng)
            pipe.hset(key, mapping=mapping)
            if i % 5 == 0:
                names = [f for f in ("title", "emb") if f in mapping]
                pipe.execute_command("HPEXPIREAT", key, FAR + i, "FIELDS", len(names), *names)
        if i % 7 == 0:
            pipe.pexpireat(key, FAR + i)
    pipe.execute()
    wait_indexed(client, index_name(ns))


def wait_indexed(client: redis.Redis, name: str) -> None:
    for _ in range(500):
        stats = parse_ft_info(client.execute_command("FT.INFO", name)).stats
        if not stats.indexing and stats.percent_indexed >= 1.0:
            return
        time.sleep(0.01)
    raise AssertionError(f"index {name} is still indexing")


def make_plan(client: redis.Redis, ns: str, kind: str, *, postpone: bool = False) -> MigrationPlan:
    """The online plan of ``kind``, made by the planner against the live index, moving the
    alias with it; the cut-over waits at the gate only when ``postpone``."""
    # No key sample: RedisVL's check that each sampled key still exists would fail when the
    # writer deletes one, and FT.SEARCH does not sample the same keys in every namespace.
    plan = MigrationPlanner(key_sample_limit=0).create_plan(
        index_name(ns),
        redis_client=client,
        schema_patch=patch_from_builtins(patch(kind, ns)),
        mode="online",
        aliases=[alias_name(ns)],
        postpone_cutover=postpone,
    )
    assert plan.online is not None and plan.online.strategy == "expand", plan.diff_classification
    return plan


def prepare(
    client: redis.Redis, ns: str, kind: str, workdir: Path, *, postpone: bool = False
) -> MigrationPlan:
    """Seed the namespace, plan ``kind`` and write the plan to ``workdir/plan.yaml``."""
    seed(client, ns, kind)
    plan = make_plan(client, ns, kind, postpone=postpone)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "plan.yaml").write_bytes(dump_plan(plan))
    return plan


# --- an application writing while the migration is down -----------------------------------


def write_legacy(client: redis.Redis, ns: str, kind: str) -> int:
    """What an application still on the old layout does: update a few documents (new
    vector, new title), delete two, create two, always by the old names and in the old
    format (float32). Returns how many documents the namespace has now."""
    rng = np.random.default_rng(99)
    pipe = client.pipeline(transaction=False)
    for i in (1, 12, 25, 38):
        key = f"{ns}doc:{i}"
        if kind == "rename_json":
            pipe.execute_command("JSON.SET", key, "$.title", json.dumps(f"updated {i}"))
        else:
            pipe.hset(key, mapping={"title": f"updated {i}", "emb": _vector(rng)})
    pipe.delete(f"{ns}doc:2", f"{ns}doc:30")
    for i in (DOCS, DOCS + 1):
        key = f"{ns}doc:{i}"
        if kind == "rename_json":
            pipe.execute_command("JSON.SET", key, "$", _json_doc(i, rng, "created"))
        else:
            pipe.hset(key, mapping={"title": f"created {i}", "tag": "c", "emb": _vector(rng)})
    pipe.execute()
    return DOCS


# --- what a namespace holds, comparable across namespaces -----------------------------------

_GENERATED = re.compile(r"__ftctl_(rb)?[0-9a-f]{8}")


def normal(name: str, ns: str) -> str:
    """``name`` without the namespace and the plan-derived hash of generated names."""
    return _GENERATED.sub(lambda m: f"__ftctl_{m.group(1) or ''}H", name.replace(ns, ""))


def text(raw: object) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def _schema(info: Any, ns: str) -> Any:
    """FT.INFO's schema as builtins, names normalised."""
    import msgspec

    def strip(value: Any) -> Any:
        if isinstance(value, str):
            return normal(value, ns)
        if isinstance(value, dict):
            return {strip(k): strip(v) for k, v in value.items()}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return strip(msgspec.to_builtins(info.schema))


def keys_of(client: redis.Redis, ns: str) -> dict[str, Any]:
    """Every key of the namespace: type, content (hash fields and bytes, JSON text), key
    expiry and hash field expiry; names normalised, bytes exact (two pipelines)."""
    keys = sorted(client.scan_iter(match=f"{ns}*", count=1000))
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.type(key)
        pipe.hgetall(key)  # an error reply for a JSON key, kept in the list
        pipe.pexpiretime(key)
    first = pipe.execute(raise_on_error=False)
    pipe = client.pipeline(transaction=False)
    for i, key in enumerate(keys):
        kind, fields = text(first[3 * i]), first[3 * i + 1]
        if kind == "hash":
            names = sorted(fields)
            pipe.execute_command("HPEXPIRETIME", key, "FIELDS", len(names), *names)
        else:
            pipe.execute_command("JSON.GET", key, "$")
    second = pipe.execute()
    out: dict[str, Any] = {}
    for i, key in enumerate(keys):
        kind, fields, expiry = text(first[3 * i]), first[3 * i + 1], first[3 * i + 2]
        content: Any
        expiries: dict[str, int] = {}
        if kind == "hash":
            names = sorted(fields)
            content = {normal(text(n), ns): fields[n] for n in names}
            expiries = {normal(text(n), ns): t for n, t in zip(names, second[i], strict=True)}
        else:
            content = text(second[i])
        out[normal(text(key), ns)] = {
            "type": kind,
            "content": content,
            "pexpiretime": expiry,
            "field_expiry": expiries,
        }
    return out


def snapshot(client: redis.Redis, ns: str) -> dict[str, Any]:
    """The namespace as a comparable value: its keys (:func:`keys_of`), every index (FT.INFO
    schema, documents, failures, fully indexed), what each public name resolves to, and
    the schema-history records of its indexes (schema and public names)."""
    indexes: dict[str, Any] = {}
    for raw in client.execute_command("FT._LIST"):
        name = text(raw)
        if name.startswith(ns):
            info = parse_ft_info(client.execute_command("FT.INFO", name))
            indexes[normal(name, ns)] = {
                "schema": _schema(info, ns),
                "num_docs": info.stats.num_docs,
                "failures": info.stats.hash_indexing_failures,
                "ready": not info.stats.indexing and info.stats.percent_indexed >= 1.0,
            }
    names: dict[str, str | None] = {}
    for name in public_names(ns):
        try:
            info = parse_ft_info(client.execute_command("FT.INFO", name))
            names[normal(name, ns)] = normal(info.index_name, ns)
        except redis.ResponseError:
            names[normal(name, ns)] = None
    history: dict[str, Any] = {}
    for key in sorted(client.scan_iter(match=f"{HISTORY_KEY_PREFIX}{ns}*", count=1000)):
        record = json.loads(client.get(key) or b"{}")
        history[normal(text(key), ns)] = {
            "schema": {k: v for k, v in record.get("schema", {}).items()},
            "aliases": sorted(normal(a, ns) for a in record.get("aliases", [])),
        }
    return {
        "keys": keys_of(client, ns),
        "indexes": indexes,
        "names": names,
        "history": json.loads(normal(json.dumps(history, sort_keys=True), ns)),
    }


def hits(client: redis.Redis, name: str) -> int | None:
    """Documents FT.SEARCH ``*`` finds by ``name`` (None: the query failed)."""
    try:
        reply = client.execute_command("FT.SEARCH", name, "*", "LIMIT", "0", "0")
    except redis.ResponseError:
        return None
    if isinstance(reply, dict):
        return int(reply[b"total_results"])
    return int(reply[0])


def forget(client: redis.Redis, ns: str) -> None:
    """Drop a finished scenario's indexes, documents and history records: every FT.CREATE
    scans the whole keyspace, so leftovers would slow later scenarios down."""
    for name in map(text, client.execute_command("FT._LIST")):
        if name.startswith(ns):
            client.execute_command("FT.DROPINDEX", name)
    keys = [
        *client.scan_iter(match=f"{ns}*", count=1000),
        *client.scan_iter(match=f"{HISTORY_KEY_PREFIX}{ns}*", count=1000),
    ]
    if keys:
        client.delete(*keys)


# --- the child process ---------------------------------------------------------------------


def _killer(fault: str) -> Callable[[str, int, int], None] | None:
    """The progress callback of a ``progress:<step>:<n>`` fault: SIGKILL at ``n`` done."""
    if not fault.startswith("progress:"):
        return None
    _, step, count = fault.split(":")

    def progress(name: str, done: int, total: int) -> None:
        if name == step and done >= int(count):
            os.kill(os.getpid(), signal.SIGKILL)

    return progress


def _sync(
    verb: str, url: str, workdir: Path, batch: int, progress: Callable[[str, int, int], None] | None
) -> MigrationReport:
    backup = workdir / "backup"
    client = redis.Redis.from_url(url, protocol=3)
    executor = MigrationExecutor()
    try:
        if verb == "apply":
            return executor.apply(
                workdir / "plan.yaml", client=client, backup_dir=backup, batch_size=batch,
                progress_callback=progress,
            )  # fmt: skip
        if verb in ("resume", "rollback"):
            run = getattr(executor, verb)
            return run(backup, client=client, batch_size=batch, progress_callback=progress)  # type: ignore[no-any-return]
        if verb == "cutover":
            return executor.cutover(backup, client=client, progress_callback=progress)
        if verb == "abort":
            return executor.abort(backup, client=client)
    finally:
        client.close()
    raise SystemExit(f"unknown verb {verb}")


async def _async(
    verb: str, url: str, workdir: Path, batch: int, progress: Callable[[str, int, int], None] | None
) -> MigrationReport:
    backup = workdir / "backup"
    client = redis.asyncio.Redis.from_url(url, protocol=3)
    executor = AsyncMigrationExecutor()
    try:
        if verb == "apply":
            return await executor.apply(
                workdir / "plan.yaml", client=client, backup_dir=backup, batch_size=batch,
                num_workers=2, progress_callback=progress,
            )  # fmt: skip
        if verb in ("resume", "rollback"):
            run = getattr(executor, verb)
            return await run(  # type: ignore[no-any-return]
                backup, client=client, batch_size=batch, num_workers=2, progress_callback=progress
            )
        if verb == "cutover":
            return await executor.cutover(
                backup, client=client, num_workers=2, progress_callback=progress
            )
        if verb == "abort":
            return await executor.abort(backup, client=client)
    finally:
        await client.aclose()
    raise SystemExit(f"unknown verb {verb}")


def main(argv: list[str], fault: str = "") -> int:
    from ftctl.errors import FtctlError

    verb, runner, url, workdir, batch = argv[0], argv[1], argv[2], Path(argv[3]), int(argv[4])
    progress = _killer(fault)
    try:
        if runner == "async":
            report = asyncio.run(_async(verb, url, workdir, batch, progress))
        else:
            report = _sync(verb, url, workdir, batch, progress)
    except FtctlError as exc:
        print(json.dumps({"error": type(exc).__name__, "message": exc.message}), flush=True)
        return exc.exit_code
    print(json.dumps({"result": report.result, "message": report.error}), flush=True)
    return 0 if report.result in ("succeeded", "rolled_back", "awaiting_cutover") else 1


def child(argv: list[str], fault: str, log: str) -> None:
    """Entry of a forked child (multiprocessing): ``main`` killed at ``fault``.

    Output goes to ``log``; the exit code is the process's, and also the log's last line
    (``{"exit": code}``) for every exit except a kill.
    """
    import gc

    gc.freeze()  # what the forkserver preloaded is never garbage (see onlinekit.child)
    os.environ.pop("FTCTL_FAULT", None)
    if fault and not fault.startswith("progress:"):
        os.environ["FTCTL_FAULT"] = fault
    out = open(log, "a", encoding="utf-8")  # noqa: SIM115 - open until the process ends
    sys.stdout = sys.stderr = out
    try:
        code = main(argv, fault)
    except BaseException as exc:  # the marker below must be written for every exit but a kill
        print(json.dumps({"unexpected": repr(exc)}), flush=True)
        code = 1
    gc.collect()
    print(json.dumps({"exit": code}), flush=True)
    out.flush()
    os._exit(code)
