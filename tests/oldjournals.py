"""Redis states of the old-journal fixtures: capture, file format, restore, comparison.

A journal cannot be resumed or rolled back without the Redis data it describes, so every
fixture under ``fixtures/journals/<scenario>/`` pairs a journal directory with the Redis
state at the moment it was recorded (and the state before the migration ran).

State file (JSON, never pickle)::

    {"format": "ftctl-redis-state", "version": 1,
     "keys": [{"key": "doc:0", "pexpiretime": -1, "dump": "<base64 DUMP payload>"}, ...],
     "indexes": [{"name": "docs", "create": ["FT.CREATE", "docs", "ON", "HASH", ...]}],
     "aliases": {"docs_live": "docs"}}

``DUMP`` payloads carry hash field expirations; key expirations are absolute times
(``PEXPIRETIME``, restored with ``RESTORE … ABSTTL``), so a restored state compares exactly
with the recorded one. Capturing uses ftctl's FT.INFO parser and FT.CREATE renderer, once,
at recording time; restoring needs only the recorded argv and Redis commands, so the fixtures
mean the same thing whatever later versions of ftctl do with schemas.

:func:`snapshot` is what "equal" means in the tests: every key with its type, content (hash
fields, string value, or DUMP), key expiry and hash field expiries, and every index as
FT.INFO describes its definition and fields, with its document and failure counts.
"""

from __future__ import annotations

import base64
import json
import shutil
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import redis

from ftctl.schema.ftinfo import parse_ft_info
from ftctl.schema.render import create_argv

FORMAT = "ftctl-redis-state"
HISTORY_PREFIX = b"ftctl:schema:"
"""ftctl's schema history keys (``ftctl:schema:<index>``): metadata with a timestamp."""

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "fixtures" / "journals"


# --- capture and file format ----------------------------------------------------------------


def resolve(r: redis.Redis, name: str) -> str | None:
    """The real index ``name`` answers FT.INFO with (itself or an alias's target), or None."""
    try:
        info = r.execute_command("FT.INFO", name)
    except redis.ResponseError:
        return None
    return _text(_pairs(info)["index_name"])


def capture_state(r: redis.Redis, *, names: Iterable[str] = ()) -> dict[str, Any]:
    """Every key (DUMP + PEXPIRETIME), every index (FT.CREATE argv rebuilt from FT.INFO) and
    each of ``names`` that is an alias (RediSearch cannot list aliases, so the caller names
    the candidates: the aliases it created and the public names of its plans)."""
    keys = []
    for key in sorted(r.scan_iter(count=1000)):
        payload = r.dump(key)
        assert payload is not None, key
        keys.append(
            {
                "key": key.decode("ascii"),
                "pexpiretime": int(r.execute_command("PEXPIRETIME", key)),
                "dump": base64.b64encode(payload).decode("ascii"),
            }
        )
    indexes = []
    for raw in sorted(r.execute_command("FT._LIST")):
        name = _text(raw)
        schema = parse_ft_info(r.execute_command("FT.INFO", name)).schema
        indexes.append({"name": name, "create": create_argv(schema, name=name)})
    real = {i["name"] for i in indexes}
    aliases = {}
    for name in sorted(set(names) - real):
        target = resolve(r, name)
        if target is not None:
            aliases[name] = target
    return {"format": FORMAT, "version": 1, "keys": keys, "indexes": indexes, "aliases": aliases}


def write_state(path: Path, state: dict[str, Any]) -> None:
    """The state as JSON, one key per line (diffable)."""
    head = {k: v for k, v in state.items() if k != "keys"}
    lines = [json.dumps(head, sort_keys=True)[:-1] + ', "keys": [']
    lines += [
        "  " + json.dumps(k, sort_keys=True) + ("," if i < len(state["keys"]) - 1 else "")
        for i, k in enumerate(state["keys"])
    ]
    lines.append("]}")
    path.write_text("\n".join(lines) + "\n")


def read_state(path: Path) -> dict[str, Any]:
    state: dict[str, Any] = json.loads(path.read_text())
    assert state["format"] == FORMAT and state["version"] == 1, path
    return state


# --- restore --------------------------------------------------------------------------------


def restore_state(r: redis.Redis, state: dict[str, Any]) -> None:
    """FLUSHALL, RESTORE every key with its absolute expiry, recreate indexes and aliases,
    and wait until every index has indexed its documents."""
    r.flushall()
    pipe = r.pipeline(transaction=False)
    for entry in state["keys"]:
        payload = base64.b64decode(entry["dump"])
        expiry = max(int(entry["pexpiretime"]), 0)
        pipe.restore(entry["key"], expiry, payload, absttl=expiry > 0)
    pipe.execute()
    for index in state["indexes"]:
        r.execute_command(*index["create"])
    for alias, target in state["aliases"].items():
        r.execute_command("FT.ALIASADD", alias, target)
    for index in state["indexes"]:
        wait_indexed(r, index["name"])


def wait_indexed(r: redis.Redis, name: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        info = _pairs(r.execute_command("FT.INFO", name))
        if not int(info["indexing"]) and float(info["percent_indexed"]) >= 1.0:
            return
        assert time.monotonic() < deadline, f"index {name} still indexing after {timeout}s"
        time.sleep(0.01)


def copy_fixture(scenario: str, destination: Path) -> Path:
    """A private copy of ``fixtures/journals/<scenario>/backup`` (runs append to journals)."""
    target = destination / scenario
    shutil.copytree(FIXTURES / scenario / "backup", target)
    return target


# --- comparison -----------------------------------------------------------------------------


def index_view(r: redis.Redis, name: str) -> dict[str, Any]:
    """What an index (or the index an alias names) is, as FT.INFO says: definition, options,
    fields, number of documents and of indexing failures (its real name left out)."""
    info = _pairs(r.execute_command("FT.INFO", name))
    return _plain(
        {
            "options": info.get("index_options"),
            "definition": info["index_definition"],
            "attributes": info["attributes"],
            "num_docs": info["num_docs"],
            "hash_indexing_failures": info["hash_indexing_failures"],
        }
    )


def snapshot(r: redis.Redis, *, history: bool = False) -> dict[str, Any]:
    """Every key (type, content, PEXPIRETIME, hash field expiries) and every index by name.

    ftctl's schema history keys are left out unless ``history``: they hold the time they were
    written, and an original state never has them."""
    keys: dict[bytes, Any] = {}
    for key in sorted(r.scan_iter(count=1000)):
        if key.startswith(HISTORY_PREFIX) and not history:
            continue
        kind = r.type(key)
        content: Any
        field_expiry: dict[bytes, int] = {}
        if kind == b"hash":
            content = r.hgetall(key)
            names = sorted(content)
            expiries = r.execute_command("HPEXPIRETIME", key, "FIELDS", len(names), *names)
            field_expiry = dict(zip(names, expiries, strict=True))
        elif kind == b"string":
            content = r.get(key)
        else:
            content = r.dump(key)
        keys[key] = (kind, content, r.execute_command("PEXPIRETIME", key), field_expiry)
    indexes = {_text(n): index_view(r, _text(n)) for n in r.execute_command("FT._LIST")}
    return {"keys": keys, "indexes": indexes}


def _pairs(reply: Any) -> dict[str, Any]:
    """An FT.INFO reply (RESP3 map or RESP2 flat list) as a dict with str keys."""
    if isinstance(reply, dict):
        return {_text(k): v for k, v in reply.items()}
    return {_text(reply[i]): reply[i + 1] for i in range(0, len(reply), 2)}


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, dict):
        return {_text(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
