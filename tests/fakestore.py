"""Key-level steps without a server: fakeredis behind the real sync driver and a real journal.

:class:`FakeStore` is one in-memory Redis (a ``fakeredis.FakeServer``) with a raw-bytes RESP3
client, as :func:`ftctl.drivers.connect` makes, a :class:`~ftctl.drivers.SyncDriver` on it
and a journal created in a temporary directory. Steps run exactly as in an apply: their
commands go through the driver (replies come through the fakeredis connection's own
``read_response``, see :func:`ftctl.drivers.wire.read_replies`), their events and segments go
to the journal on disk.

fakeredis runs the batch scripts (Lua through ``lupa``), JSON commands (also from Lua),
WATCH/MULTI/EXEC across clients, RENAMENX, and key and hash-field TTLs. Its script
environment lacks ``redis.sha1hex``, which the compare-and-set script calls; :func:`_add_sha1hex`
adds it (the real one is used by tests/integration/test_cas_server.py). What fakeredis lacks
stays in tests/integration against the real server: every FT.* command, ``COMMAND INFO
HSETEX`` (empty, so :func:`ftctl.steps.cas.watch_supported` answers no) and ``HSETEX …
KEEPTTL``, which fakeredis accepts but which drops the field's TTL where Redis 8 keeps it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import fakeredis
import numpy as np
import redis
from helpers import ft_info_reply

from ftctl.drivers import SyncDriver
from ftctl.journal import Journal, RunStarted, SegmentPayload, SegmentRef
from ftctl.schema.ftinfo import parse_ft_info
from ftctl.steps.effects import Step
from ftctl.steps.spec import Conversion, DocFieldRename, PrefixChange, RunSpec

R = TypeVar("R")

DIMS = 4
PLAN_YAML = "version: 1\nmode: drop_recreate\nsource:\n  index: docs\n"

KeyState = tuple[bytes, Any, int, dict[bytes, int]]
"""(type, content, PEXPIRETIME, hash field → HPEXPIRETIME for fields that have one)."""


class FakeStore:
    """One fakeredis server, a client and a sync driver on it, and a journal in ``directory``."""

    def __init__(self, directory: Path, *, protocol: int = 3) -> None:
        self.server = fakeredis.FakeServer()
        self.protocol = protocol
        self._clients: list[redis.Redis] = []
        self.r = self.client()
        _add_sha1hex(self.r, self.server)
        plan_sha = hashlib.sha256(PLAN_YAML.encode()).hexdigest()
        first = RunStarted(
            run_id="fake-run",
            kind="apply",
            index_name="docs",
            plan_yaml=PLAN_YAML,
            plan_sha256=plan_sha,
            mode="drop_recreate",
        )
        self.journal = Journal.create(directory, first=first)
        self.driver = SyncDriver(self.r, self.journal)

    def client(self) -> redis.Redis:
        """Another connection to the same data (a concurrent writer, or a worker)."""
        made: redis.Redis = fakeredis.FakeRedis(
            server=self.server, protocol=self.protocol, decode_responses=False
        )
        self._clients.append(made)
        return made

    def run(self, step: Step[R]) -> R:
        """Drive ``step`` through the real sync driver."""
        return self.driver.run(step)

    def keys_segment(self, keys: Sequence[bytes]) -> SegmentRef:
        """A key-list segment, as the enumerate step writes it."""
        return self.journal.write_segment(SegmentPayload(keys=list(keys)))

    def state(self) -> dict[bytes, KeyState]:
        """Every key with its type, content, PEXPIRETIME and hash-field expiry times: what
        "restored byte for byte" compares (JSON compared parsed: fakeredis spaces it)."""
        out: dict[bytes, KeyState] = {}
        for key in sorted(self.r.scan_iter(count=1000)):
            kind = self.r.type(key)
            expiry = self.r.execute_command("PEXPIRETIME", key)
            fields: dict[bytes, int] = {}
            content: Any
            if kind == b"hash":
                content = self.r.hgetall(key)
                names = sorted(content)
                times = self.r.execute_command("HPEXPIRETIME", key, "FIELDS", len(names), *names)
                fields = {n: t for n, t in zip(names, times, strict=True) if t > 0}
            elif kind == b"ReJSON-RL":
                content = json.loads(self.r.execute_command("JSON.GET", key, "$"))[0]
            else:
                content = self.r.get(key)
            out[key] = (kind, content, expiry, fields)
        return out

    def close(self) -> None:
        self.driver.close()
        self.journal.close()
        for client in self._clients:
            client.close()


def _add_sha1hex(client: redis.Redis, server: fakeredis.FakeServer) -> None:
    """Give fakeredis' EVAL the ``redis.sha1hex`` of Redis' scripting API (fakeredis 2.41 has
    it only for FUNCTION libraries), unless a later release brings its own."""
    client.eval("return 0", 0)  # fakeredis makes the server's Lua runtime on first use
    runtime: Any = server._lua_runtime
    table = runtime.globals().redis
    if table.sha1hex is None:
        table.sha1hex = lambda data: hashlib.sha1(data, usedforsecurity=False).hexdigest().encode()


def spec(
    *,
    storage: str = "hash",
    prefix: tuple[str, str] | None = None,
    renames: Sequence[tuple[str, str]] = (),
    conversions: Sequence[Conversion] = (),
    batch_size: int = 500,
) -> RunSpec:
    """A RunSpec of index ``docs`` on ``doc:`` with the given document-level changes."""
    schema = parse_ft_info(ft_info_reply()).schema
    return RunSpec(
        source_index="docs",
        target_index="docs",
        storage_type=storage,
        source_schema=schema,
        target_schema=schema,
        prefix_change=PrefixChange(old=prefix[0], new=prefix[1]) if prefix else None,
        field_renames=[DocFieldRename(old=old, new=new) for old, new in renames],
        conversions=list(conversions),
        batch_size=batch_size,
    )


def conversion(
    source: str = "float32", target: str = "float16", *, field: str = "emb", to: str | None = None
) -> Conversion:
    """A vector field re-encoded from ``source`` to ``target`` (renamed to ``to``, if given)."""
    return Conversion(
        backup_field=field, field=to or field, source=source, target=target, dims=DIMS
    )


def vectors(count: int, dtype: str = "float32", seed: int = 7) -> list[bytes]:
    """``count`` seeded vectors of :data:`DIMS` dims as ``dtype`` bytes."""
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(DIMS).astype(dtype).tobytes() for _ in range(count)]
