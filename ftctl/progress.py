"""Rate and ETA of a step's progress, from the counts reported as it runs (pure).

One :class:`Meter` per step. Its first sample is its origin: the step's start for the run's
log lines, the first tick for the CLI's live line. A resumed step's origin holds what
earlier runs already did, so only the work of this run makes the rate. A rate is given
once the samples span :data:`MIN_SPAN` seconds with work done in them (never a division
by ~0), and follows the last :data:`WINDOW` seconds so it keeps up when the pace changes
(an index build speeds up once the server's scan is under way).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

MIN_SPAN = 0.05
"""Seconds the samples must span before a rate is given."""
WINDOW = 30.0
"""Seconds of samples the rate is measured over, once the step has run that long."""
RESOLUTION = 0.1
"""Samples closer together than this replace each other (a bounded window)."""


@dataclass
class Meter:
    """Rate and ETA of one step, from ``(time, done)`` samples; times in seconds."""

    now: float
    done: int = 0
    total: int = 0
    min_span: float = MIN_SPAN
    _samples: deque[tuple[float, int]] = field(default_factory=deque, repr=False)

    def __post_init__(self) -> None:
        self._samples.append((self.now, self.done))

    @property
    def origin(self) -> tuple[float, int]:
        """The first sample: when counting started, and what was already done then."""
        return self._samples[0]

    def update(self, now: float, done: int, total: int | None = None) -> None:
        """Record that ``done`` (of ``total``, when given) were done at ``now``."""
        self.now, self.done = now, done
        if total:
            self.total = total
        samples = self._samples
        if len(samples) > 1 and now - samples[-2][0] < RESOLUTION:
            samples[-1] = (now, done)
        else:
            samples.append((now, done))
        while len(samples) > 2 and samples[1][0] <= now - WINDOW:
            samples.popleft()

    @property
    def elapsed(self) -> float:
        """Seconds since the origin."""
        return self.now - self.origin[0]

    @property
    def rate(self) -> float | None:
        """Items per second over the window; None until it spans ``min_span`` with work."""
        start, was = self._samples[0]
        span = self.now - start
        if span < self.min_span or self.done <= was:
            return None
        return (self.done - was) / span

    @property
    def eta(self) -> float | None:
        """Seconds until ``total`` at the current rate (0 once reached; None: unknown)."""
        if self.total and self.done >= self.total:
            return 0.0
        rate = self.rate
        if rate is None or not self.total:
            return None
        return (self.total - self.done) / rate

    def fields(self) -> dict[str, float | int | None]:
        """The meter as log fields: done, total, percent, rate (/s), eta_s, elapsed_s."""
        rate, eta = self.rate, self.eta
        percent = round(100 * self.done / self.total, 1) if self.total else None
        return {
            "done": self.done,
            "total": self.total,
            "percent": percent,
            "rate": None if rate is None else round(rate, 1),
            "eta_s": None if eta is None else round(eta, 1),
            "elapsed_s": round(self.elapsed, 3),
        }


def duration(seconds: float | None) -> str:
    """``seconds`` for humans: ``42s``, ``3m07s``, ``2h05m``; ``?`` when unknown."""
    if seconds is None:
        return "?"
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


__all__ = ["MIN_SPAN", "WINDOW", "Meter", "duration"]
