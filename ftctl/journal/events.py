"""The journal's events: msgspec Structs in one tagged union with explicit, stable tags.

Rules that keep old journals readable (msgspec's schema evolution):

- every concrete event has an explicit ``tag="snake_name"``; renaming the class is free,
  changing the tag is not;
- fields added later always have a default;
- closed sets (run kind, result, step name, batch status) are ``Literal`` types: a value may
  be added later (old journals still decode), never removed or renamed;
- adding an event is one class here plus one entry in :data:`AnyEvent`.

``seq`` and ``at`` are stamped by :meth:`ftctl.journal.Journal.append`; callers leave them at
their defaults.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, TypeAlias, assert_never, get_args

import msgspec

Scalar: TypeAlias = str | int | float | bool

StepName: TypeAlias = Literal[
    # drop_recreate
    "enumerate",
    "backup",
    "preflight",
    "drop",
    "rename_fields",
    "rename_keys",
    "quantize",
    "create",
    "wait",
    "validate",
    # rollback of drop_recreate
    "rollback_preflight",
    "drop_target",
    "restore_vectors",
    "restore_keys",
    "restore_fields",
    "recreate_source",
    "wait_source",
    "validate_source",
    # online: in place (FT.ALTER) and shadow index
    "online_preflight",
    "alter_add",
    "alter_wait",
    "shadow_create",
    "shadow_wait",
    "shadow_verify",
    "await_cutover",
    "cutover",
    "online_validate",
    # rollback of online
    "abort_shadow",
    "rb_shadow_create",
    "rb_shadow_wait",
    "rb_shadow_verify",
    "rb_cutover",
    "rb_validate",
    # online, rewriting stored bytes: expand → shadow → cut-over → contract
    "expand",
    "catch_up",
    "rewrite",
    "final_create",
    "final_wait",
    "final_verify",
    "final_cutover",
    "contract",
    # and their rollback
    "rb_relayout",
    "rb_rewrite",
    "rb_final_create",
    "rb_final_wait",
    "rb_final_verify",
    "rb_final_cutover",
    "rb_unexpand",
    # the user's own queries: a baseline on the source, compared on the target
    "query_baseline",
    "query_compare",
]
"""Every step any mode's table holds (:mod:`ftctl.steps.tables`)."""

STEP_NAMES: frozenset[str] = frozenset(get_args(StepName))

RunKind: TypeAlias = Literal["apply", "rollback", "validate", "batch"]
"""``batch`` only in journals written before :class:`BatchRunStarted` existed."""

RunResult: TypeAlias = Literal[
    "succeeded",
    "failed",
    "rolled_back",
    "refused",
    "interrupted",
    "awaiting_cutover",
    # batch runs: the batch's status when the run ended
    "completed",
    "partial_failure",
    "in_progress",
    "stopped",
]

Mode: TypeAlias = Literal["drop_recreate", "online"]

BatchIndexStatus: TypeAlias = Literal["success", "failed"]


class SegmentRef(msgspec.Struct, frozen=True, kw_only=True):
    """A backup segment as the journal knows it: number, size + crc32 of the file, and the
    size of its content once decompressed (``raw_size``; 0 in journals of ftctl 0.1, whose
    segments are bounded by :data:`~ftctl.journal.segments.LEGACY_MAX_RAW_SIZE`)."""

    number: int
    size: int
    crc32: int
    raw_size: int = 0

    @property
    def filename(self) -> str:
        """The segment's file name inside ``segments/`` (``000012.zst``)."""
        return f"{self.number:06d}.zst"


class Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    """Base of every journal event; never appended itself (it has no stable tag)."""

    seq: int = 0
    at: datetime | None = None


# --- every run ----------------------------------------------------------------------------


class RunStarted(Event, frozen=True, kw_only=True, tag="run_started"):
    """First event of an index journal (and of every later run on it): the whole plan and
    its digest."""

    run_id: str
    kind: RunKind
    index_name: str
    plan_yaml: str
    plan_sha256: str
    mode: Mode
    options: dict[str, Scalar] = msgspec.field(default_factory=dict)
    redis_url: str = ""
    """Already masked: never holds a password."""
    ftctl_version: str = ""


