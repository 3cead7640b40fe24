"""Server shapes from scripted replies, and what a plan needs of a server (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from ftctl.errors import RefusedError
from ftctl.plan.build import build_plan
from ftctl.plan.live import LiveSnapshot
from ftctl.plan.models import MigrationPlan, patch_from_builtins
from ftctl.schema.capabilities import Capabilities
from ftctl.schema.ftinfo import IndexInfo, IndexStats
from ftctl.schema.model import from_builtins
from ftctl.steps.effects import ReplyError
from ftctl.steps.shape import (
    as_fields,
    check_for_planning,
    missing_permissions,
    partial_indexed_docs,
    partial_indexing_problems,
    plan_permissions,
    read_shape,
)
from ftctl.testing import ScriptedRedis

VECTOR = {"dims": 4, "algorithm": "hnsw", "datatype": "float32"}


def _source(storage: str = "hash", **paths: str) -> dict[str, Any]:
    fields: list[dict[str, Any]] = [
        {"name": "title", "type": "text"},
        {"name": "emb", "type": "vector", "attrs": VECTOR},
    ]
    for f in fields:
        if f["name"] in paths:
            f["path"] = paths[f["name"]]
    return {"index": {"name": "docs", "prefix": "doc:", "storage_type": storage}, "fields": fields}


def _plan(
    changes: dict[str, Any], *, mode: str = "drop_recreate", source: dict[str, Any] | None = None
) -> MigrationPlan:
    schema = from_builtins(source or _source())
    snapshot = LiveSnapshot(
        requested_name="docs",
        source=IndexInfo(index_name="docs", schema=schema, stats=IndexStats(num_docs=10)),
        index_names=["docs"],
        target_validated=True,
    )
    patch = patch_from_builtins({"version": 1, "changes": changes})
    return build_plan(snapshot, patch, Capabilities(), mode=mode)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("config", "modules", "on"),
    [
        ({b"PARTIAL_INDEXED_DOCS": b"true"}, [], True),
        ([[b"PARTIAL_INDEXED_DOCS", b"true"]], [], True),
        ({b"search-partial-indexed-docs": b"yes"}, [], True),
        ({b"PARTIAL_INDEXED_DOCS": b"false"}, [], False),
        (None, [{b"name": b"search", b"args": [b"PARTIAL_INDEXED_DOCS", b"1"]}], True),
        (None, [[b"name", b"search", b"args", [b"PARTIAL_INDEXED_DOCS", b"0"]]], False),
        (None, None, False),
    ],
)
def test_partial_indexed_docs_is_read_wherever_the_server_says_it(
    config: object, modules: object, on: bool
) -> None:
    """FT.CONFIG GET (RESP3 map or RESP2 pairs), CONFIG GET of newer servers, or the
    module's load arguments in MODULE LIST (RESP3 or RESP2): any one saying on is on."""
    assert partial_indexed_docs(config, modules) is on


def test_read_shape_in_one_round_trip() -> None:
    """INFO cluster, the two config reads, MODULE LIST and ACL WHOAMI go out together; a
    server without FT.CONFIG or ACL (errors) reads as not partial, no user."""
    scripted = ScriptedRedis(
        [
            ("INFO cluster", b"# Cluster\r\ncluster_enabled:1\r\n"),
            ("FT.CONFIG GET PARTIAL_INDEXED_DOCS", ReplyError("ERR unknown command")),
            ("CONFIG GET search-partial-indexed-docs", {}),
            ("MODULE LIST", [{b"name": b"search", b"args": [b"PARTIAL_INDEXED_DOCS", b"1"]}]),
            ("ACL WHOAMI", ReplyError("NOPERM")),
        ]
    )
    shape = scripted.run(read_shape())
    assert shape.cluster and shape.partial_indexed_docs and shape.user == ""


def test_cluster_mode_refuses_before_any_planning_read() -> None:
    """On a cluster node the planning check raises after its one read: nothing else sent."""
    scripted = ScriptedRedis(
        [
            ("INFO cluster", {"cluster_enabled": 1}),
            ("FT.CONFIG *", {}),
            ("CONFIG GET *", {}),
            ("MODULE LIST", []),
            ("ACL WHOAMI", b"default"),
        ]
    )
    with pytest.raises(RefusedError, match=r"cluster mode .*DESIGN\.md §10"):
        scripted.run(check_for_planning("docs"))
    scripted.assert_done()


def test_as_fields_are_hash_fields_read_under_another_name() -> None:
    """``identifier AS attribute`` renders: hash fields whose name differs from the
    attribute; JSON never counts (JSON.SET is not what PARTIAL_INDEXED_DOCS filters)."""
    assert as_fields(from_builtins(_source(title="head"))) == {"title": "head"}
    assert as_fields(from_builtins(_source())) == {}
    assert as_fields(from_builtins(_source("json"))) == {}


