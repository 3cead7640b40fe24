"""Server shapes ftctl was not built for, refused before anything runs (sans-IO).

Three things about a server decide whether ftctl may touch it at all, whatever the plan's
schemas say:

- **Cluster mode** (``INFO cluster``: ``cluster_enabled:1``). Keys are routed by slot, FT
  commands fan out to every shard, multi-key scripts and MULTI are CROSSSLOT: nothing in a
  drop_recreate or online run holds there (DESIGN.md §10 plans it; until then, refused).
- **PARTIAL_INDEXED_DOCS** (a RediSearch module argument, read with ``FT.CONFIG GET``, or
  from ``MODULE LIST``'s arguments where FT.CONFIG is gone). With it on, an ``HSET`` of a hash
  field that an index reads as ``identifier AS attribute`` is never re-indexed: a plan that
  relies on such writes being indexed leaves a stale index (:func:`partial_indexing_problems`).
- **ACL permissions** of the connection's user for every command family the plan sends, on
  the names and keys it sends them to (:func:`plan_permissions`). They are checked by queueing
  each command inside ``MULTI`` and discarding the transaction — the server checks ACLs while
  queueing, executes nothing, and needs no admin right — or, where MULTI itself is not
  allowed, with ``ACL DRYRUN``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import msgspec

from ftctl.errors import RefusedError
from ftctl.plan.integrity import identity_problem, sample_keys, source_fingerprint
from ftctl.plan.models import MigrationPlan, ServerIdentity
from ftctl.schema.ftinfo import parse_ft_info
from ftctl.schema.model import IndexSchema
from ftctl.steps.effects import Command, Commands, ReplyError, Session, Step
from ftctl.steps.index_ops import THROWAWAY_PREFIX
from ftctl.steps.probe import PROBE_INDEX_PREFIX
from ftctl.steps.snapshot import VALIDATION_INDEX_PREFIX
from ftctl.text import printable

CLUSTER_PLAN = (
    "DESIGN.md §10: keys routed by slot with a connection per master, SCAN per master, "
    "per-key compare-and-set, prefix moves by copy-then-cut-over, every DDL verified on "
    "every shard, cut-over by one FT.ALIASUPDATE"
)

ACL_PROBE_SUFFIX = "__ftctl_acl_probe__"
"""Appended to a prefix to make the document key a permission probe names (never written)."""


class ServerShape(msgspec.Struct, frozen=True, kw_only=True):
    """What decides whether ftctl may run on a server at all."""

    cluster: bool = False
    partial_indexed_docs: bool = False
    user: str = ""
    """``ACL WHOAMI`` ("" when the server would not say)."""


def _text(value: object) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _info_field(reply: object, name: str) -> str | None:
    if isinstance(reply, Mapping):
        found = {_text(k): v for k, v in reply.items()}.get(name)
        return None if found is None else _text(found)
    for line in _text(reply).splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == name:
            return value.strip()
    return None


def _config_values(reply: object) -> dict[str, str]:
    """FT.CONFIG GET / CONFIG GET, as a RESP3 map, a flat list or a list of pairs."""
    if isinstance(reply, Mapping):
        return {_text(k).lower(): _text(v) for k, v in reply.items()}
    out: dict[str, str] = {}
    if isinstance(reply, list):
        if all(isinstance(p, list) and len(p) == 2 for p in reply):
            for key, value in reply:
                out[_text(key).lower()] = _text(value)
        else:
            for key, value in zip(reply[::2], reply[1::2], strict=False):
                out[_text(key).lower()] = _text(value)
    return out


def _module_args(reply: object, module: str) -> list[str]:
    """The load arguments of ``module`` in a MODULE LIST reply."""
    for entry in reply if isinstance(reply, list) else []:
        if isinstance(entry, Mapping):
            pairs = {_text(k): v for k, v in entry.items()}
        elif isinstance(entry, list):
            pairs = {_text(k): v for k, v in zip(entry[::2], entry[1::2], strict=False)}
        else:
            continue
        if _text(pairs.get("name", "")) == module:
            args = pairs.get("args")
            return [_text(a) for a in args] if isinstance(args, list) else []
    return []


def _on(value: str | None) -> bool:
    return value is not None and value.strip().lower() in ("1", "true", "yes", "on")


def partial_indexed_docs(config: object, modules: object) -> bool:
    """Whether PARTIAL_INDEXED_DOCS is on, from ``FT.CONFIG GET PARTIAL_INDEXED_DOCS`` (2.x),
    ``CONFIG GET search-partial-indexed-docs`` (newer servers) or the module's load
    arguments (``MODULE LIST``), whichever answers."""
    values = _config_values(config)
    if _on(values.get("partial_indexed_docs")) or _on(values.get("search-partial-indexed-docs")):
        return True
    args = [a.upper() for a in _module_args(modules, "search")]
    for position, arg in enumerate(args[:-1]):
        if arg == "PARTIAL_INDEXED_DOCS" and _on(args[position + 1]):
            return True
    return False


def read_shape() -> Step[ServerShape]:
    """One round trip: cluster mode, PARTIAL_INDEXED_DOCS, the connection's user."""
    cluster, ft_config, config, modules, user = yield Commands(
        [
            ("INFO", "cluster"),
            ("FT.CONFIG", "GET", "PARTIAL_INDEXED_DOCS"),
            ("CONFIG", "GET", "search-partial-indexed-docs"),
            ("MODULE", "LIST"),
            ("ACL", "WHOAMI"),
        ]
    )
    replies = [r if not isinstance(r, ReplyError) else None for r in (ft_config, config)]
    return ServerShape(
        cluster=not isinstance(cluster, ReplyError)
        and _info_field(cluster, "cluster_enabled") == "1",
        partial_indexed_docs=partial_indexed_docs(
            {**_config_values(replies[0]), **_config_values(replies[1])},
            None if isinstance(modules, ReplyError) else modules,
        ),
        user="" if isinstance(user, ReplyError) or user is None else _text(user),
    )