class RunFinished(Event, frozen=True, kw_only=True, tag="run_finished"):
    """The run ended; ``error`` says why when it did not succeed.

    Index runs end ``succeeded``, ``rolled_back``, ``failed`` (it ran and did not reach its
    target), ``refused`` (a precondition failed; nothing changed) or ``awaiting_cutover``
    (online, stopped at the operator gate). Batch runs end with the batch's status
    (``completed``, ``partial_failure``, ``failed``, ``in_progress``), ``stopped``
    (fail_fast after a failed index) or ``interrupted``.
    """

    result: RunResult
    error: str = ""
    step: StepName | Literal[""] = ""
    """The step that was running when the run failed (empty: none, or it succeeded)."""


class RunInterrupted(Event, frozen=True, kw_only=True, tag="interrupted"):
    """The run stopped at a batch boundary (Ctrl+C or a signal); resume continues from here.

    ``step`` is empty when no step was running.
    """

    step: StepName | Literal[""]
    batch: int | None = None


class ServerSeen(Event, frozen=True, kw_only=True, tag="server_seen"):
    """The server a run works against (``INFO server`` run_id), recorded when it changes."""

    run_id: str


class ServerChanged(Event, frozen=True, kw_only=True, tag="server_changed"):
    """The server is not the one earlier runs wrote to (restart, failover): it may have
    lost acknowledged writes, so every step that wrote to it is done again (each batch is
    idempotent, redone from the backup)."""

    previous: str
    current: str


class StepsReopened(Event, frozen=True, kw_only=True, tag="steps_reopened"):
    """Finished steps to do again, from their first batch (e.g. a rollback re-run with
    ``--force`` over the keys an earlier attempt kept); their conflicts are forgotten."""

    steps: list[StepName]
    reason: str


class Note(Event, frozen=True, kw_only=True, tag="note"):
    """Free-form information for the report (a warning, a server fact)."""

    message: str
    data: dict[str, Scalar] = msgspec.field(default_factory=dict)


# --- steps --------------------------------------------------------------------------------


class StepStarted(Event, frozen=True, kw_only=True, tag="step_started"):
    """A step began (or resumed)."""

    step: StepName


class StepFinished(Event, frozen=True, kw_only=True, tag="step_finished"):
    """A step completed; ``counts`` are its totals."""

    step: StepName
    counts: dict[str, int] = msgspec.field(default_factory=dict)


class StepSkipped(Event, frozen=True, kw_only=True, tag="step_skipped"):
    """A step was not needed by the plan (or by what the apply did, for a rollback)."""

    step: StepName
    reason: str


class BatchDone(Event, frozen=True, kw_only=True, tag="batch_done"):
    """One batch of a step is durably done (its segment, if any, is written and verified)."""

    step: StepName
    batch: int
    keys: int
    segment: SegmentRef | None = None
    counts: dict[str, int] = msgspec.field(default_factory=dict)


class KeysEnumerated(Event, frozen=True, kw_only=True, tag="keys_enumerated"):
    """A batch of the source index's keys was streamed into a segment (step ``enumerate``)."""

    segment: SegmentRef
    batch: int
    keys: int


class EnumerationRestarted(Event, frozen=True, kw_only=True, tag="enumeration_restarted"):
    """The keys enumerated so far are discarded; the enumeration starts over another way
    (``reason``), numbering its batches from 0 again."""

    reason: str


class CheckPassed(Event, frozen=True, kw_only=True, tag="check_passed"):
    """A validation or preflight check held."""

    check: str
    detail: str = ""


class CheckFailed(Event, frozen=True, kw_only=True, tag="check_failed"):
    """A validation or preflight check failed; ``count`` is how many items failed it."""

    check: str
    detail: str
    count: int = 0


class KeysGone(Event, frozen=True, kw_only=True, tag="keys_gone"):
    """Keys a batch found gone (deleted meanwhile, or lost by the server): nothing was
    written to them and nothing was recreated; they are reported, not treated as someone
    else's write."""

    step: StepName
    keys: list[bytes]


