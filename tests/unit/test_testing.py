"""ScriptedRedis drives change capture offline, as the drivers would answer it."""

from __future__ import annotations

import pytest

from ftctl.steps.effects import Captured, StartCapture, Step, StopCapture, TakeCaptured
from ftctl.testing import ScriptedRedis


def _start_take_take_stop_take() -> Step[list[object]]:
    replies: list[object] = []
    replies.append((yield StartCapture(["doc:"])))
    replies.append((yield TakeCaptured()))
    replies.append((yield TakeCaptured()))
    replies.append((yield StopCapture()))
    replies.append((yield TakeCaptured()))
    return replies


def test_unscripted_takes_answer_like_a_quiet_keyspace() -> None:
    """With no scripted takes: lost on the first take after a start, then empty and not
    lost; lost again once nothing is capturing. Start and stop reply None."""
    scripted = ScriptedRedis([])
    replies = scripted.run(_start_take_take_stop_take())
    assert replies == [
        None,
        Captured([], lost=True),
        Captured([], lost=False),
        None,
        Captured([], lost=True),
    ]
    assert scripted.taken == replies[1:3] + replies[4:]
    scripted.assert_done()


def test_scripted_takes_are_answered_in_order_and_starts_stops_recorded() -> None:
    """Scripted Captured replies are popped one per take; every StartCapture and
    StopCapture is kept, in order, for assertions."""
    first = Captured([b"doc:1"], lost=True)
    second = Captured([b"doc:\x002", b"doc:3"], lost=False)
    scripted = ScriptedRedis([], captured=[first, second])
    replies = scripted.run(_start_take_take_stop_take())
    assert replies[1:3] == [first, second]
    assert replies[4] == Captured([], lost=True)
    assert scripted.captures == [StartCapture(["doc:"]), StopCapture()]


def test_a_start_after_takes_makes_the_next_default_take_lost_again() -> None:
    """Starting again (new prefixes) resets the default: its first take reports lost."""

    def step() -> Step[list[Captured]]:
        yield StartCapture(["a:"])
        taken = [(yield TakeCaptured()), (yield TakeCaptured())]
        yield StartCapture(["b:"])
        taken += [(yield TakeCaptured()), (yield TakeCaptured())]
        return taken

    assert [c.lost for c in ScriptedRedis([]).run(step())] == [True, False, True, False]


def test_unused_scripted_takes_fail_assert_done() -> None:
    """A scripted take the step never asked for is reported by assert_done."""
    scripted = ScriptedRedis([], captured=[Captured([b"k"], lost=False)])
    with pytest.raises(AssertionError, match="takes left unused"):
        scripted.assert_done()