def refuse_cluster(shape: ServerShape) -> None:
    """RefusedError (nothing touched) on a server in cluster mode."""
    if shape.cluster:
        raise RefusedError(
            "the server runs in cluster mode (INFO cluster: cluster_enabled:1); ftctl is not "
            f"built for Redis Cluster yet and touches nothing there ({CLUSTER_PLAN})",
            "migrate on a standalone Redis, or wait for cluster support (DESIGN.md §10)",
        )


# --- PARTIAL_INDEXED_DOCS ------------------------------------------------------------------


def as_fields(schema: IndexSchema) -> dict[str, str]:
    """Hash fields FT.CREATE renders ``identifier AS attribute``: attribute → hash field."""
    if schema.storage_type != "hash":
        return {}  # JSON.SET is not filtered by PARTIAL_INDEXED_DOCS
    out: dict[str, str] = {}
    for f in schema.fields:
        path = schema.field_path(f)
        if path != f.name:
            out[f.name] = path
    return out


def partial_indexing_problems(plan: MigrationPlan) -> list[str]:
    """Why ``plan`` relies on writes to ``identifier AS attribute`` fields being re-indexed
    (pure; what PARTIAL_INDEXED_DOCS breaks). Empty: the plan does not.

    It does when the index it builds renders such a field and (a) the plan is online (the
    new index must pick up every write made while it is built, verified and after cut-over),
    (b) the plan itself writes that field (a batch redone after a server restart writes it
    with the new index live), or (c) the render is new (the source read that field
    otherwise, so the application's later writes to it were indexed and would stop being).
    """
    target = plan.merged_target_schema
    temps = plan.online.temp_fields if plan.online is not None else {}
    if plan.mode == "online" and temps and target.storage_type == "hash":
        shown = ", ".join(f"'{printable(t)} AS {printable(f)}'" for f, t in temps.items())
        return [
            f"the shadow index reads the converted vectors from temporary fields ({shown}), "
            "and with PARTIAL_INDEXED_DOCS on an HSET of such a field is never re-indexed; "
            "workaround: --mode drop_recreate, or restart the server without "
            "PARTIAL_INDEXED_DOCS"
        ]
    rendered = as_fields(target)
    if not rendered:
        return []
    before = as_fields(plan.source.schema_snapshot)
    written_names = [v.field for v in plan.vector_changes if v.reencode_documents]
    written_names += [r.new_name for r in plan.rename_operations.rename_fields]
    written = {rendered[n] for n in written_names if n in rendered}
    out: list[str] = []
    for name, path in rendered.items():
        if plan.mode == "online":
            why = "the online index must index every write made while it is built"
        elif path in written:
            why = "the plan rewrites that field, which a resumed run may do with the index live"
        elif before.get(name) != path:
            why = "the source did not read it that way, so the application's writes stop being indexed"
        else:
            continue
        out.append(
            f"field '{printable(name)}': the server runs RediSearch with PARTIAL_INDEXED_DOCS on, "
            f"where an HSET of hash field '{printable(path)}' is never re-indexed by an index "
            f"that reads it as '{printable(path)} AS {printable(name)}' ({why}); workaround: "
            "restart the server without PARTIAL_INDEXED_DOCS, or name the attribute like its "
            "hash field"
        )
    return out