class VectorsRejected(Event, frozen=True, kw_only=True, tag="vectors_rejected"):
    """Vectors of a backed-up batch that cannot be converted, found before anything changed.

    ``kind``: ``wrong_length`` (not one vector of the schema's DIM and TYPE: the source index
    could not hold it either; left as it is) or ``unconvertible`` (a value the target
    datatype cannot hold: the run refuses before the drop unless told to leave such vectors
    untouched). ``keys`` is a bounded sample; ``count`` is how many there are in the batch.
    """

    step: StepName
    batch: int
    field: str
    kind: Literal["wrong_length", "unconvertible"]
    count: int
    keys: list[bytes]
    detail: str = ""


class ConflictRecorded(Event, frozen=True, kw_only=True, tag="conflict_recorded"):
    """Keys written concurrently during the migration that were deliberately not overwritten."""

    step: StepName
    keys: list[bytes]
    reason: str


# --- the user's own queries (``queries:`` of a query check file) --------------------------


class BaselineQuery(msgspec.Struct, frozen=True, kw_only=True):
    """One of the user's queries and what the source answered, before anything changed.

    ``ids`` are the top ``k`` in rank order with their ``scores`` (the text score, or the
    KNN distance); ``tied`` ranked below them with the k-th's score (a top k is defined up
    to ties: either may come back after the migration), at most a window of them
    (``tied_truncated``: more were tied). ``vector`` is the query vector as sent to the
    source (``datatype`` its encoding), from ``vector_from_key`` or the file's ``vector``.
    """

    name: str
    query: str
    target_query: str
    k: int
    min_overlap: float
    max_count_change: int | None = None
    vector_from_key: str = ""
    vector: bytes = b""
    datatype: str = ""
    given_vector: bool = False
    """The vector came from the file (``vector:``), not from a stored document."""
    params: dict[str, str] = msgspec.field(default_factory=dict)
    """The query's other ``PARAMS``, sent to the source and the target alike."""
    ids: list[bytes] = msgspec.field(default_factory=list)
    scores: list[float] = msgspec.field(default_factory=list)
    tied: list[bytes] = msgspec.field(default_factory=list)
    tied_truncated: bool = False
    total: int = 0


class QueryBaseline(Event, frozen=True, kw_only=True, tag="query_baseline"):
    """The user's queries run against the source index before the migration changed
    anything; every later comparison (a resumed run's too) is against this record."""

    index: str
    queries: list[BaselineQuery] = msgspec.field(default_factory=list)


class QueryCompared(Event, frozen=True, kw_only=True, tag="query_compared"):
    """One of the user's queries run against the migrated index (``index``), compared with
    its baseline: ``hits`` of the target's top ``k`` were in the source's top k (or tied
    with its k-th), of ``expected`` (the source's top-k size); ``overlap`` is their ratio.
    ``baseline`` False: no baseline existed (``migrate validate`` without a journal), the
    query only ran (``overlap`` and ``count_before`` are None). ``error``: the query failed.
    """

    name: str
    index: str
    k: int
    passed: bool
    overlap: float | None = None
    hits: int = 0
    expected: int = 0
    count_before: int | None = None
    count_after: int | None = None
    min_overlap: float = 0.0
    max_count_change: int | None = None
    missing: list[bytes] = msgspec.field(default_factory=list)
    """A sample of the source's top-k ids the target's top k lacks (final key names)."""
    added: list[bytes] = msgspec.field(default_factory=list)
    """A sample of the target's top-k ids the source neither ranked nor tied there."""
    baseline: bool = True
    error: str = ""


# --- online mode: the shadow index's life and the cut-over instant ------------------------


class ShadowCreated(Event, frozen=True, kw_only=True, tag="shadow_created"):
    """``FT.CREATE`` of a shadow index succeeded (or found it already there with its schema)."""

    step: StepName
    index: str
    """The shadow's real name."""
    serving: str
    """The name queries use, still answered by the source meanwhile."""


class ShadowReady(Event, frozen=True, kw_only=True, tag="shadow_ready"):
    """The shadow finished its background scan (``indexing`` 0, ``percent_indexed`` 1)."""

    step: StepName
    index: str
    num_docs: int = 0
    hash_indexing_failures: int = 0


