"""Names, keys and messages as they may be shown: no raw control character ever printed.

Redis names are bytes: an index, alias, field or key may hold an escape sequence
(``\\x1b[31m``), a carriage return, a bell, a right-to-left override, or bytes that are not
UTF-8. Printed as they are, they recolour or rewrite the user's terminal and forge output
lines. :func:`printable` is the one way ftctl turns such a value into text for a human: the
CLI's output, error messages, plan warnings and reasons, report details, keys in plans.
"""

from __future__ import annotations


def _decoded(value: str | bytes) -> str:
    """``value`` as text with undecodable bytes as ``\\xNN`` escapes.

    A str read from Redis with ``surrogateescape`` (how ftctl decodes names) gets its
    original bytes back first, so ``b"a\\xff"`` and ``"a\\udcff"`` show the same.
    """
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    try:
        raw = value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate that escapes no byte
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    return raw.decode("utf-8", "backslashreplace")


def printable(value: str | bytes, *, keep: str = "") -> str:
    """``value`` safe to print: UTF-8 text where it is, every character that is not
    printable escaped (``\\x1b``, ``\\n``, ``\\u202e``), bytes that are not UTF-8 as
    ``\\xff``. Characters in ``keep`` (``"\\n"`` for a deliberately multi-line message) are
    left as they are. Printable text comes back unchanged.
    """
    text = _decoded(value)
    if text.isprintable() and not keep:
        return text
    return "".join(
        c if c.isprintable() or c in keep else c.encode("unicode_escape").decode("ascii")
        for c in text
    )


def is_utf8(value: str) -> bool:
    """Whether ``value`` is valid text (a name decoded from bytes that are not UTF-8 is not:
    it holds ``surrogateescape`` characters and cannot go into YAML, JSON or msgpack)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def text_only(value: object) -> object:
    """``value`` (plain data: dicts, lists, strings…) with every str that is not UTF-8 in
    its printable form, so JSON or YAML can hold it (a name read from bytes that are not
    UTF-8 would make the encoder raise)."""
    if isinstance(value, str):
        return value if is_utf8(value) else printable(value)
    if isinstance(value, dict):
        return {text_only(k): text_only(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [text_only(v) for v in value]
    return value


def wire(value: str) -> bytes:
    """``value`` as the bytes Redis knows it by (the inverse of decoding with
    ``surrogateescape``)."""
    return value.encode("utf-8", "surrogateescape")


__all__ = ["is_utf8", "printable", "text_only", "wire"]
