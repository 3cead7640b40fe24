"""The pacing controller (pure) and the pacer's effects, driven by scripted replies."""

from __future__ import annotations

from dataclasses import replace

import msgspec
import pytest
from helpers import ROOT, ft_info_reply

from ftctl.errors import MigrationFailed
from ftctl.journal.events import PaceChanged, RunPaused, RunResumed
from ftctl.plan.pacing import Pacing
from ftctl.schema.ftinfo import parse_ft_info
from ftctl.schema.model import IndexSchema, VectorField, load_schema
from ftctl.steps.effects import Progress, ReplyError, Step
from ftctl.steps.pace import (
    CPU_WINDOW,
    FLOOR,
    MAX_SLEEP,
    MIN_SLEEP,
    PAUSE_POLL,
    Limits,
    Pace,
    Pacer,
    Sample,
    cpu_seconds,
    decide,
    probe_command,
)
from ftctl.testing import ScriptedRedis, commands_matching

LIMITS = Limits(max_latency_ms=50.0, max_cpu=0.8, ceiling=500, floor=FLOOR)
SLOW, FAST = Sample(at=0.0, latency_ms=80.0), Sample(at=0.0, latency_ms=5.0)


def _run(pace: Pace, *samples: Sample) -> list[Pace]:
    out = []
    for sample in samples:
        pace = decide(pace, sample, LIMITS)
        out.append(pace)
    return out


# --- the controller -------------------------------------------------------------------------


def test_latency_over_target_halves_the_batch_down_to_the_floor_then_doubles_the_pause() -> None:
    """Shrink fast: each slow probe halves the batch until the floor; at the floor each
    one doubles the pause between batches, from MIN_SLEEP up to MAX_SLEEP and no further."""
    paces = _run(Pace(batch=500), *[SLOW] * 20)
    assert [p.batch for p in paces[:7]] == [250, 125, 62, 31, 15, 10, 10]
    assert all(p.sleep == 0 for p in paces[:6])
    assert [p.sleep for p in paces[6:9]] == [MIN_SLEEP, 2 * MIN_SLEEP, 4 * MIN_SLEEP]
    assert paces[-1].sleep == MAX_SLEEP and paces[-1].batch == FLOOR


def test_latency_under_target_drops_the_pause_first_then_grows_the_batch_slowly() -> None:
    """Grow slowly: a fast probe halves the pause away first (below MIN_SLEEP it is 0), then
    adds a twentieth of the ceiling per batch, never beyond the ceiling."""
    slowed = Pace(batch=FLOOR, backoff=0.04)
    paces = _run(slowed, *[FAST] * 40)
    assert [p.sleep for p in paces[:3]] == [0.02, 0.01, 0.0]
    assert [p.batch for p in paces[:5]] == [FLOOR, FLOOR, FLOOR, FLOOR + 25, FLOOR + 50]
    assert paces[-1].batch == 500 and paces[-1].full(LIMITS)
    assert max(p.batch for p in paces) == 500


def test_latency_at_the_target_is_not_over_it() -> None:
    """The target itself is allowed; only a slower probe slows the run."""
    (pace,) = _run(Pace(batch=100), Sample(at=0.0, latency_ms=50.0))
    assert pace.batch == 125


def test_no_latency_measured_changes_nothing_of_the_latency_side() -> None:
    """A sample without a latency (no probe answered, no write timed) neither slows nor
    speeds the run."""
    pace = Pace(batch=40, backoff=0.02)
    (after,) = _run(pace, Sample(at=0.0, latency_ms=None))
    assert (after.batch, after.backoff) == (40, 0.02)


def test_a_cpu_share_over_the_ceiling_pauses_enough_to_bring_it_back() -> None:
    """A window where the main thread was busy 100% of 0.5 s over 4 batches, at a ceiling of
    80%: the run must stretch that work to 0.625 s, so each batch pauses 31.25 ms more."""
    paces = _run(
        Pace(batch=500),
        Sample(at=10.0, latency_ms=1.0, cpu_seconds=100.0),
        Sample(at=10.1, latency_ms=1.0, cpu_seconds=100.1),
        Sample(at=10.2, latency_ms=1.0, cpu_seconds=100.2),
        Sample(at=10.3, latency_ms=1.0, cpu_seconds=100.3),
        Sample(at=10.5, latency_ms=1.0, cpu_seconds=100.5),
    )
    assert all(p.cpu_sleep == 0 for p in paces[:4])
    last = paces[-1]
    assert last.cpu == pytest.approx(1.0)
    assert last.cpu_sleep == pytest.approx((0.5 / 0.8 - 0.5) / 4)
    assert last.batch == 500 and not last.full(LIMITS)


