"""The pace of an online run's document writes: a pure controller and the step helper that
measures the server for it.

:func:`decide` is the controller (pure, no clock: times come in the samples). After every
batch it gets the latency (the slower of a probe query on the live index and the run's
longest write transaction since the last probe: a query that arrives during a transaction
waits for it) and, once per :data:`CPU_WINDOW`, the server main thread's CPU share, and
gives the next pace:

- latency over the target: the batch halves (down to :data:`FLOOR`), then the pause
  between batches doubles (from :data:`MIN_SLEEP` up to :data:`MAX_SLEEP`);
- latency under it: the pause halves away first, then the batch grows by a twentieth of the
  ceiling (the run's ``--batch-size``) per batch — shrink fast, grow slowly;
- CPU share over the ceiling: a pause sized to bring the share back to it (the CPU a window
  used, divided by the ceiling, is the wall time it should have taken); it shrinks the same
  way once the share is under.

:class:`Pacer` holds one run's pace, yields the effects that measure (a ``Timed`` probe and
``INFO cpu``), obeys the pause flag (``Paused``), and journals :class:`PaceChanged` when the
run slows down (first slowdown, each new low) and when it is back at full pace.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from ftctl.errors import MigrationFailed
from ftctl.journal.events import PaceChange, PaceChanged, RunPaused, RunResumed, StepName
from ftctl.journal.projections import RunState
from ftctl.plan.codecs import encode
from ftctl.plan.pacing import Pacing
from ftctl.plan.quantization import INTEGER_DATATYPES, normalize_datatype
from ftctl.schema.ftinfo import parse_ft_info
from ftctl.schema.model import IndexSchema
from ftctl.steps.effects import (
    Command,
    Commands,
    Paused,
    Progress,
    Record,
    ReplyError,
    Sleep,
    Step,
    Timed,
    Timing,
)
from ftctl.steps.spec import RunSpec

FLOOR = 10
"""The smallest batch (documents); a smaller ``--batch-size`` is its own floor."""
GROWTH = 20
"""Under target, the batch grows by 1/GROWTH of the ceiling per batch."""
MIN_SLEEP = 0.01
"""The first pause (seconds) once the batch is at the floor and latency still over."""
MAX_SLEEP = 2.0
"""The longest pause between two batches (seconds): even a saturated server sees progress."""
FULL_SLEEP = 0.001
"""Pauses shorter than this (seconds) leave the run at full pace."""
CPU_WINDOW = 0.5
"""Seconds of wall time a CPU share is measured over (shorter spans are noise)."""
PAUSE_POLL = 0.5
"""Seconds between two looks at the pause flag while paused."""
PROBE_K = 10


@dataclass(frozen=True, slots=True)
class Limits:
    """What the controller holds the server to, and the batch sizes it moves between."""

    max_latency_ms: float
    max_cpu: float
    ceiling: int
    floor: int

    @classmethod
    def of(cls, pacing: Pacing, ceiling: int) -> Limits:
        full = pacing.resolved()
        assert full.max_latency_ms is not None and full.max_cpu is not None
        top = max(1, ceiling)
        return cls(full.max_latency_ms, full.max_cpu, top, min(FLOOR, top))


@dataclass(frozen=True, slots=True)
class Sample:
    """What one measurement saw: the driver's clock (seconds), the latency (ms; None: none
    measured) and the server's CPU seconds so far (None: not measured)."""

    at: float
    latency_ms: float | None
    cpu_seconds: float | None = None


@dataclass(frozen=True, slots=True)
class Pace:
    """The controller's state: the batch, the pauses, and the CPU window being measured."""

    batch: int
    backoff: float = 0.0
    """Seconds between batches because of latency."""
    cpu_sleep: float = 0.0
    """Seconds between batches because of the CPU ceiling."""
    window: tuple[float, float] | None = None
    """(clock, server CPU seconds) where the current CPU window began."""
    batches: int = 0
    """Batches since the window began."""
    latency_ms: float | None = None
    """The latest latency measured."""
    cpu: float | None = None
    """The latest CPU share measured."""

    @property
    def sleep(self) -> float:
        """Seconds to pause before the next batch."""
        return max(self.backoff, self.cpu_sleep)

    def full(self, limits: Limits) -> bool:
        """Whether the run goes at full pace (ceiling batch, no pause)."""
        return self.batch >= limits.ceiling and self.sleep < FULL_SLEEP


