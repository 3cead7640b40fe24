"""Online-mode journal events: the shadow index's life and the cut-over instant.

They sit in the same journal as the drop_recreate events (:data:`ftctl.journal.events.AnyEvent`)
and follow the same rules: explicit stable tags, later fields only with defaults. Each carries
the ``step`` it belongs to, so the fault hook and the step timings see them like any other.
"""

from __future__ import annotations

import msgspec

from ftctl.journal.events import Event


class ShadowCreated(Event, frozen=True, kw_only=True, tag="shadow_created"):
    """``FT.CREATE`` of a shadow index succeeded (or found it already there with its schema)."""

    step: str
    index: str
    """The shadow's real name."""
    serving: str
    """The name queries use, still answered by the source meanwhile."""


class ShadowReady(Event, frozen=True, kw_only=True, tag="shadow_ready"):
    """The shadow finished its background scan (``indexing`` 0, ``percent_indexed`` 1)."""

    step: str
    index: str
    num_docs: int = 0
    hash_indexing_failures: int = 0


class CutoverApproved(Event, frozen=True, kw_only=True, tag="cutover_approved"):
    """An operator ran ``ftctl migrate cutover``: a postponed cut-over may now happen."""

    step: str = "await_cutover"


class CutoverDone(Event, frozen=True, kw_only=True, tag="cutover_done"):
    """The MULTI/EXEC that swapped indexes ran; its ``at`` is the cut-over instant.

    ``dropped`` was dropped (never with DD), ``index`` now answers every name in ``names``.
    ``recovered`` is True when a resumed run found the swap already done (a crash between
    EXEC and this event): then ``at`` is when that was found, not the EXEC itself.
    """

    step: str
    dropped: str
    index: str
    names: list[str] = msgspec.field(default_factory=list)
    recovered: bool = False


ONLINE_EVENT_TYPES = (ShadowCreated, ShadowReady, CutoverApproved, CutoverDone)
"""The online events (projections that ignore them test against this tuple)."""

__all__ = [
    "ONLINE_EVENT_TYPES",
    "CutoverApproved",
    "CutoverDone",
    "ShadowCreated",
    "ShadowReady",
]