class CutoverApproved(Event, frozen=True, kw_only=True, tag="cutover_approved"):
    """An operator ran ``ftctl migrate cutover``: a postponed cut-over may now happen."""

    step: StepName = "await_cutover"


class CutoverDone(Event, frozen=True, kw_only=True, tag="cutover_done"):
    """The MULTI/EXEC that swapped indexes ran; its ``at`` is the cut-over instant.

    ``dropped`` was dropped (never with DD), ``index`` now answers every name in ``names``.
    ``recovered`` is True when a resumed run found the swap already done (a crash between
    EXEC and this event): then ``at`` is when that was found, not the EXEC itself.
    """

    step: StepName
    dropped: str
    index: str
    names: list[str] = msgspec.field(default_factory=list)
    recovered: bool = False


# --- pacing of online runs (``ftctl migrate pause``, the latency probe) --------------------


class RunPaused(Event, frozen=True, kw_only=True, tag="run_paused"):
    """An operator asked the run to pause (a flag file in the journal directory): it holds
    its writes between two batches, holding nothing on the server, until the flag is gone."""

    step: StepName | Literal[""] = ""


class RunResumed(Event, frozen=True, kw_only=True, tag="run_resumed"):
    """The pause flag was removed: the paused run goes on (its pause lasted from the
    matching ``run_paused`` to this event)."""

    step: StepName | Literal[""] = ""


PaceChange: TypeAlias = Literal["slowed", "recovered"]


class PaceChanged(Event, frozen=True, kw_only=True, tag="pace_changed"):
    """The run slowed its writes (the first slowdown from full pace, or a new low of it) or
    went back to full pace, and what it measured then.

    ``batch``: documents between two probes (and at most per transaction); ``sleep_ms``:
    the pause between batches; ``latency_ms``: the slower of the probe and the longest
    write transaction since the last probe (None: no probe answered); ``cpu``: the server
    main thread's CPU share (None: not measured yet).
    """

    step: StepName | Literal[""] = ""
    change: PaceChange
    batch: int
    sleep_ms: float = 0.0
    latency_ms: float | None = None
    cpu: float | None = None


# --- batch journals (``<backup-dir>/batch-<id>/``) ----------------------------------------


class BatchIndexEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One index of a batch as planned: applicable with a reviewed plan, or skipped and why."""

    name: str
    applicable: bool
    skip_reason: str | None = None
    plan_path: str = ""
    """Absolute path of the reviewed per-index plan (applicable indexes only)."""
    plan_sha256: str = ""


class BatchRunStarted(Event, frozen=True, kw_only=True, tag="batch_run_started"):
    """First event of a batch journal, and of every later run on it (``batch-resume``)."""

    run_id: str
    batch_id: str
    plan_yaml: str
    """The batch plan as reviewed."""
    plan_sha256: str
    mode: Mode
    options: dict[str, Scalar] = msgspec.field(default_factory=dict)
    redis_url: str = ""
    """Already masked: never holds a password."""
    ftctl_version: str = ""


class BatchStarted(Event, frozen=True, kw_only=True, tag="batch_started"):
    """The batch as planned (recorded once, right after the first run's start)."""

    batch_id: str
    plan_path: str
    """Absolute path of ``batch_plan.yaml`` (the plan itself is embedded in the run start)."""
    backup_dir: str
    failure_policy: Literal["fail_fast", "continue_on_error"]
    indexes: list[BatchIndexEntry] = msgspec.field(default_factory=list)


class BatchIndexStarted(Event, frozen=True, kw_only=True, tag="batch_index_started"):
    """The migration of one index began (or resumed, or was retried)."""

    name: str
    position: int
    """1-based position among the applicable indexes."""
    total: int
    journal: str
    """The index's own journal directory (``<backup-dir>/<index>``)."""
    plan_sha256: str
    retry: bool = False
    """A ``--retry-failed`` run of an index that had failed."""


class BatchIndexFinished(Event, frozen=True, kw_only=True, tag="batch_index_finished"):
    """One index's migration ended."""

    name: str
    status: BatchIndexStatus
    result: RunResult | Literal[""] = ""
    """The index report's result (``succeeded``, ``failed``, ``refused``, …)."""
    error: str = ""
    report_path: str = ""
    journal: str = ""


class BatchIndexInterrupted(Event, frozen=True, kw_only=True, tag="batch_index_interrupted"):
    """One index's migration stopped at a batch boundary (Ctrl+C); resume continues it."""

    name: str
    error: str = ""


AnyEvent: TypeAlias = (
    RunStarted
    | RunFinished
    | RunInterrupted
    | ServerSeen
    | ServerChanged
    | StepsReopened
    | Note
    | StepStarted
    | StepFinished
    | StepSkipped
    | BatchDone
    | KeysEnumerated
    | EnumerationRestarted
    | CheckPassed
    | CheckFailed
    | ConflictRecorded
    | QueryBaseline
    | QueryCompared
    | KeysGone
    | VectorsRejected
    | ShadowCreated
    | ShadowReady
    | CutoverApproved
    | CutoverDone
    | RunPaused
    | RunResumed
    | PaceChanged
    | BatchRunStarted
    | BatchStarted
    | BatchIndexStarted
    | BatchIndexFinished
    | BatchIndexInterrupted
)

AnyRunStart: TypeAlias = RunStarted | BatchRunStarted
"""What a journal's first event is."""

EVENT_TYPES: tuple[type[Event], ...] = get_args(AnyEvent)
"""Every concrete event class, in union order."""

_encoder = msgspec.msgpack.Encoder()
_decoder: msgspec.msgpack.Decoder[AnyEvent] = msgspec.msgpack.Decoder(AnyEvent)


def encode_event(event: Event) -> bytes:
    """The msgpack bytes of one concrete event (its tag included)."""
    if type(event) not in EVENT_TYPES:
        raise TypeError(f"{type(event).__name__} is not a journal event in AnyEvent")
    return _encoder.encode(event)


def decode_event(data: bytes | memoryview) -> AnyEvent:
    """Decode one event; raises ``msgspec.DecodeError`` / ``ValidationError`` on bad input."""
    return _decoder.decode(data)


def event_tag(event: Event) -> str:
    """The stable tag an event is stored under (``step_started``)."""
    return str(type(event).__struct_config__.tag)


def step_of(event: AnyEvent) -> StepName | None:
    """The step an event belongs to, when it names one (``keys_enumerated``: enumerate)."""
    match event:
        case (
            StepStarted(step=step)
            | StepFinished(step=step)
            | StepSkipped(step=step)
            | BatchDone(step=step)
            | ConflictRecorded(step=step)
            | KeysGone(step=step)
            | VectorsRejected(step=step)
            | ShadowCreated(step=step)
            | ShadowReady(step=step)
            | CutoverApproved(step=step)
            | CutoverDone(step=step)
        ):
            return step
        case (
            RunInterrupted(step=step)
            | RunPaused(step=step)
            | RunResumed(step=step)
            | PaceChanged(step=step)
        ):
            return step or None
        case KeysEnumerated() | EnumerationRestarted():
            return "enumerate"
        case (
            RunStarted()
            | RunFinished()
            | ServerSeen()
            | ServerChanged()
            | StepsReopened()
            | Note()
            | CheckPassed()
            | CheckFailed()
            | QueryBaseline()
            | QueryCompared()
            | BatchRunStarted()
            | BatchStarted()
            | BatchIndexStarted()
            | BatchIndexFinished()
            | BatchIndexInterrupted()
        ):
            return None
        case _:
            assert_never(event)


def segment_refs(event: Event) -> list[SegmentRef]:
    """Every segment an event references (found by type, so new events need no change here)."""
    refs: list[SegmentRef] = []
    for name in event.__struct_fields__:
        value: Any = getattr(event, name)
        if isinstance(value, SegmentRef):
            refs.append(value)
        elif isinstance(value, list | tuple):
            refs.extend(item for item in value if isinstance(item, SegmentRef))
    return refs
