"""What a run does, as pure data the steps read: derived once from a plan by the executor.

Steps never look at the plan itself; they read a :class:`RunSpec`, whose names are at the
document level (hash field names or JSON paths), not at the index-attribute level.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from ftctl.plan.quantization import QuantizationParams
from ftctl.schema.model import IndexSchema


class DocFieldRename(msgspec.Struct, frozen=True, kw_only=True):
    """A document field to rename: hash field names, or JSON paths (``$.a`` → ``$.b``)."""

    old: str
    new: str


class PrefixChange(msgspec.Struct, frozen=True, kw_only=True):
    """Keys starting with ``old`` are renamed to start with ``new`` instead."""

    old: str
    new: str

    def rename(self, key: bytes) -> bytes:
        old = self.old.encode()
        return self.new.encode() + key[len(old) :] if key.startswith(old) else key


class Conversion(msgspec.Struct, frozen=True, kw_only=True):
    """A hash vector field whose bytes are re-encoded from ``source`` to ``target`` datatype.

    ``backup_field`` is the document field before any field rename (what the backup reads),
    ``field`` the one after (what quantize writes).
    """

    backup_field: str
    field: str
    source: str
    target: str
    dims: int
    params: QuantizationParams | None = None


class RunSpec(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the drop_recreate steps need, nothing they don't."""

    source_index: str
    target_index: str
    storage_type: str
    source_schema: IndexSchema
    target_schema: IndexSchema
    prefix_change: PrefixChange | None = None
    field_renames: list[DocFieldRename] = msgspec.field(default_factory=list)
    conversions: list[Conversion] = msgspec.field(default_factory=list)
    batch_size: int = 500
    """Keys per server call (one script call or pipeline chunk)."""
    segment_batches: int = 4
    """Pipeline batches per segment: a segment is the unit of the journal (one file, one
    event, one fsync group) and of resume; its keys go to Redis ``batch_size`` at a time."""
    timeout: float = 3600.0
    """Seconds to wait for the target index to finish indexing."""
    validation_sample: int = 50

    @property
    def segment_size(self) -> int:
        return self.batch_size * self.segment_batches

    def chunks(self, keys: Sequence[bytes]) -> list[Sequence[bytes]]:
        """``keys`` in server-call sized chunks (``batch_size`` each)."""
        return [keys[i : i + self.batch_size] for i in range(0, len(keys), self.batch_size)]

    @property
    def needs_keys(self) -> bool:
        """Whether any step touches documents (and so needs the enumerated key list)."""
        return bool(self.prefix_change or self.field_renames or self.conversions)

    def final_key(self, key: bytes) -> bytes:
        return self.prefix_change.rename(key) if self.prefix_change else key