def test_the_cpu_pause_shrinks_once_the_share_is_under_the_ceiling() -> None:
    """A window at 40% gives back the pause it no longer needs (never below 0), and the
    batch does not grow while the share is over the ceiling."""
    busy = Pace(batch=200, cpu_sleep=0.05, window=(0.0, 0.0), batches=1, cpu=0.95)
    (held,) = _run(busy, Sample(at=0.1, latency_ms=1.0, cpu_seconds=0.095))
    assert held.batch == 200  # the last share measured is still over the ceiling
    (calm,) = _run(busy, Sample(at=1.0, latency_ms=1.0, cpu_seconds=0.4))
    assert calm.cpu == pytest.approx(0.4)
    assert calm.cpu_sleep == 0.0
    assert calm.batch == 225


def test_shorter_spans_than_the_cpu_window_say_nothing_of_the_cpu() -> None:
    """Samples closer together than CPU_WINDOW accumulate into one window: no share and no
    CPU pause from them alone; a sample without CPU seconds starts the window over."""
    pace = Pace(batch=500)
    for i in range(5):
        pace = decide(pace, Sample(at=i * CPU_WINDOW / 10, latency_ms=1.0, cpu_seconds=i), LIMITS)
    assert pace.cpu is None and pace.cpu_sleep == 0
    assert pace.window == (0.0, 0.0) and pace.batches == 4
    reset = decide(pace, Sample(at=5.0, latency_ms=1.0), LIMITS)
    assert reset.window is None and reset.batches == 0


def test_a_cpu_counter_that_goes_back_starts_a_new_window() -> None:
    """A restarted server counts its CPU from 0 again: no negative share, a new window."""
    pace = Pace(batch=500, window=(0.0, 50.0), batches=3)
    (after,) = _run(pace, Sample(at=1.0, latency_ms=1.0, cpu_seconds=0.2))
    assert after.window == (1.0, 0.2) and after.cpu is None and after.cpu_sleep == 0


def test_a_batch_size_below_the_floor_is_its_own_floor() -> None:
    """--batch-size 4 paces between 4 and 4: the floor never exceeds the ceiling."""
    limits = Limits.of(Pacing(), 4)
    assert (limits.floor, limits.ceiling) == (4, 4)
    assert Limits.of(Pacing(max_latency_ms=7), 500).max_latency_ms == 7


# --- the probe ------------------------------------------------------------------------------


def _with_datatype(schema: IndexSchema, datatype: str) -> IndexSchema:
    fields = [
        msgspec.structs.replace(f, attrs=msgspec.structs.replace(f.attrs, datatype=datatype))
        if isinstance(f, VectorField)
        else f
        for f in schema.fields
    ]
    return msgspec.structs.replace(schema, fields=fields)


def _blob(command: tuple[object, ...]) -> object:
    return command[command.index("vec") + 1]


def test_the_default_probe_is_a_knn_in_the_live_datatype() -> None:
    """A KNN 10 on the first vector field, its query vector as wide as the live index reads
    (float32 before a cut-over to float16, half as wide after; one byte a dimension for
    int8)."""
    schema = load_schema(ROOT / "fixtures" / "schemas" / "demo_docs.yaml")
    command = probe_command("demo_docs", schema)
    assert command[:3] == ("FT.SEARCH", "demo_docs", "*=>[KNN 10 @embedding $vec]")
    blob = _blob(command)
    assert isinstance(blob, bytes) and len(blob) == 384 * 4
    half = _blob(probe_command("demo_docs", _with_datatype(schema, "float16")))
    assert isinstance(half, bytes) and len(half) == 384 * 2
    assert _blob(probe_command("demo_docs", _with_datatype(schema, "int8"))) == b"\x01" * 384


def test_a_user_query_binds_vec_and_an_index_without_vectors_gets_a_wildcard() -> None:
    """The user's query runs as given (LIMIT 0 10, DIALECT 2); ``$vec`` is bound only when
    the query names it; an index without a vector field is probed with ``*``."""
    schema = load_schema(ROOT / "fixtures" / "schemas" / "demo_docs.yaml")
    plain = probe_command("demo_docs", schema, "@module:{json}")
    assert plain == (
        "FT.SEARCH", "demo_docs", "@module:{json}", "LIMIT", "0", "10", "DIALECT", "2",
    )  # fmt: skip
    knn = probe_command("demo_docs", schema, "@module:{json}=>[KNN 3 @embedding $vec]")
    assert knn[3:6] == ("PARAMS", "2", "vec")
    bare = probe_command("docs", parse_ft_info(ft_info_reply()).schema)
    assert bare == ("FT.SEARCH", "docs", "*", "LIMIT", "0", "1", "NOCONTENT")


