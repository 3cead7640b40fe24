"""Paced expand writes on fakeredis, through the real sync driver and a real journal: the
pace sizes the transactions, and the journal's pause flag holds the writes."""

from __future__ import annotations

import threading
import time
from typing import Any

import msgspec
import pytest
from fakestore import FakeStore, conversion, spec, vectors

from ftctl.drivers import SyncDriver
from ftctl.errors import Interrupted
from ftctl.journal.events import RunPaused, RunResumed
from ftctl.journal.pause import clear_pause, request_pause
from ftctl.plan.pacing import Pacing
from ftctl.steps import expand
from ftctl.steps.effects import Effect, Sleep, Timed
from ftctl.steps.pace import Pace, Pacer
from ftctl.steps.spec import OnlineSpec, RunSpec

TEMP = "emb__ftctl_t"


class _Counting(SyncDriver):
    """The sync driver, keeping the number of writes of each timed transaction."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.transactions: list[int] = []

    def execute(self, effect: Effect) -> object:
        if isinstance(effect, Timed) and effect.commands.commands[0] == ("MULTI",):
            self.transactions.append(len(effect.commands.commands) - 2)  # MULTI … EXEC
        return super().execute(effect)


def _run_spec(batch_size: int = 500) -> RunSpec:
    names = OnlineSpec(serving_name="docs", strategy="expand", temp_fields={"emb": TEMP})
    return msgspec.structs.replace(
        spec(conversions=[conversion()], batch_size=batch_size), online=names
    )


def _docs(store: FakeStore, count: int) -> list[bytes]:
    keys = [f"doc:{i:02d}".encode() for i in range(count)]
    for key, vector in zip(keys, vectors(count), strict=True):
        store.r.hset(key, "emb", vector)
    return keys


def test_transactions_are_no_larger_than_the_pace(store: FakeStore) -> None:
    """A run slowed to batches of 10 writes 10 documents per MULTI/EXEC, then grows by a
    twentieth of its ceiling per batch (here 2): 10, 12, then the 3 left."""
    keys = _docs(store, 25)
    driver = _Counting(store.r, store.journal)
    pacer = Pacer(Pacing(max_latency_ms=10_000), 40, ["docs"])
    pacer.pace = Pace(batch=10)

    done = driver.run(expand.sync_keys(_run_spec(40), keys, "expand", pacer=pacer))

    assert done.written == 25
    assert driver.transactions == [10, 12, 3]
    assert all(store.r.hexists(key, TEMP) for key in keys)


def test_unpaced_writes_keep_groups_of_fifty(store: FakeStore) -> None:
    """Without a pacer the groups are the WATCH group size, as before pacing existed."""
    keys = _docs(store, 60)
    driver = _Counting(store.r, store.journal)
    pacer = Pacer(Pacing(throttle=False), 500, ["docs"])

    driver.run(expand.sync_keys(_run_spec(), keys, "expand", pacer=pacer))

    assert driver.transactions == [50, 10]


def test_captured_keys_go_in_paced_batches_without_its_pauses(store: FakeStore) -> None:
    """Keys change capture saw are written in transactions of the pace's batch, and the
    pace's pause is not slept between them (a plain key list is)."""
    keys = _docs(store, 25)
    slept: list[float] = []

    class _Sleepless(_Counting):
        def execute(self, effect: Effect) -> object:
            if isinstance(effect, Sleep):
                slept.append(effect.seconds)
                return None
            return super().execute(effect)

    driver = _Sleepless(store.r, store.journal)
    pacer = Pacer(Pacing(max_latency_ms=10_000), 40, ["docs"])
    pacer.pace = Pace(batch=10, cpu_sleep=0.7)

    driver.run(expand.sync_keys(_run_spec(40), keys, "expand", pacer=pacer, captured=True))

    assert driver.transactions[0] == 10 and sum(driver.transactions) == 25
    assert slept == []
    assert all(store.r.hexists(key, TEMP) for key in keys)


def _wait_for(store: FakeStore, kind: type, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not any(isinstance(e, kind) for e in store.journal.events()):
        assert time.monotonic() < deadline, f"no {kind.__name__} journaled"
        time.sleep(0.01)


def test_a_paused_run_writes_nothing_until_the_flag_is_gone(store: FakeStore) -> None:
    """With the journal's pause flag set the run journals ``run_paused`` before its first
    batch and writes nothing; once the flag is removed it journals ``run_resumed`` and
    writes every document."""
    keys = _docs(store, 5)
    pacer = Pacer(Pacing(throttle=False), 500, ["docs"])
    request_pause(store.journal.directory)
    outcome: list[object] = []
    worker = threading.Thread(
        target=lambda: outcome.append(
            store.run(expand.sync_keys(_run_spec(), keys, "expand", pacer=pacer))
        )
    )
    worker.start()
    try:
        _wait_for(store, RunPaused)
        time.sleep(0.2)
        assert not any(store.r.hexists(key, TEMP) for key in keys)
        assert outcome == []
    finally:
        clear_pause(store.journal.directory)
        worker.join(10)
    assert [type(e) for e in store.journal.events()[1:]] == [RunPaused, RunResumed]
    assert all(store.r.hexists(key, TEMP) for key in keys)


def test_ctrl_c_while_paused_stops_the_run_at_the_boundary(store: FakeStore) -> None:
    """A run paused at a batch boundary still stops on Ctrl+C (the driver's stop event),
    without writing anything."""
    keys = _docs(store, 5)
    stop = threading.Event()
    driver = SyncDriver(store.r, store.journal, stop=stop)
    pacer = Pacer(Pacing(throttle=False), 500, ["docs"])
    request_pause(store.journal.directory)
    raised: list[BaseException] = []

    def run() -> None:
        try:
            driver.run(expand.sync_keys(_run_spec(), keys, "expand", pacer=pacer))
        except BaseException as exc:
            raised.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    _wait_for(store, RunPaused)
    stop.set()
    worker.join(10)

    assert len(raised) == 1 and isinstance(raised[0], Interrupted)
    assert not any(store.r.hexists(key, TEMP) for key in keys)
    with pytest.raises(AssertionError):
        _wait_for(store, RunResumed, timeout=0.05)
