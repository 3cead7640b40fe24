"""Server shapes ftctl was not built for are refused before anything is touched (issue 13.11).

Each test starts a server of its own, shaped like a user's: cluster mode, RediSearch with
PARTIAL_INDEXED_DOCS, ACL users that lack a command ftctl sends. A refusal is exit 2 with
a line naming the cause, and Redis, the backup dir and the plan file are left as they were.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner
from helpers import INDEX, patch, snapshot, source, state

from ftctl.cli import cli
from ftctl.errors import RefusedError
from ftctl.executor import MigrationExecutor
from ftctl.plan import dump_plan
from ftctl.planner import MigrationPlanner
from ftctl.server import EmbeddedServer

TO_FLOAT16 = patch(update_fields=[{"name": "emb", "attrs": {"datatype": "float16"}}])
ADD_TAG = patch(add_fields=[{"name": "color", "type": "tag"}])
ADD_AS = patch(add_fields=[{"name": "headline", "type": "text", "path": "title"}])
"""A new attribute over an existing hash field: FT.CREATE renders ``title AS headline``."""


def _client(server: EmbeddedServer, **kwargs: object) -> redis.Redis:
    return redis.Redis.from_url(server.url, protocol=3, **kwargs)  # type: ignore[arg-type]


def _user_url(server: EmbeddedServer, user: str) -> str:
    return f"redis://{user}:pw@127.0.0.1:{server.port}"


def _add_user(server: EmbeddedServer, name: str, *rules: str) -> None:
    admin = _client(server)
    admin.execute_command("ACL", "SETUSER", name, "on", ">pw", "&*", *rules)
    admin.close()


# --- cluster mode ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster() -> Iterator[EmbeddedServer]:
    """A single node in cluster mode (no slots assigned: enough to show the mode)."""
    with EmbeddedServer(server_args=("--cluster-enabled", "yes")) as server:
        yield server


def test_cluster_mode_is_refused_before_planning(cluster: EmbeddedServer, tmp_path: Path) -> None:
    """`migrate plan` against a node in cluster mode: exit 2 naming cluster mode and
    DESIGN.md §10's plan, no plan file written (the planner sends nothing but the probe)."""
    patch_file = tmp_path / "patch.yaml"
    patch_file.write_text("version: 1\nchanges: {add_fields: [{name: color, type: tag}]}\n")
    result = CliRunner().invoke(
        cli,
        ["--url", cluster.url, "migrate", "plan", "--index", INDEX,
         "--schema-patch", str(patch_file), "--plan-out", str(tmp_path / "plan.yaml")],
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "cluster mode (INFO cluster: cluster_enabled:1)" in result.stderr
    assert "DESIGN.md §10" in result.stderr
    assert not (tmp_path / "plan.yaml").exists()


def test_cluster_mode_is_refused_before_apply(
    cluster: EmbeddedServer, redis_url: str, r: redis.Redis, tmp_path: Path
) -> None:
    """A plan made on a standalone server, applied to a node in cluster mode: refused with
    nothing touched — no journal is created."""
    source(r, "hash")
    made = MigrationPlanner().create_plan(INDEX, redis_url=redis_url, schema_patch=ADD_TAG)
    with pytest.raises(RefusedError, match="cluster mode"):
        MigrationExecutor().apply(
            made, redis_url=cluster.url, backup_dir=tmp_path / "b", allow_other_server=True
        )
    assert not (tmp_path / "b").exists()


def test_batch_planning_refuses_cluster_mode(cluster: EmbeddedServer, tmp_path: Path) -> None:
    """`migrate batch-plan` on a cluster node: the same refusal, before any index is read."""
    patch_file = tmp_path / "patch.yaml"
    patch_file.write_text("version: 1\nchanges: {add_fields: [{name: color, type: tag}]}\n")
    result = CliRunner().invoke(
        cli,
        ["--url", cluster.url, "migrate", "batch-plan", "--pattern", "*",
         "--schema-patch", str(patch_file), "--plan-out", str(tmp_path / "batch.yaml")],
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "cluster mode" in result.stderr


# --- PARTIAL_INDEXED_DOCS --------------------------------------------------------------------


@pytest.fixture
def partial() -> Iterator[EmbeddedServer]:
    """RediSearch loaded with PARTIAL_INDEXED_DOCS 1."""
    with EmbeddedServer(search_args=("PARTIAL_INDEXED_DOCS", "1")) as server:
        yield server


def test_partial_indexed_docs_really_leaves_as_fields_stale(partial: EmbeddedServer) -> None:
    """Why the refusal exists: with PARTIAL_INDEXED_DOCS an HSET of a hash field an index
    reads as ``title AS headline`` is never re-indexed (a field without AS is)."""
    r = _client(partial)
    r.execute_command(
        "FT.CREATE", "i", "PREFIX", "1", "d:", "SCHEMA", "title", "AS", "headline", "TEXT",
        "n", "NUMERIC",
    )  # fmt: skip
    r.hset("d:1", mapping={"title": "hello", "n": 1})
    r.hset("d:1", mapping={"title": "world"})
    r.hset("d:2", mapping={"title": "hello", "n": 1})
    r.hset("d:2", mapping={"n": 5})
    found = r.execute_command("FT.SEARCH", "i", "@headline:world", "NOCONTENT")
    assert found[b"total_results"] == 0
    assert r.execute_command("FT.SEARCH", "i", "@n:[5 5]", "NOCONTENT")[b"total_results"] == 1


def test_a_plan_that_renders_a_new_as_field_is_blocked(partial: EmbeddedServer) -> None:
    """Planning an attribute over an existing hash field (``title AS headline``) on a
    server with PARTIAL_INDEXED_DOCS: the plan is blocked, naming the option and the field;
    the same change on a default server is supported."""
    r = _client(partial)
    source(r, "hash")
    made = MigrationPlanner().create_plan(INDEX, redis_url=partial.url, schema_patch=ADD_AS)
    assert not made.supported
    (reason,) = [b for b in made.diff_classification.blocked_reasons if "PARTIAL" in b]
    assert reason.startswith("field 'headline': the server runs RediSearch with PARTIAL_INDEXED")
    assert "'title AS headline'" in reason


def test_apply_refuses_such_a_plan_on_a_server_with_partial_indexed_docs(
    partial: EmbeddedServer, redis_url: str, r: redis.Redis, tmp_path: Path
) -> None:
    """The plan made where PARTIAL_INDEXED_DOCS is off, applied where it is on (the server
    was restarted with it): refused before anything runs, Redis unchanged, no journal."""
    source(r, "hash")
    made = MigrationPlanner().create_plan(INDEX, redis_url=redis_url, schema_patch=ADD_AS)
    assert made.supported, made.diff_classification.blocked_reasons
    other = _client(partial)
    source(other, "hash")
    before = state(other)
    with pytest.raises(RefusedError, match="PARTIAL_INDEXED_DOCS on") as refused:
        MigrationExecutor().apply(
            made, redis_url=partial.url, backup_dir=tmp_path / "b", allow_other_server=True
        )
    assert "'title AS headline'" in refused.value.message
    assert state(other) == before
    assert not (tmp_path / "b").exists()


def test_plans_without_as_fields_run_with_partial_indexed_docs(
    partial: EmbeddedServer, tmp_path: Path
) -> None:
    """No false refusal: a quantization (no AS render) plans and applies on that server."""
    r = _client(partial)
    source(r, "hash")
    made = MigrationPlanner().create_plan(INDEX, redis_url=partial.url, schema_patch=TO_FLOAT16)
    assert made.supported, made.diff_classification.blocked_reasons
    report = MigrationExecutor().apply(
        made, redis_url=partial.url, backup_dir=tmp_path / "b", accept_data_loss=True
    )
    assert report.result == "succeeded", report.error


def test_auto_falls_back_to_drop_recreate_saying_why(partial: EmbeddedServer) -> None:
    """An in-place quantization online reads temporary fields through AS, which
    PARTIAL_INDEXED_DOCS never re-indexes: --mode auto plans drop_recreate and says why;
    --mode online is blocked for the same reason."""
    r = _client(partial)
    source(r, "hash")
    planner = MigrationPlanner()
    auto = planner.create_plan(INDEX, redis_url=partial.url, schema_patch=TO_FLOAT16, mode="auto")
    assert auto.mode == "drop_recreate" and auto.supported
    assert auto.mode_reason.startswith("auto: online mode is not possible: the shadow index")
    assert "PARTIAL_INDEXED_DOCS" in auto.mode_reason
    assert any(w.startswith("drop_recreate chosen: auto:") for w in auto.warnings)
    online = planner.create_plan(
        INDEX, redis_url=partial.url, schema_patch=TO_FLOAT16, mode="online"
    )
    assert not online.supported
    assert any("temporary fields" in b for b in online.diff_classification.blocked_reasons)


# --- ACL permissions -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def acl() -> Iterator[EmbeddedServer]:
    """A server with ACL users of every kind these tests need (password ``pw``)."""
    with EmbeddedServer() as server:
        _add_user(server, "nodrop", "~*", "+@all", "-ft.dropindex", "-eval")
        _add_user(server, "noeval", "~*", "+@all", "-eval")
        _add_user(server, "narrow", "~doc:*", "+@all")
        _add_user(server, "mine", "~doc:*", "~docs", "~__ftctl_*", "~ftctl:*", "+@all")
        _add_user(server, "nomulti", "~*", "+@all", "-multi", "-ft.dropindex")
        _add_user(server, "blind", "~*", "+@all", "-multi", "-acl")
        _add_user(server, "notracking", "~*", "+@all", "-client|tracking")
        yield server


@pytest.fixture
def fresh(acl: EmbeddedServer) -> Iterator[redis.Redis]:
    """The ACL server, flushed, with the test index."""
    client = _client(acl)
    client.flushall()
    source(client, "hash")
    yield client
    client.flushall()
    client.close()


def test_apply_refuses_a_user_lacking_commands_the_plan_sends(
    acl: EmbeddedServer, fresh: redis.Redis, tmp_path: Path
) -> None:
    """A user without FT.DROPINDEX and EVAL: apply of a quantization refuses naming both,
    before anything runs (Redis unchanged, no journal). A plan made by the admin warns of
    no one; one made by a user who may plan but not run EVAL says apply needs it."""
    made = MigrationPlanner().create_plan(INDEX, redis_url=acl.url, schema_patch=TO_FLOAT16)
    assert not [w for w in made.warnings if w.startswith("ACL")]
    before = state(fresh)
    with pytest.raises(RefusedError) as refused:
        MigrationExecutor().apply(
            made, redis_url=_user_url(acl, "nodrop"), backup_dir=tmp_path / "b",
            accept_data_loss=True,
        )  # fmt: skip
    assert refused.value.message.startswith("user 'nodrop' lacks ACL permissions")
    assert "FT.DROPINDEX" in refused.value.message and "EVAL" in refused.value.message
    assert state(fresh) == before
    assert not (tmp_path / "b").exists()
    by_user = MigrationPlanner().create_plan(
        INDEX, redis_url=_user_url(acl, "noeval"), schema_patch=TO_FLOAT16
    )
    (warning,) = [w for w in by_user.warnings if w.startswith("ACL")]
    assert warning.startswith("ACL: user 'noeval' lacks permissions applying this plan needs")
    assert "(EVAL)" in warning


def test_auto_falls_back_when_the_user_may_not_follow_writes(
    acl: EmbeddedServer, fresh: redis.Redis
) -> None:
    """Online expand follows concurrent writes with CLIENT TRACKING: a user who may not run
    it gets a drop_recreate plan from --mode auto, saying why; with the permission, the
    same change plans online."""
    planner = MigrationPlanner()
    url = _user_url(acl, "notracking")
    auto = planner.create_plan(INDEX, redis_url=url, schema_patch=TO_FLOAT16, mode="auto")
    assert auto.mode == "drop_recreate", auto.mode_reason
    assert "CLIENT TRACKING, which user 'notracking' may not run" in auto.mode_reason
    allowed = planner.create_plan(INDEX, redis_url=acl.url, schema_patch=TO_FLOAT16, mode="auto")
    assert allowed.mode == "online" and allowed.online is not None
    assert allowed.online.strategy == "expand"


def test_key_patterns_cover_index_names_too(acl: EmbeddedServer, fresh: redis.Redis) -> None:
    """RediSearch checks index names against the user's key patterns: a user limited to
    ``~doc:*`` cannot even plan index 'docs' — refused naming the command and the index."""
    with pytest.raises(RefusedError) as refused:
        MigrationPlanner().create_plan(
            INDEX, redis_url=_user_url(acl, "narrow"), schema_patch=TO_FLOAT16
        )
    assert "user 'narrow' lacks ACL permissions planning 'docs' needs" in refused.value.message
    assert "FT.INFO on index 'docs'" in refused.value.message


def test_planning_refuses_a_user_who_cannot_read_every_index(
    acl: EmbeddedServer, fresh: redis.Redis
) -> None:
    """Another index on the same keys that the user may not FT.INFO: planning refuses
    (skipping it would skip the check that no other index reads the keys it rewrites)."""
    fresh.execute_command("FT.CREATE", "secret", "PREFIX", "1", "doc:", "SCHEMA", "t", "TEXT")
    with pytest.raises(RefusedError, match="cannot read index 'secret'"):
        MigrationPlanner().create_plan(
            INDEX, redis_url=_user_url(acl, "mine"), schema_patch=TO_FLOAT16
        )


def test_without_multi_the_check_falls_back_to_acl_dryrun(
    acl: EmbeddedServer, fresh: redis.Redis, tmp_path: Path
) -> None:
    """A user who may not run MULTI (but may run ACL DRYRUN): the missing FT.DROPINDEX is
    still found, and MULTI itself (the quantization's compare-and-set needs it) too."""
    made = MigrationPlanner().create_plan(INDEX, redis_url=acl.url, schema_patch=TO_FLOAT16)
    with pytest.raises(RefusedError) as refused:
        MigrationExecutor().apply(
            made, redis_url=_user_url(acl, "nomulti"), backup_dir=tmp_path / "b",
            accept_data_loss=True,
        )  # fmt: skip
    assert "FT.DROPINDEX" in refused.value.message and "MULTI" in refused.value.message
    assert not (tmp_path / "b").exists()


def test_permissions_that_cannot_be_checked_do_not_block(
    acl: EmbeddedServer, fresh: redis.Redis, tmp_path: Path
) -> None:
    """A user who may run neither MULTI nor ACL DRYRUN: nothing can be checked, so a plan
    that needs no MULTI (an added TAG field) plans with a warning and applies."""
    url = _user_url(acl, "blind")
    made = MigrationPlanner().create_plan(INDEX, redis_url=url, schema_patch=ADD_TAG)
    assert made.supported, made.diff_classification.blocked_reasons
    assert any("could not be checked" in w for w in made.warnings)
    before = snapshot(fresh)
    report = MigrationExecutor().apply(made, redis_url=url, backup_dir=tmp_path / "b")
    assert report.result == "succeeded", report.error
    assert snapshot(fresh) == before


def test_the_cli_names_the_missing_permissions(
    acl: EmbeddedServer, fresh: redis.Redis, tmp_path: Path
) -> None:
    """Through `migrate apply`: exit 2 and one line naming the user and the commands."""
    made = MigrationPlanner().create_plan(INDEX, redis_url=acl.url, schema_patch=TO_FLOAT16)
    plan_file = tmp_path / "plan.yaml"
    plan_file.write_bytes(dump_plan(made))
    result = CliRunner().invoke(
        cli,
        ["--url", _user_url(acl, "nodrop"), "migrate", "apply", "--plan", str(plan_file),
         "--backup-dir", str(tmp_path / "b"), "--accept-data-loss"],
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: user 'nodrop' lacks ACL permissions")
    assert "pw@" not in result.output