def test_cpu_seconds_prefer_the_main_thread() -> None:
    """INFO cpu's main-thread counters when the server reports them, else the process's;
    an error or a reply without them is None."""
    info = (
        b"# CPU\r\nused_cpu_sys:1.5\r\nused_cpu_user:2.5\r\n"
        b"used_cpu_sys_main_thread:0.25\r\nused_cpu_user_main_thread:0.5\r\n"
    )
    assert cpu_seconds(info) == 0.75
    assert cpu_seconds(b"used_cpu_sys:1.5\r\nused_cpu_user:2.5\r\n") == 4.0
    assert cpu_seconds(ReplyError("ERR")) is None
    assert cpu_seconds("# CPU\r\n") is None


# --- the pacer ------------------------------------------------------------------------------

INFO_CPU = b"used_cpu_sys_main_thread:0\r\nused_cpu_user_main_thread:0\r\n"
PROBE = "FT.SEARCH docs * LIMIT 0 1 NOCONTENT"


def _pacer(**given: object) -> Pacer:
    pacing = Pacing(max_latency_ms=50.0, **given)  # type: ignore[arg-type]
    return Pacer(pacing, 500, ["docs"])


def _measures(count: int, resolve: bool = True) -> list[tuple[str, object]]:
    script: list[tuple[str, object]] = [("FT.INFO docs", ft_info_reply())] if resolve else []
    for _ in range(count):
        script += [(PROBE, [0]), ("INFO cpu", INFO_CPU)]
    return script


def _after_batches(pacer: Pacer, count: int) -> Step[None]:
    for _ in range(count):
        yield from pacer.gate()
        yield from pacer.after(100)


def test_a_slow_probe_slows_the_run_and_journals_it_once_per_new_low() -> None:
    """Two slow probes: the first slowdown is journaled, and so is the next halving (a new
    low); the fast probes that follow grow the batch without an event until it is back at
    full pace, which is journaled as recovered."""
    scripted = ScriptedRedis(_measures(25), timings=[0.08, 0.09] + [0.002] * 23)
    pacer = _pacer()

    scripted.run(_after_batches(pacer, 25))

    scripted.assert_done()
    events = [e for e in scripted.recorded if isinstance(e, PaceChanged)]
    assert [(e.change, e.batch) for e in events] == [
        ("slowed", 250),
        ("slowed", 125),
        ("recovered", 500),
    ]
    assert [e.latency_ms for e in events[:2]] == [pytest.approx(80.0), pytest.approx(90.0)]
    assert pacer.pace.full(pacer.limits)
    advanced = [p for p in scripted.progressed if p.advance]
    assert len(advanced) == 25 and all(p.advance == 100 for p in advanced)
    assert advanced[0].detail["batch"] == 250 and advanced[0].detail["latency_ms"] == 80.0


def test_a_slow_write_transaction_counts_as_latency() -> None:
    """A query arriving during the run's own MULTI/EXEC waits for it: a fast probe after a
    slow transaction still slows the run, at the transaction's round trip."""
    scripted = ScriptedRedis(_measures(1), timings=[0.001])
    pacer = _pacer()
    pacer.wrote(0.02)
    pacer.wrote(0.12)

    scripted.run(pacer.after(500))

    (event,) = [e for e in scripted.recorded if isinstance(e, PaceChanged)]
    assert event.latency_ms == pytest.approx(120.0) and event.batch == 250


def test_the_pause_between_batches_is_slept_before_the_next_batch() -> None:
    """At the floor with latency still over target, the next gate sleeps the pause."""
    scripted = ScriptedRedis(_measures(1), timings=[0.5])
    pacer = _pacer()
    pacer.pace = Pace(batch=FLOOR)

    scripted.run(_after_batches(pacer, 1))
    scripted.run(pacer.gate())

    assert scripted.slept == [MIN_SLEEP]


def test_captured_writes_are_never_slept_on() -> None:
    """The gate of captured changes holds for the pause flag only: the pace's pause (here
    the CPU ceiling's) is for passes over existing documents, not for following the
    application's writes, which a pause would leave further behind."""
    pacer = _pacer()
    pacer.pace = Pace(batch=FLOOR, cpu_sleep=1.5)
    scripted = ScriptedRedis([])

    scripted.run(pacer.gate(pause=False))
    assert scripted.slept == []
    scripted.run(pacer.gate())
    assert scripted.slept == [1.5]