def decide(pace: Pace, sample: Sample, limits: Limits) -> Pace:
    """The pace after ``sample`` (see the module's docstring)."""
    batch, backoff = pace.batch, pace.backoff
    cpu_sleep, share = pace.cpu_sleep, pace.cpu
    window, batches = pace.window, pace.batches + 1
    if sample.cpu_seconds is None:
        window, batches = None, 0
    elif window is None or sample.cpu_seconds < window[1]:  # new window, or a new server
        window, batches = (sample.at, sample.cpu_seconds), 0
    elif sample.at - window[0] >= CPU_WINDOW:
        wall = sample.at - window[0]
        used = sample.cpu_seconds - window[1]
        share = used / wall
        cpu_sleep = min(MAX_SLEEP, max(0.0, cpu_sleep + (used / limits.max_cpu - wall) / batches))
        window, batches = (sample.at, sample.cpu_seconds), 0
    latency = sample.latency_ms
    if latency is not None and latency > limits.max_latency_ms:
        if batch > limits.floor:
            batch = max(limits.floor, batch // 2)
        else:
            backoff = min(MAX_SLEEP, max(MIN_SLEEP, backoff * 2))
    elif latency is not None:
        if backoff > 0:
            backoff = backoff / 2 if backoff / 2 >= MIN_SLEEP else 0.0
        elif share is None or share <= limits.max_cpu:
            batch = min(limits.ceiling, batch + max(1, limits.ceiling // GROWTH))
    return Pace(
        batch=batch,
        backoff=backoff,
        cpu_sleep=cpu_sleep,
        window=window,
        batches=batches,
        latency_ms=latency if latency is not None else pace.latency_ms,
        cpu=share,
    )


# --- the probe ------------------------------------------------------------------------------


def probe_vector(datatype: str, dims: int) -> bytes:
    """A query vector the live index accepts (every component 1, in its datatype)."""
    kind = normalize_datatype(datatype)
    if kind in INTEGER_DATATYPES:
        return b"\x01" * dims
    return encode(np.ones((1, dims)), kind)


def probe_command(index: str, schema: IndexSchema, query: str = "") -> Command:
    """The probe on ``index`` (whose live schema is ``schema``): the user's ``query`` (with
    ``$vec`` bound to a vector of its first vector field), or a KNN 10 on that field, or
    ``*`` when it has none."""
    vectors = schema.vector_fields()
    blob = probe_vector(vectors[0].attrs.datatype, vectors[0].attrs.dims) if vectors else None
    if query:
        params: Command = ("PARAMS", "2", "vec", blob) if blob and "$vec" in query else ()
        return ("FT.SEARCH", index, query, *params, "LIMIT", "0", str(PROBE_K), "DIALECT", "2")
    if blob is None:
        return ("FT.SEARCH", index, "*", "LIMIT", "0", "1", "NOCONTENT")
    knn = f"*=>[KNN {PROBE_K} @{vectors[0].name} $vec]"
    return ("FT.SEARCH", index, knn, "PARAMS", "2", "vec", blob, "NOCONTENT", "DIALECT", "2")


def cpu_seconds(reply: object) -> float | None:
    """The server main thread's CPU seconds so far from an ``INFO cpu`` reply (the whole
    process's on servers that do not report the main thread)."""
    if isinstance(reply, ReplyError) or reply is None:
        return None
    text = reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply)
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    for names in (
        ("used_cpu_sys_main_thread", "used_cpu_user_main_thread"),
        ("used_cpu_sys", "used_cpu_user"),
    ):
        try:
            return sum(float(fields[name]) for name in names)
        except (KeyError, ValueError):
            continue
    return None


def _slower(*values: float | None) -> float | None:
    known = [v for v in values if v is not None]
    return max(known) if known else None


# --- one run's pace -------------------------------------------------------------------------


class Pacer:
    """The pace of one run's document writes (shared by its steps: a run that slowed down
    in ``expand`` starts ``catch_up`` slowed), the effects that measure it, and the pause.

    Write loops call :meth:`gate` before a batch of :attr:`batch` documents and
    :meth:`after` once it is written, and report each write transaction's round trip to
    :meth:`wrote`; index builds call :meth:`observe` as they poll. With ``throttle`` off
    the batch stays at the ceiling and nothing is measured, but the pause flag is obeyed.
    """

    def __init__(
        self, pacing: Pacing, ceiling: int, names: Iterable[str], state: RunState | None = None
    ) -> None:
        full = pacing.resolved()
        self.throttle = bool(full.throttle)
        self.query = full.probe_query or ""
        self.limits = Limits.of(full, ceiling)
        self.pace = Pace(batch=self.limits.ceiling)
        self._names = list(dict.fromkeys(names))
        """Where the probe looks for the live index, in order (the name queries use first)."""
        self._state = state
        self._probe: Command | None = None
        self._writes = 0.0
        """The longest write round trip since the last measurement (seconds)."""
        self._low: tuple[int, float] | None = None
        """While slowed down: the smallest batch and longest pause journaled so far."""

    @classmethod
    def for_run(cls, spec: RunSpec, pacing: Pacing, state: RunState | None = None) -> Pacer:
        """The pacer of a run of ``spec``: probes the name its queries use (the index after
        a rename, the source while nothing else answers)."""
        names = [spec.target_index, spec.source_index]
        if spec.online is not None:
            names.insert(0, spec.online.serving_name)
        return cls(pacing, spec.batch_size, names, state)

    @property
    def batch(self) -> int:
        """Documents in the next batch."""
        return self.pace.batch if self.throttle else self.limits.ceiling

    def wrote(self, seconds: float) -> None:
        """A write transaction's round trip (seconds)."""
        self._writes = max(self._writes, seconds)

    def gate(self, *, pause: bool = True) -> Step[None]:
        """Before a batch: hold while the run is paused, then pause as the pace says.

        ``pause=False`` for writes the application made (captured changes): they are
        applied in batches of the pace but never slept on. Their work follows the
        application's write rate; held below it, the backlog grows without end (seen under
        a reader and a writer that kept the server over ``--max-cpu`` by themselves)."""
        yield from self._hold()
        if pause and self.throttle and self.pace.sleep > 0:
            yield Sleep(self.pace.sleep)

    def after(self, documents: int) -> Step[None]:
        """After a batch of ``documents``: measure, decide the next pace, report progress."""
        if self.throttle:
            probe_ms, cpu, at = yield from self._measure()
            written = self._writes * 1000 if self._writes else None
            self._writes = 0.0
            yield from self._update(Sample(at, _slower(probe_ms, written), cpu))
        yield Progress(advance=documents, detail=self.detail())

    def observe(self) -> Step[None]:
        """While the server builds an index (no writes of the run's): measure the latency,
        so the writes after the build start at the pace the server can take."""
        if not self.throttle:
            return
        probe_ms, _, at = yield from self._measure()
        yield from self._update(Sample(at, probe_ms))

    def check(self) -> Step[str | None]:
        """Before anything is written: why the probe cannot run (None: it can)."""
        if not self.throttle:
            return None
        self._probe = yield from self._resolve()
        if self._probe is None:
            return f"the latency probe finds no index under {', '.join(map(repr, self._names))}"
        timing: Timing = yield Timed(Commands([self._probe]))
        (reply,) = timing.replies
        if isinstance(reply, ReplyError):
            self._probe = None
            return f"the latency probe fails on the live index: {reply}"
        return None

    def detail(self) -> dict[str, float | int | str]:
        """The pace as progress fields."""
        if not self.throttle:
            return {"batch": self.batch}
        out: dict[str, float | int | str] = {
            "batch": self.pace.batch,
            "sleep_ms": round(self.pace.sleep * 1000, 1),
        }
        if self.pace.latency_ms is not None:
            out["latency_ms"] = round(self.pace.latency_ms, 2)
        if self.pace.cpu is not None:
            out["cpu"] = round(self.pace.cpu, 3)
        return out

    # -- measuring -----------------------------------------------------------------------

    def _resolve(self) -> Step[Command | None]:
        """The probe on the first of the names that answers FT.INFO (None: none does)."""
        for name in self._names:
            (reply,) = yield Commands([("FT.INFO", name)])
            if not isinstance(reply, ReplyError):
                return probe_command(name, parse_ft_info(reply).schema, self.query)
        return None

    def _measure(self) -> Step[tuple[float | None, float | None, float]]:
        """(probe round trip in ms or None, server CPU seconds or None, the clock).

        A probe that fails is looked up again for the next measurement (the live index
        changed under it: a cut-over to another datatype or name); one that fails right
        after it was looked up stops the run (MigrationFailed, resumable): pacing blind
        is not what the run was asked for.
        """
        fresh = self._probe is None
        if fresh:
            self._probe = yield from self._resolve()
        if self._probe is None:
            alone: Timing = yield Timed(Commands([("INFO", "cpu")]))
            return None, cpu_seconds(alone.replies[0]), alone.at
        timing: Timing = yield Timed(Commands([self._probe, ("INFO", "cpu")]))
        probe, info = timing.replies
        if isinstance(probe, ReplyError):
            failed, self._probe = self._probe, None
            if fresh:
                raise MigrationFailed(
                    f"the latency probe fails on index '{failed[1]!s}': {probe}",
                    "resume with another --probe-query, or with --no-throttle",
                )
            return None, cpu_seconds(info), timing.at
        return timing.seconds * 1000, cpu_seconds(info), timing.at

    def _update(self, sample: Sample) -> Step[None]:
        self.pace = decide(self.pace, sample, self.limits)
        change = self._change()
        if change is None:
            return
        pace = self.pace
        event = PaceChanged(
            step=self._step(),
            change=change,
            batch=pace.batch,
            sleep_ms=round(pace.sleep * 1000, 1),
            latency_ms=round(pace.latency_ms, 3) if pace.latency_ms is not None else None,
            cpu=round(pace.cpu, 3) if pace.cpu is not None else None,
        )
        yield Record([event])

    def _change(self) -> PaceChange | None:
        """Whether the new pace is worth a journal event: the first slowdown from full pace,
        a new low of it (half the batch, twice the pause), or the return to full pace."""
        pace, low = self.pace, self._low
        if pace.full(self.limits):
            self._low = None
            return "recovered" if low is not None else None
        if low is None:
            self._low = (pace.batch, pace.sleep)
            return "slowed"
        batch, sleep = low
        if pace.batch <= batch // 2 or pace.sleep >= max(2 * sleep, MIN_SLEEP):
            self._low = (min(batch, pace.batch), max(sleep, pace.sleep))
            return "slowed"
        return None

    # -- the pause flag ----------------------------------------------------------------------

    def _hold(self) -> Step[None]:
        """While the pause flag is there: journal the pause, wait (holding nothing on the
        server; Ctrl+C still stops the run), journal its end."""
        if not (yield Paused()):
            return
        step = self._step()
        yield Record([RunPaused(step=step)])
        while True:
            yield Progress(detail={"paused": "yes", **self.detail()})
            yield Sleep(PAUSE_POLL)
            if not (yield Paused()):
                break
        yield Record([RunResumed(step=step)])
        # The CPU the server used while the run held still says nothing about the run.
        self.pace = replace(self.pace, window=None, batches=0)

    def _step(self) -> StepName | Literal[""]:
        state = self._state
        if state is None:
            return ""
        running = [s for s in state.steps_started if s not in state.steps_finished]
        return running[-1] if running else ""


__all__ = [
    "CPU_WINDOW",
    "FLOOR",
    "MAX_SLEEP",
    "MIN_SLEEP",
    "Limits",
    "Pace",
    "Pacer",
    "Sample",
    "cpu_seconds",
    "decide",
    "probe_command",
    "probe_vector",
]
