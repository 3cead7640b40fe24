"""What the planner learned from the server: pure data gathered by ``ftctl.steps.snapshot``.

Planning is a pure function of (:class:`LiveSnapshot`, request, capabilities); tests build
snapshots by hand. Gathering happens in two rounds: :class:`SnapshotRequest` says what the
second round must look up once the target schema is known.
"""

from __future__ import annotations

import msgspec
import numpy as np
import numpy.typing as npt

from ftctl.plan.online import ServerMemory
from ftctl.schema.ftinfo import IndexInfo
from ftctl.schema.model import IndexSchema


class VectorSample(msgspec.Struct, frozen=True, kw_only=True):
    """Stored vectors of one source field, decoded to float64 (``count`` rows of ``dims``)."""

    field: str
    datatype: str
    dims: int
    count: int
    values: bytes = b""
    """float64 little-endian, row-major."""

    def array(self) -> npt.NDArray[np.float64]:
        return np.frombuffer(self.values, dtype="<f8").reshape(self.count, self.dims)

    @classmethod
    def of(cls, field: str, datatype: str, dims: int, rows: npt.ArrayLike) -> VectorSample:
        data = np.asarray(rows, dtype="<f8").reshape(-1, dims)
        return cls(
            field=field, datatype=datatype, dims=dims, count=data.shape[0], values=data.tobytes()
        )


class SnapshotRequest(msgspec.Struct, frozen=True, kw_only=True):
    """The second round of reads, derived from the target schema (pure)."""

    names: list[str] = msgspec.field(default_factory=list)
    """Index names that must be free (rename destination): FT.INFO resolves aliases too."""
    prefixes: list[str] = msgspec.field(default_factory=list)
    """Prefixes whose existing keys must be counted (prefix-change destination)."""
    field_paths: dict[str, str] = msgspec.field(default_factory=dict)
    """Rename destination field → its hash field / JSON path, to sample for existing values."""
    vector_fields: dict[str, str] = msgspec.field(default_factory=dict)
    """Source vector field name → its hash field / JSON path, to sample stored vectors."""
    unreported: list[str] = msgspec.field(default_factory=list)
    """Option paths FT.INFO does not report whose live value can be read another way
    (``fields.<name>.attrs.ef_runtime|epsilon|phonetic_matcher``)."""
    presence: dict[str, str] = msgspec.field(default_factory=dict)
    """Field name → hash field / JSON path, for both sides of each suspected rename: how
    many sampled documents hold it decides whether it is a rename."""


class LiveSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    """The live state planning depends on, as gathered from the server."""

    requested_name: str
    """The name the user gave (an alias resolves to ``source.index_name``)."""
    source: IndexInfo
    index_names: list[str] = msgspec.field(default_factory=list)
    """FT._LIST at planning time."""
    other_indexes: list[IndexSchema] = msgspec.field(default_factory=list)
    """Schemas of every other live index (for the shared-keys check)."""
    key_sample: list[str] = msgspec.field(default_factory=list)
    history: IndexSchema | None = None
    """The schema ftctl recorded for this index (``ftctl:schema:<index>``), if any."""
    history_aliases: list[str] = msgspec.field(default_factory=list)
    """The public names ftctl's schema history records for this index (their current
    targets are in ``alias_targets``)."""
    taken_names: list[str] = msgspec.field(default_factory=list)
    """Requested names that already exist as an index or an alias."""
    prefix_key_counts: dict[str, int] = msgspec.field(default_factory=dict)
    field_collisions: dict[str, list[str]] = msgspec.field(default_factory=dict)
    """Rename destination field → sampled keys that already hold it."""
    collision_sample_size: int = 0
    unreported_values: dict[str, float | bool] = msgspec.field(default_factory=dict)
    """Live values of ``SnapshotRequest.unreported`` options that could be read
    (``FT.DEBUG VECSIM_INFO``, ``FT.EXPLAIN``); phonetic matching as on/off."""
    field_presence: dict[str, int] = msgspec.field(default_factory=dict)
    """Field name → sampled documents holding it (``SnapshotRequest.presence``)."""
    presence_sample_size: int = 0
    vector_samples: dict[str, VectorSample] = msgspec.field(default_factory=dict)
    target_rejection: str | None = None
    """The server's error for the throwaway FT.CREATE of the target; None when accepted."""
    target_validated: bool = False
    redis_url: str = ""
    """Masked."""
    memory: ServerMemory = msgspec.field(default_factory=ServerMemory)
    """Read only when online mode is considered (``--mode auto|online``)."""
    alias_targets: dict[str, str] = msgspec.field(default_factory=dict)
    """Aliases the user named and those in ``history_aliases`` → the index each resolves to
    ("" when it does not exist)."""


__all__ = ["LiveSnapshot", "SnapshotRequest", "VectorSample"]