# --- ACL permissions ------------------------------------------------------------------------


class Permission(NamedTuple):
    """A command the plan sends, with the names it sends it to (what ACLs check)."""

    command: Command
    on: str = ""
    """What the keys stand for, for the message: ``index 'docs'``, ``keys under 'doc:'``."""


def _index(name: str) -> str:
    return f"index '{printable(name)}'"


def _create(name: str, storage: str = "HASH") -> Command:
    return ("FT.CREATE", name, "ON", storage, "PREFIX", "1", f"{name}:", "SCHEMA", "f", "TEXT")


def probe_key(prefix: str) -> str:
    """A document key under ``prefix`` for permission probes (never written)."""
    return f"{prefix}{ACL_PROBE_SUFFIX}"


def planning_permissions(index: str) -> list[Permission]:
    """What planning ``index`` sends (reads, the throwaway indexes of the capability probe
    and of the target's validation), before any of it is sent."""
    probe, check = f"{PROBE_INDEX_PREFIX}acl_0", f"{VALIDATION_INDEX_PREFIX}acl"
    return [
        Permission(("FT.INFO", index), _index(index)),
        Permission(("FT._LIST",)),
        Permission(("FT.SEARCH", index, "*", "NOCONTENT", "LIMIT", "0", "1"), _index(index)),
        Permission(("MODULE", "LIST")),
        Permission(_create(probe), _index(probe)),
        Permission(("FT.DROPINDEX", probe), _index(probe)),
        Permission(_create(check), _index(check)),
        Permission(("FT.DROPINDEX", check), _index(check)),
    ]


CAPTURE_PERMISSION = Permission(("CLIENT", "TRACKING", "ON", "BCAST"))
"""What change capture sends (online expand runs follow concurrent writes with it)."""


