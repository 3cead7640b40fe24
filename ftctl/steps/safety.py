"""What must hold before a run's first destructive step, checked from the data itself.

Nothing after a drop may fail because of the data or the backup (DESIGN §3): every vector
converts (the backup converted each one and journaled those that cannot), every field
rename has a free destination, and every segment the run needs is on disk as journaled.
Each problem is a ``(check, detail)`` pair that the preflight refuses on, naming keys
(a count and a bounded sample) or files.
"""

from __future__ import annotations

from collections.abc import Sequence

from ftctl.journal.events import CheckFailed, CheckPassed, SegmentRef
from ftctl.journal.projections import RunState
from ftctl.journal.segments import SegmentPayload
from ftctl.plan.build import prefixes_overlap
from ftctl.schema.ftinfo import parse_ft_info
from ftctl.steps.catalog import list_indexes
from ftctl.steps.effects import (
    Command,
    Commands,
    Parallel,
    ReadSegment,
    ReplyError,
    Step,
    VerifySegments,
)
from ftctl.steps.replies import field_present, ok
from ftctl.steps.spec import RunSpec

Problem = tuple[str, str]
SAMPLE = 10
"""Keys named in a problem's detail."""


def shown(keys: Sequence[bytes]) -> str:
    """Keys for a one-line message: escaped (any bytes, no terminal control characters)."""
    return ", ".join(repr(k)[2:-1] for k in keys[:SAMPLE])


def rejected_vectors(spec: RunSpec, state: RunState) -> list[Problem]:
    """Vectors the backup found it cannot convert: a refusal unless the run was told to leave
    them untouched (wrong-length vectors are only reported: the source could not index them)."""
    found = state.rejected.get("unconvertible")
    if found is None or found.count == 0 or spec.skip_invalid:
        return []
    return [
        (
            "vectors_convert",
            f"{found.count} vectors of {', '.join(found.fields)} cannot be converted "
            f"({found.detail}), e.g. keys {shown(found.sample)}; fix them, or pass "
            "--skip-invalid-vectors to leave them untouched (they will not be in the new index)",
        )
    ]


def unlisted_documents(spec: RunSpec, state: RunState) -> list[Problem]:
    """Documents a FILTER index failed to index cannot be enumerated: a prefix change would
    leave them under the old prefix, so it refuses."""
    unlisted = state.step_counts.get("enumerate", {}).get("unlisted", 0)
    if not unlisted or spec.prefix_change is None:
        return []
    return [
        (
            "documents_listed",
            f"{unlisted} documents under '{spec.prefix_change.old}' failed to index in an index "
            "with a FILTER: they cannot be told from the keys the filter excludes and would "
            "stay under the old prefix; fix them (FT.INFO names the last) or drop the prefix "
            "change",
        )
    ]


def prefix_covered(spec: RunSpec) -> Step[list[Problem]]:
    """A prefix change onto keys another index covers would fill that index (with failures,
    when the schemas differ): refused, naming the index."""
    if spec.prefix_change is None:
        return []
    names = [n for n in (yield from list_indexes()) if n != spec.source_index]
    if not names:
        return []
    replies = yield Commands([("FT.INFO", n) for n in names])
    covering = []
    for name, reply in zip(names, replies, strict=True):
        if isinstance(reply, ReplyError):
            continue  # dropped meanwhile
        info = parse_ft_info(reply)
        if info.index_name != name or info.schema.storage_type != spec.storage_type:
            continue
        if prefixes_overlap([spec.prefix_change.new], info.schema.prefixes):
            covering.append(name)
    if not covering:
        return []
    return [
        (
            "prefix_uncovered",
            f"the new prefix '{spec.prefix_change.new}' is covered by index "
            f"{', '.join(repr(n) for n in covering)}, which would index every moved document; "
            "choose a prefix no other index covers",
        )
    ]


def _taken_destinations(spec: RunSpec, ref: SegmentRef) -> Step[list[bytes]]:
    """Keys of one segment where a renamed field's destination already exists."""
    segment: SegmentPayload = yield ReadSegment(ref)
    commands: list[Command] = []
    for key in segment.keys:
        for rename in spec.field_renames:
            if spec.storage_type == "json":
                commands.append(("JSON.TYPE", key, rename.new))
            else:
                commands.append(("HEXISTS", key, rename.new))
    replies = yield Commands(commands)
    per_key = len(spec.field_renames)
    taken = []
    for n, key in enumerate(segment.keys):
        answers = replies[n * per_key : (n + 1) * per_key]
        if any(field_present(ok(a, "rename destination check")) for a in answers):
            taken.append(key)
    return taken


def rename_destinations(spec: RunSpec, key_segments: Sequence[SegmentRef]) -> Step[list[Problem]]:
    """Field renames whose destination field already exists in some document."""
    if not spec.field_renames or not key_segments:
        return []
    taken: list[list[bytes]] = yield Parallel(
        [_taken_destinations(spec, ref) for ref in key_segments]
    )
    keys = [k for part in taken for k in part]
    if not keys:
        return []
    names = ", ".join(f"{r.old} → {r.new}" for r in spec.field_renames)
    return [
        (
            "rename_destinations_free",
            f"{len(keys)} documents already have the destination of a field rename ({names}), "
            f"e.g. keys {shown(keys)}; remove or rename those fields first",
        )
    ]


def segments_intact(refs: Sequence[SegmentRef]) -> Step[list[Problem]]:
    """Every segment the run will read is there with the size and crc journaled."""
    if not refs:
        return []
    damaged: list[str] = yield VerifySegments(list(refs))
    if not damaged:
        return []
    more = f" (and {len(damaged) - 1} more)" if len(damaged) > 1 else ""
    return [("backup_intact", f"{len(damaged)} backup segments are unusable: {damaged[0]}{more}")]


def check_events(found: Sequence[Problem], passed: str) -> list[CheckPassed | CheckFailed]:
    """The journal events of a preflight's problems (or its one pass)."""
    if not found:
        return [CheckPassed(check=passed)]
    return [CheckFailed(check=check, detail=detail, count=1) for check, detail in found]


__all__ = ["check_events", "rejected_vectors", "rename_destinations", "segments_intact", "shown"]
