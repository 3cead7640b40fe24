"""What a run does, as pure data the steps read: derived once from a plan by the executor.

Steps never look at the plan itself; they read a :class:`RunSpec`, whose names are at the
document level (hash field names or JSON paths), not at the index-attribute level.
"""

from __future__ import annotations

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

    def restore(self, key: bytes) -> bytes:
        new = self.new.encode()
        return self.old.encode() + key[len(new) :] if key.startswith(new) else key


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
    timeout: float = 3600.0
    """Seconds to wait for the target index to finish indexing."""
    validation_sample: int = 50

    @property
    def needs_keys(self) -> bool:
        """Whether any step touches documents (and so needs the enumerated key list)."""
        return bool(self.prefix_change or self.field_renames or self.conversions)

    def final_key(self, key: bytes) -> bytes:
        return self.prefix_change.rename(key) if self.prefix_change else key
