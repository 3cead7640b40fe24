"""validate: every check is a journal event; the run succeeds only if all of them pass.

In an apply, ``keys_exist`` and ``vector_bytes`` (:func:`document_checks`) read documents,
not the index: they run in the ``wait`` step while the server builds the index, and
``validate`` adds the rest. Rollback and ``migrate validate`` run them all in one step.

- ``schema_match``: the live target equals the plan's target on everything FT.INFO reports;
- ``doc_count``: ``num_docs + hash_indexing_failures`` equals the journaled enumeration;
- ``keys_exist``: every enumerated key exists under its final name;
- ``indexing_failures``: not more than the source had;
- ``vector_bytes``: a sample of vectors equals the conversion of their backup, byte for byte;
- ``knn_self``: a KNN query with each sampled stored vector finds that document first (or
  within its exact-distance tie);
- ``concurrent_writes``: no key was left unconverted because someone wrote it meanwhile;
- ``names_resolve``: every public name the plan keeps resolves to the index.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

from ftctl.errors import MigrationFailed
from ftctl.journal.events import CheckFailed, CheckPassed, SegmentRef
from ftctl.journal.segments import SegmentPayload, unpack_field
from ftctl.plan.codecs import encode
from ftctl.plan.quantization import element_size
from ftctl.schema.compare import reported_differences
from ftctl.schema.model import IndexSchema, VectorField
from ftctl.steps.effects import (
    Arg,
    Command,
    Commands,
    Parallel,
    Progress,
    ReadSegment,
    Record,
    Step,
)
from ftctl.steps.index_ops import live_info
from ftctl.steps.names import names_check
from ftctl.steps.replies import field_present, ok, search_hits, text
from ftctl.steps.rewrite import convert_block
from ftctl.steps.spec import RunSpec

KNN_K = 10
KNN_EF_RUNTIME = 500
KNN_QUERIES = 10
SAMPLED_SEGMENTS = 5
"""Segments (spread over the run) the key and vector samples are drawn from."""
"""Sampled documents queried by KNN: each is a brute-force pass on a FLAT index."""


class Checks:
    """Collects check results as journal events (``passed`` when none failed)."""

    def __init__(self) -> None:
        self.events: list[CheckPassed | CheckFailed] = []

    def check(self, name: str, failures: int, detail: str) -> None:
        if failures:
            self.events.append(CheckFailed(check=name, detail=detail, count=failures))
        else:
            self.events.append(CheckPassed(check=name, detail=detail))

    @property
    def passed(self) -> bool:
        return all(isinstance(e, CheckPassed) for e in self.events)


Check = tuple[str, int, str]
"""(name, failures, detail) of one check, as :meth:`Checks.check` takes them."""


def _spread(count: int, want: int) -> list[int]:
    if count <= want:
        return list(range(count))
    return sorted({round(i * (count - 1) / max(want - 1, 1)) for i in range(want)})


def validate(
    spec: RunSpec,
    *,
    schema: IndexSchema,
    expected_docs: int,
    source_failures: int,
    key_segments: Sequence[SegmentRef],
    backup_segments: Sequence[SegmentRef],
    conflicts: int,
    documents: bool = True,
    gone: int = 0,
    names: Sequence[str] = (),
) -> Step[bool]:
    """Run every check against the live index ``schema.name`` and journal each result.

    ``documents=False`` leaves out :func:`document_checks`, for a run that journaled them
    while the index was being built. ``names``: public names that must resolve to it.
    """
    out = Checks()
    info = yield from live_info(schema.name)
    if info is None:
        out.check("schema_match", 1, f"index '{schema.name}' does not exist")
        yield Record(out.events)
        return False
    differences = reported_differences(schema, info.schema)
    out.check("schema_match", len(differences), "; ".join(differences) or "matches the plan")
    counted = info.stats.num_docs + info.stats.hash_indexing_failures
    expected = expected_docs - gone
    out.check(
        "doc_count",
        abs(counted - expected),
        f"num_docs + hash_indexing_failures = {counted}, expected {expected}"
        + (f" ({gone} keys gone meanwhile)" if gone else ""),
    )
    out.check(
        "indexing_failures",
        max(0, info.stats.hash_indexing_failures - source_failures),
        f"{info.stats.hash_indexing_failures} failures (source had {source_failures})",
    )
    resolves = yield from names_check(info.index_name, names)
    if resolves is not None:
        out.check(*resolves)

    def knn_on_sample() -> Step[list[Check]]:
        sample = yield from _sample_keys(spec, schema, key_segments, backup_segments)
        knn = yield from _check_knn(spec, schema, sample)
        return [] if knn is None else [knn]

    # Independent checks, run side by side: the server's KNN scans and EXISTS overlap the
    # client's reading of segments.
    knn, *on_documents = yield Parallel(
        [
            knn_on_sample(),
            *(
                [document_checks(spec, key_segments, backup_segments, gone=gone, progress=True)]
                if documents
                else []
            ),
        ]
    )
    for checks in [*on_documents, knn]:
        for check in checks:
            out.check(*check)
    out.check("concurrent_writes", conflicts, f"{conflicts} keys changed by others meanwhile")
    yield Record(out.events)
    return out.passed


def document_checks(
    spec: RunSpec,
    key_segments: Sequence[SegmentRef],
    backup_segments: Sequence[SegmentRef],
    *,
    gone: int = 0,
    progress: bool = False,
) -> Step[list[Check]]:
    """``keys_exist`` and ``vector_bytes``: they read documents, not the index, so a run
    can check them while the server builds the index. ``gone``: keys the run already found
    gone and journaled (they are reported, not a failure of this check).

    ``progress``: report the keys checked as the step's :class:`Progress` (not while the
    index build is what the step reports).
    """
    vectors, *missing = yield Parallel(
        [
            _check_vectors(spec, backup_segments),
            *[_missing_keys(spec, ref, progress=progress) for ref in key_segments],
        ]
    )
    absent = sum(n for n, _ in missing)
    stale = [k for _, keys in missing for k in keys]
    unexplained = max(0, absent - gone)
    detail = f"{absent} enumerated keys missing under their final name"
    if gone:
        detail += f" ({gone} of them journaled as gone: deleted meanwhile or lost by the server)"
    checks: list[Check] = [("keys_exist", unexplained, detail)]
    if spec.prefix_change is not None or spec.field_renames:
        shown = ", ".join(repr(k)[2:-1] for k in stale[:10])
        checks.append(
            (
                "old_names_unused",
                len(stale),
                f"{len(stale)} documents were written through an old key or field name while "
                f"the migration ran (no index reads them)" + (f", e.g. {shown}" if stale else ""),
            )
        )
    return checks if vectors is None else [*checks, vectors]


def check_events(checks: Sequence[Check]) -> list[CheckPassed | CheckFailed]:
    """The journal events of checks run outside :func:`validate`."""
    out = Checks()
    for check in checks:
        out.check(*check)
    return out.events


def _missing_keys(
    spec: RunSpec, ref: SegmentRef, *, progress: bool = False
) -> Step[tuple[int, list[bytes]]]:
    """How many keys of one key segment do not exist under their final name, and which
    keys still (or again) hold an old name: a key under the old prefix, or a renamed field
    under its old name — writes made through old names while the migration ran, which no
    index reads any more."""
    segment: SegmentPayload = yield ReadSegment(ref)
    final = segment.keys if spec.prefix_change is None else list(map(spec.final_key, segment.keys))
    commands: list[Command] = [("EXISTS", *final)]
    if spec.prefix_change is not None:
        commands += [("EXISTS", key) for key in segment.keys]
    for rename in spec.field_renames:
        if spec.storage_type == "json":
            commands += [("JSON.TYPE", key, rename.old) for key in final]
        else:
            commands += [("HEXISTS", key, rename.old) for key in final]
    replies = yield Commands(commands)
    present = ok(replies[0], "EXISTS")
    if not isinstance(present, int):
        raise MigrationFailed(f"EXISTS returned {present!r:.100}")
    stale: list[bytes] = []
    rest = replies[1:]
    count = len(segment.keys)
    if spec.prefix_change is not None:
        stale += [k for k, r in zip(segment.keys, rest[:count], strict=True) if r == 1]
        rest = rest[count:]
    for n in range(len(spec.field_renames)):
        part = rest[n * count : (n + 1) * count]
        stale += [k for k, r in zip(final, part, strict=True) if field_present(r)]
    if progress:
        yield Progress(advance=len(final))
    return len(final) - present, list(dict.fromkeys(stale))


def _sample_keys(
    spec: RunSpec,
    schema: IndexSchema,
    key_segments: Sequence[SegmentRef],
    backup_segments: Sequence[SegmentRef],
) -> Step[list[bytes]]:
    # Key segments are small; backup segments carry every vector: sample from the former.
    segments = list(key_segments) or list(backup_segments)
    want = spec.validation_sample
    if segments:
        picked = _spread(len(segments), min(len(segments), SAMPLED_SEGMENTS))
        per = max(1, math.ceil(want / len(picked)))
        keys: list[bytes] = []
        for index in picked:
            segment: SegmentPayload = yield ReadSegment(segments[index])
            keys += [spec.final_key(k) for k in segment.keys[:per]]
        return keys[:want]
    (reply,) = yield Commands(
        [("FT.SEARCH", schema.name, "*", "NOCONTENT", "LIMIT", "0", str(want), "DIALECT", "2")]
    )
    return [doc_id for doc_id, _ in search_hits(reply)]


def _check_vectors(spec: RunSpec, backup_segments: Sequence[SegmentRef]) -> Step[Check | None]:
    if not spec.conversions or not backup_segments:
        return None
    mismatched, checked = 0, 0
    for index in _spread(len(backup_segments), min(len(backup_segments), SAMPLED_SEGMENTS)):
        segment: SegmentPayload = yield ReadSegment(backup_segments[index])
        keys = segment.keys[: spec.validation_sample]
        final = [spec.final_key(k) for k in keys]
        fields = [c.field for c in spec.conversions]
        replies = yield Commands([("HMGET", key, *fields) for key in final])
        for column, conversion in enumerate(spec.conversions):
            originals = unpack_field(segment.fields[conversion.backup_field], len(segment.keys))
            wanted = convert_block(originals[: len(keys)], conversion)
            for reply, expected in zip(replies, wanted, strict=True):
                if expected is None:
                    continue
                checked += 1
                live = reply[column] if isinstance(reply, list) else None
                if live != expected:
                    mismatched += 1
    return (
        "vector_bytes",
        mismatched,
        f"{checked - mismatched} of {checked} sampled vectors equal the conversion of their backup",
    )


def _query_vector(schema: IndexSchema, f: VectorField, reply: object) -> bytes | None:
    """The stored vector as a query blob; None when the index could not have held it (a
    document with a wrong-size vector is an indexing failure, not a KNN miss)."""
    if schema.storage_type == "hash":
        width = f.attrs.dims * element_size(f.attrs.datatype)
        return reply if isinstance(reply, bytes) and len(reply) == width else None
    if not isinstance(reply, bytes | str):
        return None
    values = json.loads(reply)
    if not values or not isinstance(values[0], list) or len(values[0]) != f.attrs.dims:
        return None
    return encode([values[0]], f.attrs.datatype)


def _check_knn(spec: RunSpec, schema: IndexSchema, sample: list[bytes]) -> Step[Check | None]:
    vector_fields = schema.vector_fields()
    if not vector_fields or not sample:
        return None
    keys = sample[: max(1, min(len(sample), KNN_QUERIES))]
    failures, asked = 0, 0
    for f in vector_fields:
        path = schema.field_path(f)
        getter: list[Command] = [
            ("HGET", key, path) if schema.storage_type == "hash" else ("JSON.GET", key, path)
            for key in keys
        ]
        stored = yield Commands(getter)
        queries: list[Command] = []
        asked_keys: list[bytes] = []
        for key, reply in zip(keys, stored, strict=True):
            vector = _query_vector(schema, f, reply)
            if vector is None:
                continue
            # HNSW is approximate: search wide so a miss means a broken index, not bad luck.
            ef = f" EF_RUNTIME {KNN_EF_RUNTIME}" if f.attrs.algorithm == "hnsw" else ""
            query = f"*=>[KNN {KNN_K} @{f.name} $v{ef} AS __ftctl_d]"
            args: list[Arg] = [
                "FT.SEARCH", schema.name, query, "PARAMS", "2", "v", vector,
                "SORTBY", "__ftctl_d", "RETURN", "1", "__ftctl_d", "LIMIT", "0", str(KNN_K),
                "DIALECT", "2",
            ]  # fmt: skip
            queries.append(tuple(args))
            asked_keys.append(key)
        results = yield Commands(queries)
        for key, reply in zip(asked_keys, results, strict=True):
            asked += 1
            hits = search_hits(reply)
            if not hits:
                failures += 1
                continue
            best = _distance(hits[0][1])
            if not any(doc == key and abs(_distance(fs) - best) <= 1e-6 for doc, fs in hits):
                failures += 1
    return (
        "knn_self",
        failures,
        f"{asked - failures} of {asked} sampled vectors find their own document first",
    )


def _distance(fields: dict[str, object]) -> float:
    try:
        return float(text(fields.get("__ftctl_d", "nan")))
    except ValueError:
        return math.nan