def test_which_plans_rely_on_as_fields_being_reindexed() -> None:
    """A new AS render, an AS field the plan rewrites, or any AS field of an online plan
    relies on re-indexing; an AS field the source already had, untouched by a
    drop_recreate plan, does not."""
    new = _plan({"add_fields": [{"name": "headline", "type": "text", "path": "title"}]})
    (problem,) = partial_indexing_problems(new)
    assert problem.startswith("field 'headline': the server runs RediSearch with PARTIAL")
    assert "'title AS headline'" in problem and "writes stop being indexed" in problem
    kept = _plan(
        {"update_fields": [{"name": "emb", "attrs": {"m": 8}}]}, source=_source(title="head")
    )
    assert partial_indexing_problems(kept) == []
    rewritten = _plan(
        {"update_fields": [{"name": "emb", "attrs": {"datatype": "float16"}}]},
        source=_source(emb="vec"),
    )
    (problem,) = partial_indexing_problems(rewritten)
    assert "'vec AS emb'" in problem and "rewrites that field" in problem
    online = _plan(
        {"add_fields": [{"name": "color", "type": "tag"}]},
        mode="online",
        source=_source(title="head"),
    )
    assert online.mode == "online"
    (problem,) = partial_indexing_problems(online)
    assert "online index must index every write" in problem
    assert partial_indexing_problems(_plan({"add_fields": [{"name": "c", "type": "tag"}]})) == []


def _texts(plan: MigrationPlan) -> list[str]:
    return [" ".join(str(a) for a in p.command) for p in plan_permissions(plan)]


def test_permissions_name_the_plans_indexes_keys_and_command_families() -> None:
    """A quantization with a prefix change needs its drop and create, the scripts and hash
    writes on keys under the old prefix, RENAMENX onto the new one, MULTI/EXEC; an added
    TAG field reads only and writes no document."""
    moving = _plan(
        {
            "update_fields": [{"name": "emb", "attrs": {"datatype": "float16"}}],
            "index": {"prefix": "item:"},
        }
    )
    texts = _texts(moving)
    for expected in [
        "FT.DROPINDEX docs",
        "FT.CREATE docs ON HASH PREFIX 1 docs: SCHEMA f TEXT",
        "EVAL return 1 1 doc:__ftctl_acl_probe__",
        "HSET doc:__ftctl_acl_probe__ f v",
        "RENAMENX doc:__ftctl_acl_probe__ item:__ftctl_acl_probe__",
        "WATCH doc:__ftctl_acl_probe__",
        "MULTI",
        "EXEC",
    ]:
        assert expected in texts, expected
    reading = _texts(_plan({"add_fields": [{"name": "c", "type": "tag"}]}))
    assert not [t for t in reading if t.split()[0] in ("EVAL", "HSET", "MULTI", "RENAMENX")]


def _queue_script(replies: list[object], *, multi: object = b"OK") -> list[tuple[str, object]]:
    return [("MULTI", multi), *(("*", r) for r in replies), ("DISCARD", b"OK")]


def test_permissions_are_checked_by_queueing_and_discarding() -> None:
    """MULTI, every command queued (the server checks ACLs while queueing), DISCARD: the
    refused ones are named (a key refusal with what the key stands for); WATCH is tried
    with UNWATCH after it, EXEC on an empty transaction; nothing is executed."""
    plan = _plan({"update_fields": [{"name": "emb", "attrs": {"datatype": "float16"}}]})
    permissions = plan_permissions(plan)
    queued = [p for p in permissions if str(p.command[0]) not in ("WATCH", "MULTI", "EXEC")]

    def reply(command: tuple[object, ...]) -> object:
        if command[0] == "FT.DROPINDEX" and command[1] == "docs":
            return ReplyError("User u has no permissions to run the 'FT.DROPINDEX' command")
        if command[0] == "HSET":
            return ReplyError("No permissions to access a key")
        return b"QUEUED"

    script: list[tuple[str, object]] = [("MULTI", b"OK")]
    script += [("*", reply)] * len(queued)
    script += [("DISCARD", b"OK"), ("WATCH *", b"OK"), ("UNWATCH", b"OK")]
    script += [("MULTI", b"OK"), ("EXEC", [])]
    scripted = ScriptedRedis(script)
    missing = scripted.run(missing_permissions(permissions, "u"))
    scripted.assert_done()
    assert missing == ["FT.DROPINDEX", "HSET on keys under 'doc:'"]


def test_without_multi_acl_dryrun_checks_and_without_both_nothing_is_claimed() -> None:
    """MULTI refused: ACL DRYRUN for the user answers instead (its text names a refusal);
    DRYRUN refused too: None — the permissions could not be checked."""
    plan = _plan({"add_fields": [{"name": "c", "type": "tag"}]})
    permissions = plan_permissions(plan)
    refused = ReplyError("User u has no permissions to run the 'multi' command")

    def dry(command: tuple[object, ...]) -> object:
        if command[3] == "FT.CREATE":
            return b"User u has no permissions to access the 'docs' key"
        return b"OK"

    scripted = ScriptedRedis([("MULTI", refused), *[("ACL DRYRUN u *", dry)] * len(permissions)])
    assert scripted.run(missing_permissions(permissions, "u")) == [
        "FT.CREATE on index '__ftctl_check_acl'",
        "FT.CREATE on index 'docs'",
    ]
    no_acl = ReplyError("User u has no permissions to run the 'acl|dryrun' command")
    scripted = ScriptedRedis([("MULTI", refused), *[("ACL DRYRUN u *", no_acl)] * len(permissions)])
    assert scripted.run(missing_permissions(permissions, "u")) is None
