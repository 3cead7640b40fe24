"""The pure parts of change capture: prefixes to track, the key buffer and its bound, and
how pushes are told from fence replies."""

from __future__ import annotations

import pytest

from ftctl.drivers.capture import (
    CaptureBuffer,
    _as_invalidation,
    _fence_number,
    _Invalidation,
    tracking_command,
    tracking_prefixes,
)
from ftctl.steps.effects import Captured


def test_prefixes_are_bytes_deduplicated_and_never_overlap() -> None:
    """str prefixes are UTF-8; a prefix covered by a shorter one is dropped (the server
    refuses overlapping BCAST prefixes); duplicates count once."""
    assert tracking_prefixes(["doc:", b"doc:a:", "doc:", "é:", b"bin\x00"]) == [
        b"bin\x00",
        b"doc:",
        "é:".encode(),
    ]
    assert tracking_prefixes([b"ab", b"a", b"b"]) == [b"a", b"b"]


@pytest.mark.parametrize("prefixes", [[], [""], [b"doc:", b""]])
def test_no_prefix_or_the_empty_prefix_tracks_every_key(prefixes: list[bytes | str]) -> None:
    """Tracking everything is BCAST without PREFIX: an empty prefix or none at all."""
    assert tracking_prefixes(prefixes) == []
    assert tracking_command([]) == (b"CLIENT", b"TRACKING", b"ON", b"BCAST")


def test_the_tracking_command_names_each_prefix() -> None:
    """Each prefix goes out as its own PREFIX argument, bytes as they are."""
    assert tracking_command([b"a:", b"\x00"]) == (
        b"CLIENT",
        b"TRACKING",
        b"ON",
        b"BCAST",
        b"PREFIX",
        b"a:",
        b"PREFIX",
        b"\x00",
    )


def test_the_first_take_is_lost_then_each_key_once() -> None:
    """A fresh buffer reports lost once; keys added twice come back once; a take empties
    the buffer."""
    buffer = CaptureBuffer()
    buffer.add([b"a", b"b"])
    buffer.add([b"a"])
    first = buffer.take()
    assert (sorted(first.keys), first.lost) == ([b"a", b"b"], True)
    assert buffer.take() == Captured([], lost=False)
    buffer.add([b"c"])
    buffer.lose()
    assert buffer.take() == Captured([b"c"], lost=True)


def test_past_the_limit_keys_are_dropped_until_the_next_take() -> None:
    """More distinct keys than the limit: none kept, lost reported, later keys ignored until
    the take; the take after counts afresh."""
    buffer = CaptureBuffer(limit=2)
    buffer.take()
    buffer.add([b"a", b"b"])
    buffer.add([b"a"])
    assert sorted(buffer.take().keys) == [b"a", b"b"]
    buffer.add([b"a", b"b", b"c"])
    buffer.add([b"d"])
    assert buffer.take() == Captured([], lost=True)
    buffer.add([b"e"])
    assert buffer.take() == Captured([b"e"], lost=False)


def test_a_limit_below_one_is_refused() -> None:
    """A buffer that can hold no key would report every take lost: refused at once."""
    with pytest.raises(ValueError, match="at least 1"):
        CaptureBuffer(limit=0)


def test_invalidations_come_through_the_handler_or_as_plain_arrays() -> None:
    """An invalidation is recognised whether redis-py's push handler wrapped it or the
    parser returned it as a plain array (older redis-py, hiredis without push types); a
    flush (no key list) is kept as None; fence replies are not invalidations."""
    assert _as_invalidation(_Invalidation([b"k"])) == _Invalidation([b"k"])
    assert _as_invalidation([b"invalidate", [b"k", b"\x00"]]) == _Invalidation([b"k", b"\x00"])
    assert _as_invalidation([b"invalidate", None]) == _Invalidation(None)
    assert _as_invalidation(b"12") is None
    assert _fence_number(b"12") == 12
    assert _fence_number(b"PONG") is None
    assert _fence_number([b"invalidate", None]) is None