def plan_permissions(plan: MigrationPlan) -> list[Permission]:
    """What applying ``plan`` (and rolling it back) sends: every command family, on the
    plan's own index names and a document key under each prefix it touches. (Schema
    history, ``ftctl:schema:*``, is advisory: a user who may not write it only loses it.)"""
    source, target = plan.source.schema_snapshot, plan.merged_target_schema
    src, dst = plan.source.index_name, target.name
    storage = source.storage_type.upper()
    prefixes = source.prefixes or [""]
    docs = [(probe_key(p), f"keys under '{printable(p)}'") for p in prefixes]
    check = f"{THROWAWAY_PREFIX}acl"
    out = [
        Permission(("FT.INFO", src), _index(src)),
        Permission(("FT._LIST",)),
        Permission(("FT.SEARCH", src, "*", "NOCONTENT", "LIMIT", "0", "1"), _index(src)),
        Permission(("FT.AGGREGATE", src, "*", "LOAD", "1", "@__key", "WITHCURSOR"), _index(src)),
        Permission(("FT.CURSOR", "READ", src, "0"), _index(src)),
        Permission(("INFO", "server")),
        Permission(("COMMAND", "INFO", "HSETEX")),
        Permission(("SCAN", "0", "MATCH", "*", "COUNT", "1")),
        Permission(_create(check, storage), _index(check)),
        Permission(("FT.DROPINDEX", check), _index(check)),
    ]
    if plan.mode == "online" and plan.online is not None:
        online = plan.online
        if online.strategy == "alter":
            out.append(Permission(("FT.ALTER", src, "SCHEMA", "ADD", "f", "TEXT"), _index(src)))
        else:
            shadow = online.shadow_name or dst
            out += [
                Permission(_create(shadow, storage), _index(shadow)),
                Permission(("FT.INFO", shadow), _index(shadow)),
                Permission(("FT.SEARCH", shadow, "*", "NOCONTENT"), _index(shadow)),
                Permission(("FT.DROPINDEX", shadow), _index(shadow)),
                Permission(("FT.DROPINDEX", src), _index(src)),
            ]
            for name in dict.fromkeys([online.serving_name, *online.aliases]):
                for verb in ("FT.ALIASADD", "FT.ALIASUPDATE"):
                    out.append(Permission((verb, name, shadow), f"alias '{printable(name)}'"))
            if online.strategy == "expand":
                out.append(CAPTURE_PERMISSION)
                if online.final_name:
                    final = online.final_name
                    out += [
                        Permission(_create(final, storage), _index(final)),
                        Permission(("FT.INFO", final), _index(final)),
                        Permission(("FT.SEARCH", final, "*", "NOCONTENT"), _index(final)),
                        Permission(("FT.DROPINDEX", final), _index(final)),
                    ]
                for key, keys in docs:
                    out += [
                        Permission(("DEL", key), keys),
                        Permission(("PEXPIRETIME", key), keys),
                        Permission(("PEXPIREAT", key, "1"), keys),
                    ]
                    if storage != "JSON":
                        out.append(Permission(("HGETALL", key), keys))
    else:
        out += [
            Permission(("FT.DROPINDEX", src), _index(src)),
            Permission(_create(dst, storage), _index(dst)),
            Permission(("FT.DROPINDEX", dst), _index(dst)),
            Permission(_create(src, storage), _index(src)),
        ]
    writes = (
        bool(plan.vector_changes or plan.rename_operations.rename_fields)
        or plan.rename_operations.change_prefix is not None
    )
    for key, keys in docs:
        if storage == "JSON":
            out += [Permission(("JSON.GET", key, "$"), keys), Permission(("EXISTS", key), keys)]
        else:
            out += [Permission(("HGET", key, "f"), keys), Permission(("HMGET", key, "f"), keys)]
        if not writes:
            continue
        out.append(Permission(("EVAL", "return 1", "1", key), keys))
        if storage == "JSON":
            out += [
                Permission(("JSON.SET", key, "$.f", "1", "NX"), keys),
                Permission(("JSON.DEL", key, "$.f"), keys),
                Permission(("JSON.TYPE", key, "$.f"), keys),
            ]
        else:
            out += [
                Permission(("HSET", key, "f", "v"), keys),
                Permission(("HDEL", key, "f"), keys),
                Permission(("HEXISTS", key, "f"), keys),
                Permission(("HPEXPIRETIME", key, "FIELDS", "1", "f"), keys),
                Permission(("HPEXPIREAT", key, "1", "FIELDS", "1", "f"), keys),
                Permission(("HSETEX", key, "KEEPTTL", "FIELDS", "1", "f", "v"), keys),
                Permission(("WATCH", key), keys),
            ]
        new_prefix = plan.rename_operations.change_prefix
        if new_prefix is not None:
            moved = probe_key(new_prefix)
            under = f"keys under '{printable(new_prefix)}'"
            out += [
                Permission(("RENAMENX", key, moved), f"{keys} and {under}"),
                Permission(("EXISTS", moved), under),
            ]
    if writes or plan.mode == "online":
        out += [Permission(("MULTI",)), Permission(("EXEC",))]
    return out


