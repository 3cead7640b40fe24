"""How an online run paces the documents it writes (pure settings; the controller is in
:mod:`ftctl.steps.pace`).

An online migration that rewrites documents (the ``expand`` strategy: expand, catch-up,
rewrite, contract, and their rollback) writes every document of a live index at least
twice, and every write re-indexes the whole document. Between batches the run measures a
latency probe and the server's CPU, and slows down (smaller batches, pauses) when either
is over its limit. drop_recreate is never paced: nothing serves during its window, so the
fastest run is the kindest one.

:class:`Pacing` is what the user asked for; a field left ``None`` is inherited (from the
journal's latest run, then :data:`DEFAULT_MAX_LATENCY_MS` / :data:`DEFAULT_MAX_CPU`), so a
resumed run keeps the pace its apply was given unless told otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

import msgspec

from ftctl.errors import UsageError

DEFAULT_MAX_LATENCY_MS = 50.0
"""The probe latency above which a run slows down. An idle KNN 10 on the 3,000-document
demo index answers in 0.2-1 ms, and a machine shared with other work shows single spikes
near 10 ms; an unpaced expand of that index stalls concurrent queries up to ~60 ms (each
transaction of 50 documents re-indexes them all). 50 ms keeps a typical p99 target for
vector search without slowing runs on a server that has room."""
DEFAULT_MAX_CPU = 0.8
"""The share of the server's main thread (one core) the run lets the server use before it
pauses between batches: a fifth is left for the applications."""

OPTION_KEYS = ("max_latency_ms", "max_cpu", "probe_query", "throttle")
"""The names under which a run's pacing is journaled (``run_started.options``)."""


class Pacing(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The pace an online run keeps; ``None`` fields are inherited (see module docs).

    ``max_latency_ms``: the probe latency target. ``max_cpu``: the ceiling on the server
    main thread's CPU share (0 < x <= 1). ``probe_query``: an FT.SEARCH query string run
    against the live index (``$vec`` is bound to a vector of the live index's datatype);
    empty: a KNN 10 on its first vector field, or ``*`` without one. ``throttle``: False
    runs at full speed (a pause flag is still obeyed).
    """

    max_latency_ms: float | None = None
    max_cpu: float | None = None
    probe_query: str | None = None
    throttle: bool | None = None

    def __post_init__(self) -> None:
        if self.max_latency_ms is not None and not self.max_latency_ms > 0:
            raise UsageError(
                f"max latency must be a positive number of milliseconds, got {self.max_latency_ms:g}",
                "pass e.g. --max-latency-ms 50",
            )
        if self.max_cpu is not None and not 0 < self.max_cpu <= 1:
            raise UsageError(
                f"max CPU must be a share of one core between 0 and 1, got {self.max_cpu:g}",
                "pass e.g. --max-cpu 0.8 (or 80%)",
            )

    def over(self, base: Pacing) -> Pacing:
        """These settings where given, ``base``'s elsewhere."""
        return Pacing(
            max_latency_ms=_first(self.max_latency_ms, base.max_latency_ms),
            max_cpu=_first(self.max_cpu, base.max_cpu),
            probe_query=_first(self.probe_query, base.probe_query),
            throttle=_first(self.throttle, base.throttle),
        )

    def resolved(self) -> Pacing:
        """Every field set: the defaults where none was given."""
        return self.over(DEFAULTS)

    def as_options(self) -> dict[str, str | float | bool]:
        """The resolved settings as ``run_started.options`` entries."""
        full = self.resolved()
        return {
            "max_latency_ms": float(full.max_latency_ms or DEFAULT_MAX_LATENCY_MS),
            "max_cpu": float(full.max_cpu or DEFAULT_MAX_CPU),
            "probe_query": full.probe_query or "",
            "throttle": bool(full.throttle),
        }

    @classmethod
    def from_options(cls, options: Mapping[str, object]) -> Pacing:
        """The settings a run journaled (none: a run of an earlier release)."""
        latency, cpu = options.get("max_latency_ms"), options.get("max_cpu")
        query, throttle = options.get("probe_query"), options.get("throttle")
        return cls(
            max_latency_ms=float(latency) if isinstance(latency, int | float) else None,
            max_cpu=float(cpu) if isinstance(cpu, int | float) else None,
            probe_query=query if isinstance(query, str) else None,
            throttle=throttle if isinstance(throttle, bool) else None,
        )

    def describe(self) -> str:
        """One line for plan and run output."""
        full = self.resolved()
        if not full.throttle:
            return "not throttled (--no-throttle); a pause flag is still obeyed"
        probe = f"the query '{full.probe_query}'" if full.probe_query else "a KNN 10 probe"
        cpu = full.max_cpu or DEFAULT_MAX_CPU
        return (
            f"batches shrink and pause while {probe} on the live index takes over "
            f"{full.max_latency_ms:g} ms or the server's main thread is over {cpu:.0%} busy"
        )


DEFAULTS = Pacing(
    max_latency_ms=DEFAULT_MAX_LATENCY_MS, max_cpu=DEFAULT_MAX_CPU, probe_query="", throttle=True
)


T = TypeVar("T")


def _first(given: T | None, base: T | None) -> T | None:
    return given if given is not None else base


__all__ = ["DEFAULTS", "DEFAULT_MAX_CPU", "DEFAULT_MAX_LATENCY_MS", "OPTION_KEYS", "Pacing"]
