"""``ftctl index`` commands against the real server, through click's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import redis
from click.testing import CliRunner
from helpers import run_with_closed_stdout

from ftctl.cli import cli
from ftctl.cli.exits import EXIT_BROKEN_PIPE

SCHEMA = b"""
index: {name: docs, prefix: "doc:", storage_type: hash}
fields:
  - {name: title, type: text, attrs: {sortable: true}}
  - {name: tags, type: tag, attrs: {separator: "|"}}
  - name: embedding
    type: vector
    attrs: {dims: 4, algorithm: HNSW, datatype: float32, distance_metric: cosine}
"""


def _run(redis_url: str, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--url", redis_url, "index", *args])
    return result.exit_code, result.stdout, result.stderr


def _schema_file(tmp_path: Path, data: bytes = SCHEMA) -> str:
    path = tmp_path / "schema.yaml"
    path.write_bytes(data)
    return str(path)


def test_create_info_listall_delete(r: redis.Redis, redis_url: str, tmp_path: Path) -> None:
    """create prints the name; listall and info show it; delete drops it and keeps documents."""
    code, out, _ = _run(redis_url, "create", "--schema", _schema_file(tmp_path))
    assert code == 0 and "docs" in out
    r.hset("doc:1", mapping={"title": "hello", "tags": "a|b"})
    code, out, _ = _run(redis_url, "listall")
    assert code == 0 and "1. docs" in out
    code, out, _ = _run(redis_url, "info", "--index", "docs")
    assert code == 0
    assert "Storage: hash" in out and "'doc:'" in out
    assert "embedding (vector): hnsw, float32, dims=4, cosine" in out
    assert "title (text): sortable" in out
    code, out, _ = _run(redis_url, "info", "--index", "docs", "--json")
    assert code == 0
    payload = json.loads(out)
    assert payload["schema"]["index"]["name"] == "docs"
    assert payload["stats"]["num_docs"] == 1
    assert "index.key_separator" in payload["schema"]["unreported"]
    code, out, _ = _run(redis_url, "delete", "--index", "docs")
    assert code == 0 and "docs" in out
    assert r.execute_command("FT._LIST") == []
    assert r.hget("doc:1", "title") == b"hello"


def test_create_refuses_existing(r: redis.Redis, redis_url: str, tmp_path: Path) -> None:
    """create on an existing index name exits 2 with one line and leaves the index alone."""
    path = _schema_file(tmp_path)
    assert _run(redis_url, "create", "--schema", path)[0] == 0
    code, _, err = _run(redis_url, "create", "--schema", path)
    assert code == 2
    assert "already exists" in err and "Traceback" not in err
    assert r.execute_command("FT._LIST") == [b"docs"]


def test_delete_refuses_alias(r: redis.Redis, redis_url: str, tmp_path: Path) -> None:
    """delete through an alias is refused (exit 2) and names the real index."""
    assert _run(redis_url, "create", "--schema", _schema_file(tmp_path))[0] == 0
    r.execute_command("FT.ALIASADD", "current", "docs")
    code, _, err = _run(redis_url, "delete", "--index", "current")
    assert code == 2
    assert "alias" in err and "docs" in err
    assert r.execute_command("FT._LIST") == [b"docs"]


def test_unknown_index_is_one_line(r: redis.Redis, redis_url: str) -> None:
    """info/delete of an unknown index: one line with the listall hint, exit 2."""
    for command in ("info", "delete"):
        code, _, err = _run(redis_url, command, "--index", "nope")
        assert code == 2
        assert err.strip() == (
            "error: index 'nope' does not exist (hint: run 'ftctl index listall')"
        )


def test_bad_yaml_is_one_line(r: redis.Redis, redis_url: str, tmp_path: Path) -> None:
    """A schema file that is not YAML: one line naming the file, exit 2, nothing created."""
    path = _schema_file(tmp_path, b"index: [")
    code, _, err = _run(redis_url, "create", "--schema", path)
    assert code == 2
    assert "schema.yaml" in err and "not valid YAML" in err
    assert len(err.strip().splitlines()) == 1
    assert r.execute_command("FT._LIST") == []


def test_server_refusal_is_usage_error(r: redis.Redis, redis_url: str, tmp_path: Path) -> None:
    """A schema the server refuses (INT8 on RediSearch 2.10) exits 2 with the server's reason."""
    data = (
        b"index: {name: bad}\nfields: [{name: v, type: vector, attrs: {dims: 4, datatype: int8}}]"
    )
    code, _, err = _run(redis_url, "create", "--schema", _schema_file(tmp_path, data))
    assert code == 2
    assert "refused" in err
    assert r.execute_command("FT._LIST") == []


def test_unreachable_server_is_one_line() -> None:
    """An unreachable server: one line with a hint, exit 2, no traceback."""
    result = CliRunner().invoke(cli, ["--url", "redis://127.0.0.1:1", "index", "listall"])
    assert result.exit_code == 2
    assert "cannot reach Redis" in result.stderr and "Traceback" not in result.stderr


