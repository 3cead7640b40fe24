"""``ftctl.text``: names and messages as they may be shown on a terminal."""

from __future__ import annotations

import pytest

from ftctl.errors import UsageError
from ftctl.steps.effects import pack
from ftctl.text import is_utf8, printable, text_only, wire


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("docs", "docs"),
        ("idx:é ü", "idx:é ü"),
        ("red\x1b[31mname\nsecond", "red\\x1b[31mname\\nsecond"),
        ("cr\rbel\x07tab\t", "cr\\rbel\\x07tab\\t"),
        ("rtl\u202eoverride", "rtl\\u202eoverride"),
        (b"bad\xffname", "bad\\xffname"),
        ("bad\udcffname", "bad\\xffname"),
        ("\ud800", "\\ud800"),
    ],
)
def test_printable_escapes_what_a_terminal_would_act_on(value: str | bytes, shown: str) -> None:
    """Control characters, escape sequences, format characters (bidi overrides) and bytes
    that are not UTF-8 come out as escapes; printable text, accents included, unchanged.
    A name decoded with surrogateescape shows like its bytes."""
    assert printable(value) == shown
    assert printable(shown) == shown


def test_printable_keeps_the_line_breaks_asked_for() -> None:
    """A deliberately multi-line message keeps its line breaks, nothing else."""
    assert printable("one\ntwo\x1b[0m", keep="\n") == "one\ntwo\\x1b[0m"


def test_names_that_are_not_utf8_go_back_as_their_bytes() -> None:
    """A name decoded with surrogateescape is not UTF-8 text, and its bytes on the wire are
    exactly those Redis sent (commands with such a name pack instead of raising)."""
    name = b"bad\xffname".decode("utf-8", "surrogateescape")
    assert not is_utf8(name) and is_utf8("ok")
    assert wire(name) == b"bad\xffname"
    assert pack([("FT.INFO", name)]) == b"*2\r\n$7\r\nFT.INFO\r\n$8\r\nbad\xffname\r\n"


def test_error_messages_never_carry_control_characters() -> None:
    """An error quoting a hostile name keeps deliberate line breaks and escapes the rest, so
    neither a terminal nor a journal (msgpack) gets raw control characters or surrogates."""
    error = UsageError("index 'a\x1b[2Jb\udcff' does not exist\nsecond line", "try\x07 again")
    assert error.message == "index 'a\\x1b[2Jb\\xff' does not exist\nsecond line"
    assert error.hint == "try\\x07 again"


def test_text_only_makes_plain_data_encodable() -> None:
    """Strings that are not UTF-8, anywhere in plain data, become their printable form;
    valid text (control characters included: JSON escapes them) is left alone."""
    bad = b"bad\xffname".decode("utf-8", "surrogateescape")
    data = {"index_name": bad, "fields": [{"name": bad}, ("ok\x1b", 1)], bad: None}
    assert text_only(data) == {
        "index_name": "bad\\xffname",
        "fields": [{"name": "bad\\xffname"}, ["ok\x1b", 1]],
        "bad\\xffname": None,
    }
