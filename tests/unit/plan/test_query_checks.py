"""RedisVL's query_check_file: parsed strictly enough, keys formed as RedisVL forms them."""

from __future__ import annotations

from pathlib import Path

import pytest

from ftctl.errors import UsageError
from ftctl.plan.query_checks import QueryChecks, document_key, load_query_checks
from ftctl.schema.model import from_builtins


def _schema(prefix: str | list[str], separator: str = ":") -> object:
    return from_builtins(
        {
            "index": {"name": "i", "prefix": prefix, "key_separator": separator},
            "fields": [{"name": "t", "type": "text"}],
        }
    )


@pytest.mark.parametrize(
    ("prefix", "separator", "key"),
    [
        ("doc", ":", "doc:7"),
        ("doc:", ":", "doc:7"),
        ("doc::", ":", "doc:7"),
        (["a:", "b:"], ":", "a:7"),
        ("", ":", "7"),
        (":", ":", "7"),
        ("doc", "", "doc7"),
    ],
)
def test_document_key_is_redisvls(prefix: str, separator: str, key: str) -> None:
    """fetch_ids become keys like RedisVL's SearchIndex.key: first prefix without trailing
    separators, the separator, the id (the bare id without a prefix)."""
    assert document_key(_schema(prefix, separator), "7") == key  # type: ignore[arg-type]


def test_file_lists_ids_and_keys(tmp_path: Path) -> None:
    """fetch_ids and keys_exist are read as strings (numbers too); other keys are ignored;
    an empty file checks nothing."""
    path = tmp_path / "q.yaml"
    path.write_text("fetch_ids: [1, '2']\nkeys_exist: ['doc:1']\nother: 3\n")
    assert load_query_checks(path) == QueryChecks(fetch_ids=["1", "2"], keys_exist=["doc:1"])
    assert load_query_checks(b"") == QueryChecks()


@pytest.mark.parametrize("content", [b"- 1\n", b"fetch_ids: 3\n", b"keys_exist: [[1]]\n"])
def test_bad_file_is_a_usage_error(content: bytes) -> None:
    """A file that is not a mapping of lists is a UsageError (a ValueError) naming it."""
    with pytest.raises(UsageError, match="query check file"):
        load_query_checks(content)
    with pytest.raises(ValueError):
        load_query_checks(content)