def test_create_records_schema_history_and_delete_forgets_it(
    redis_url: str, r: redis.Redis, tmp_path: Path
) -> None:
    """`index create` stores the full schema under ftctl:schema:<index>; `delete` removes it."""
    schema = tmp_path / "s.yaml"
    schema.write_text(
        "index: {name: hist, prefix: 'h:'}\n"
        "fields:\n  - {name: title, type: text, attrs: {phonetic_matcher: 'dm:en'}}\n"
    )
    runner = CliRunner()
    created = runner.invoke(cli, ["--url", redis_url, "index", "create", "--schema", str(schema)])
    assert created.exit_code == 0, created.output
    stored = r.get("ftctl:schema:hist")
    assert stored is not None and b"dm:en" in stored
    deleted = runner.invoke(cli, ["--url", redis_url, "index", "delete", "--index", "hist"])
    assert deleted.exit_code == 0, deleted.output
    assert r.get("ftctl:schema:hist") is None


def test_url_after_the_subcommand_as_the_guide_writes_it(
    r: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    """`ftctl index create --schema F --url URL` and `ftctl index listall --url URL` reach
    the server of that URL, whatever the global --url says."""
    runner = CliRunner()
    dead = ["--url", "redis://127.0.0.1:1"]
    path = _schema_file(tmp_path)
    created = runner.invoke(cli, [*dead, "index", "create", "--schema", path, "--url", redis_url])
    assert created.exit_code == 0, created.output
    listed = runner.invoke(cli, [*dead, "index", "listall", "--url", redis_url])
    assert listed.exit_code == 0, listed.output
    assert "1. docs" in listed.stdout


def test_listall_into_a_closed_pipe_is_quiet(r: redis.Redis, redis_url: str) -> None:
    """`ftctl index listall | head -1` after head exited: exit 141, no traceback, nothing on
    stderr (not 1, which would say a migration failed)."""
    for i in range(3):
        r.execute_command("FT.CREATE", f"idx{i}", "PREFIX", "1", f"p{i}:", "SCHEMA", "t", "TEXT")
    done = run_with_closed_stdout("--url", redis_url, "index", "listall")
    assert done.returncode == EXIT_BROKEN_PIPE, done.stderr
    assert done.stderr == b""


HOSTILE = "red\x1b[31mname\x07\tend"
"""An index name with an escape sequence, a bell and a tab (Redis reports them raw)."""
NEWLINE = "two\nlines"
"""RediSearch reports a newline in a name as the two characters backslash and n."""
NOT_UTF8 = b"bad\xffname"


def _controls(text: str) -> list[str]:
    return [c for c in text if not c.isprintable() and c != "\n"]


def _hostile_indexes(r: redis.Redis) -> None:
    for number, name in enumerate([HOSTILE, NEWLINE, NOT_UTF8, "docs"]):
        r.execute_command("FT.CREATE", name, "PREFIX", "1", f"p{number}:", "SCHEMA", "t", "TEXT")


def test_listall_and_info_never_print_control_characters(r: redis.Redis, redis_url: str) -> None:
    """Index names with an escape sequence, a bell, a tab, a newline or bytes that are not
    UTF-8 are listed escaped, one line each (color kept on, so nothing is stripped for us);
    info and errors quoting such a name escape it too."""
    _hostile_indexes(r)
    runner = CliRunner()
    listed = runner.invoke(cli, ["--url", redis_url, "index", "listall"], color=True)
    assert listed.exit_code == 0, listed.output
    assert _controls(listed.stdout) == []
    assert listed.stdout.splitlines()[1:] == [
        "1. bad\\xffname",
        "2. docs",
        "3. red\\x1b[31mname\\x07\\tend",
        "4. two\\nlines",
    ]
    bad = NOT_UTF8.decode("utf-8", "surrogateescape")
    info = runner.invoke(cli, ["--url", redis_url, "index", "info", "--index", bad], color=True)
    assert info.exit_code == 0, info.output
    assert "Index: bad\\xffname" in info.stdout and _controls(info.stdout) == []
    as_json = runner.invoke(cli, ["--url", redis_url, "index", "info", "--index", bad, "--json"])
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.stdout)["index_name"] == "bad\\xffname"
    missing = runner.invoke(
        cli, ["--url", redis_url, "index", "info", "--index", "no\x1b[2J\nsuch"], color=True
    )
    assert missing.exit_code == 2
    assert missing.stderr == (
        "error: index 'no\\x1b[2J\\nsuch' does not exist (hint: run 'ftctl index listall')\n"
    )


def test_planning_beside_and_of_an_index_not_named_in_utf8(
    r: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    """Planning an index while others have names that are not UTF-8 (or hold escape
    sequences) works; planning such an index itself is one clear refusal (exit 2), never a
    traceback: a plan is YAML text and cannot hold the name."""
    _hostile_indexes(r)
    patch_file = tmp_path / "patch.yaml"
    patch_file.write_text("version: 1\nchanges: {add_fields: [{name: color, type: tag}]}\n")
    runner = CliRunner()
    common = ["--url", redis_url, "migrate", "plan", "--schema-patch", str(patch_file)]
    planned = runner.invoke(cli, [*common, "--index", "docs", "--plan-out", str(tmp_path / "p")])
    assert planned.exit_code == 0, planned.output
    bad = NOT_UTF8.decode("utf-8", "surrogateescape")
    refused = runner.invoke(cli, [*common, "--index", bad, "--plan-out", str(tmp_path / "q")])
    assert refused.exit_code == 2, refused.output
    assert refused.stderr.startswith(
        "error: index 'bad\\xffname' cannot be planned: its name is not UTF-8"
    )
    assert refused.exception is None or isinstance(refused.exception, SystemExit)
    assert not (tmp_path / "q").exists()