def test_a_probe_that_fails_is_looked_up_again_and_writes_still_count() -> None:
    """The live index changed under a probe that worked (a cut-over to another datatype):
    the failed probe gives no latency, the write transactions still do, and the next
    measurement resolves the index again."""
    script = _measures(2) + _measures(1)
    script[3] = (PROBE, ReplyError("query vector blob size does not match"))
    scripted = ScriptedRedis(script, timings=[0.001, 0.5, 0.001])
    pacer = _pacer()

    scripted.run(pacer.after(10))
    pacer.wrote(0.07)
    scripted.run(pacer.after(10))
    assert pacer.pace.batch == 250 and pacer.pace.latency_ms == pytest.approx(70.0)
    scripted.run(pacer.after(10))

    scripted.assert_done()
    assert len(commands_matching(scripted.sent, "FT.INFO docs")) == 2


def test_without_throttle_nothing_is_measured_but_progress_is_reported() -> None:
    """--no-throttle: the batch stays at the ceiling, no command is sent between batches,
    no pause is slept; the documents still count as progress."""
    scripted = ScriptedRedis([])
    pacer = _pacer(throttle=False)

    scripted.run(_after_batches(pacer, 3))
    scripted.run(pacer.observe())

    assert scripted.sent == [] and scripted.slept == [] and pacer.batch == 500
    assert [p.advance for p in scripted.progressed] == [100, 100, 100]


def test_a_pause_flag_holds_the_run_until_it_is_gone() -> None:
    """While the flag is there the run journals ``run_paused``, polls it (no command sent),
    and once it is gone journals ``run_resumed`` and goes on."""
    scripted = ScriptedRedis([], pauses=[True, True, True, False])
    pacer = _pacer(throttle=False)

    scripted.run(pacer.gate())

    assert [type(e) for e in scripted.recorded] == [RunPaused, RunResumed]
    assert scripted.slept == [PAUSE_POLL] * 3 and scripted.sent == []
    assert any(isinstance(p, Progress) and p.detail.get("paused") for p in scripted.progressed)
    scripted.run(pacer.gate())  # no flag: nothing journaled
    assert len(scripted.recorded) == 2


def test_observing_a_build_sets_the_pace_the_writes_start_at() -> None:
    """An index build that slows the probe leaves the next writes with a smaller batch."""
    scripted = ScriptedRedis(_measures(2), timings=[0.2, 0.2])
    pacer = _pacer()

    scripted.run(pacer.observe())
    scripted.run(pacer.observe())

    assert pacer.batch == 125
    assert [e.change for e in scripted.recorded if isinstance(e, PaceChanged)] == [
        "slowed",
        "slowed",
    ]


def test_check_refuses_a_probe_the_server_rejects() -> None:
    """Before anything is written: a probe query the server rejects, or no index to probe,
    is a reason to refuse; a working probe is none; --no-throttle needs none."""
    bad = ScriptedRedis(
        [("FT.INFO docs", ft_info_reply()), ("FT.SEARCH docs @x:(*", ReplyError("Syntax error"))]
    )
    assert "Syntax error" in str(bad.run(_pacer(probe_query="@x:(").check()))
    gone = ScriptedRedis([("FT.INFO docs", ReplyError("Unknown index name"))])
    assert "finds no index" in str(gone.run(_pacer().check()))
    good = ScriptedRedis([("FT.INFO docs", ft_info_reply()), (PROBE, [0])])
    assert good.run(_pacer().check()) is None
    assert ScriptedRedis([]).run(_pacer(throttle=False).check()) is None


def test_the_pause_after_a_held_run_ignores_the_cpu_of_the_pause() -> None:
    """A pause resets the CPU window: the server's idle time while the run held says
    nothing about the share the run's writes take."""
    scripted = ScriptedRedis([], pauses=[True, False])
    pacer = _pacer(throttle=False)
    pacer.pace = replace(pacer.pace, window=(1.0, 1.0), batches=5)

    scripted.run(pacer.gate())

    assert pacer.pace.window is None and pacer.pace.batches == 0


def test_a_probe_that_fails_right_after_it_was_looked_up_stops_the_run() -> None:
    """Not a cut-over under it: the probe the run was given does not work (a resume with a
    --probe-query the server rejects). Pacing blind is not what was asked: the run stops
    (resumable) saying how to go on."""
    scripted = ScriptedRedis(
        [
            ("FT.INFO docs", ft_info_reply()),
            ("FT.SEARCH docs @x:(*", ReplyError("Syntax error at offset 3")),
            ("INFO cpu", INFO_CPU),
        ]
    )

    with pytest.raises(MigrationFailed, match="Syntax error") as raised:
        scripted.run(_pacer(probe_query="@x:(").after(10))

    assert "--probe-query" in raised.value.hint and "--no-throttle" in raised.value.hint