_UNQUEUEABLE = frozenset({"WATCH", "EXEC", "MULTI", "DISCARD", "UNWATCH"})


def _refused(reply: object) -> bool:
    return isinstance(reply, ReplyError) and "no permissions" in reply.message.lower()


def _name(command: Command) -> str:
    head = command[0]
    return (head.decode() if isinstance(head, bytes) else str(head)).upper()


def _label(permission: Permission, reply: object) -> str:
    name = _name(permission.command)
    keyed = isinstance(reply, ReplyError) and "access a key" in reply.message.lower()
    return f"{name} on {permission.on}" if keyed and permission.on else name


def _queued(permissions: Sequence[Permission]) -> Step[list[str] | None]:
    """Missing permissions by queueing: MULTI, each command, DISCARD (nothing executes).

    None when MULTI itself is refused. WATCH and EXEC cannot be queued: WATCH is tried
    with UNWATCH right after, EXEC on an empty transaction (both change nothing).
    """
    (multi,) = yield Commands([("MULTI",)])
    if isinstance(multi, ReplyError):
        return None
    queue = [p for p in permissions if _name(p.command) not in _UNQUEUEABLE]
    replies = yield Commands([*(p.command for p in queue), ("DISCARD",)])
    if isinstance(replies[-1], ReplyError):
        # Still inside MULTI: fail the session so the driver drops the connection.
        raise RefusedError(
            f"the server refused DISCARD: {replies[-1].message}",
            "grant the user +discard (and +multi, +exec for online cut-overs)",
        )
    missing = [_label(p, r) for p, r in zip(queue, replies, strict=False) if _refused(r)]
    for permission in permissions:
        name = _name(permission.command)
        if name == "WATCH":
            watched, _ = yield Commands([permission.command, ("UNWATCH",)])
            if _refused(watched):
                missing.append(_label(permission, watched))
        elif name == "EXEC":
            _, executed = yield Commands([("MULTI",), ("EXEC",)])
            if _refused(executed):
                yield Commands([("DISCARD",)])
                missing.append("EXEC")
    return missing


def _dry_run(permissions: Sequence[Permission], user: str) -> Step[list[str] | None]:
    """Missing permissions by ``ACL DRYRUN`` (an admin command); None when refused too."""
    if not user:
        return None
    replies = yield Commands([("ACL", "DRYRUN", user, *p.command) for p in permissions])
    if any(_refused(r) for r in replies):
        return None  # DRYRUN itself is not allowed
    missing = []
    for permission, reply in zip(permissions, replies, strict=True):
        if isinstance(reply, ReplyError):
            continue  # an unknown command (an older server): not a permission
        text = _text(reply)
        if text != "OK":
            keyed = "access" in text.lower() and "key" in text.lower()
            name = _name(permission.command)
            missing.append(f"{name} on {permission.on}" if keyed and permission.on else name)
    return missing


def missing_permissions(
    permissions: Sequence[Permission], user: str = ""
) -> Step[list[str] | None]:
    """The permissions the connection's user lacks, in order and without repeats; None when
    they cannot be checked (neither MULTI nor ACL DRYRUN is allowed)."""
    missing = yield Session(_queued(permissions))
    if missing is None:
        missing = yield from _dry_run(permissions, user)
    return None if missing is None else list(dict.fromkeys(missing))


def refuse_missing(missing: list[str] | None, user: str, what: str) -> None:
    """RefusedError naming ``missing`` (nothing touched); None or empty passes."""
    if missing:
        who = f"user '{printable(user)}'" if user else "this connection's user"
        raise RefusedError(
            f"{who} lacks ACL permissions {what} needs: {', '.join(missing)}",
            "grant them (ACL SETUSER … +<command> ~<key pattern>), or connect as a user "
            "that has them; nothing was changed",
        )


# --- which server ----------------------------------------------------------------------------


def _laddr(reply: object) -> str:
    for part in _text(reply).split():
        key, sep, value = part.partition("=")
        if sep and key == "laddr":
            return value
    return ""


def read_identity(index: str) -> Step[ServerIdentity]:
    """The server's run_id, its own address of this connection, and the fingerprint of
    ``index``'s definition (empty parts where the server does not say)."""
    info, client, ft_info = yield Commands(
        [("INFO", "server"), ("CLIENT", "INFO"), ("FT.INFO", index)]
    )
    run_id = "" if isinstance(info, ReplyError) else _info_field(info, "run_id") or ""
    address = "" if isinstance(client, ReplyError) else _laddr(client)
    if not address and not isinstance(info, ReplyError):
        port = _info_field(info, "tcp_port")
        address = f"port {port}" if port else ""
    fingerprint = (
        "" if isinstance(ft_info, ReplyError) else source_fingerprint(parse_ft_info(ft_info).schema)
    )
    return ServerIdentity(run_id=run_id, address=address, source_fingerprint=fingerprint)


def identity_refusal(plan: MigrationPlan) -> Step[str | None]:
    """Why this is not the server ``plan`` was made against (None: it is, or the plan does
    not say which server it was made against)."""
    planned = plan.server
    if planned is None:
        return None
    live = yield from read_identity(plan.source.index_name)
    exist = True
    keys = sample_keys(plan)
    if keys and planned.run_id != live.run_id:
        (count,) = yield Commands([("EXISTS", *keys)])
        exist = count == len(keys)
    return identity_problem(planned, live, sampled_keys_exist=exist)


class ServerCheck(NamedTuple):
    """What a server check found that does not refuse the run."""

    shape: ServerShape
    unverified: bool = False
    """The permissions could not be checked (neither MULTI nor ACL DRYRUN allowed)."""


def check_for_planning(index: str) -> Step[ServerCheck]:
    """Before any planning read: refuse cluster mode and a user who cannot plan ``index``."""
    shape = yield from read_shape()
    refuse_cluster(shape)
    missing = yield from missing_permissions(planning_permissions(index), shape.user)
    refuse_missing(missing, shape.user, f"planning '{printable(index)}'")
    return ServerCheck(shape, unverified=missing is None)


def check_for_run(plan: MigrationPlan, *, verb: str = "apply") -> Step[ServerCheck]:
    """Before a run touches anything: refuse cluster mode, PARTIAL_INDEXED_DOCS where the
    plan relies on re-indexing (not for rollback, which writes with no index live), and a
    user lacking a permission the plan needs."""
    shape = yield from read_shape()
    refuse_cluster(shape)
    if shape.partial_indexed_docs and verb != "rollback":
        problems = partial_indexing_problems(plan)
        if problems:
            raise RefusedError(
                f"the plan cannot run on this server: {'; '.join(problems)}",
                "nothing was changed",
            )
    missing = yield from missing_permissions(plan_permissions(plan), shape.user)
    refuse_missing(missing, shape.user, f"this plan's {verb}")
    return ServerCheck(shape, unverified=missing is None)


def check_for_apply(plan: MigrationPlan, *, identity: bool) -> Step[tuple[ServerCheck, str | None]]:
    """:func:`check_for_run` for an apply, and, with ``identity`` (a new journal), why this
    is not the server the plan was made against (None: it is, or the plan does not say)."""
    check = yield from check_for_run(plan)
    problem = (yield from identity_refusal(plan)) if identity else None
    return check, problem


__all__ = [
    "CAPTURE_PERMISSION",
    "CLUSTER_PLAN",
    "Permission",
    "ServerCheck",
    "ServerShape",
    "as_fields",
    "check_for_apply",
    "check_for_planning",
    "check_for_run",
    "identity_refusal",
    "missing_permissions",
    "partial_indexed_docs",
    "partial_indexing_problems",
    "plan_permissions",
    "planning_permissions",
    "probe_key",
    "read_identity",
    "read_shape",
    "refuse_cluster",
    "refuse_missing",
]
