"""Disk and memory estimates for a plan (pure): what ``ftctl migrate estimate`` prints.

Vector payload bytes are ``num_docs * dims * element size``; the backup holds the original
bytes of every re-encoded hash vector, an RDB snapshot taken during the migration rewrites
the dataset's vector bytes, and with AOF on every rewritten document appends an HSET.
"""

from __future__ import annotations

import msgspec

from ftctl.plan.models import MigrationPlan
from ftctl.plan.quantization import element_size

_AOF_OVERHEAD_PER_DOC = 64
"""RESP framing of one ``HSET key field value`` in the AOF, besides key and value."""


class FieldEstimate(msgspec.Struct, frozen=True, kw_only=True):
    field: str
    dims: int
    source_datatype: str
    target_datatype: str
    bytes_before: int
    bytes_after: int
    backup_bytes: int
    recall_at_k: float | None = None
    k: int = 10
    sample_size: int = 0


class Estimate(msgspec.Struct, frozen=True, kw_only=True):
    index: str
    num_docs: int
    fields: list[FieldEstimate]
    backup_bytes: int
    rdb_bytes: int
    aof_bytes: int | None
    """None when AOF growth was not estimated (not enabled)."""

    @property
    def total_disk_bytes(self) -> int:
        return self.backup_bytes + self.rdb_bytes + (self.aof_bytes or 0)

    @property
    def memory_before(self) -> int:
        return sum(f.bytes_before for f in self.fields)

    @property
    def memory_after(self) -> int:
        return sum(f.bytes_after for f in self.fields)


def estimate(plan: MigrationPlan, *, aof_enabled: bool = False) -> Estimate:
    """Backup disk, RDB/AOF growth, and vector memory before/after per vector field."""
    docs = plan.source.stats_snapshot.num_docs
    changes = {c.field: c for c in plan.vector_changes}
    fields: list[FieldEstimate] = []
    backup = 0
    aof = 0
    key_len = max((len(k) for k in plan.source.keyspace.key_sample), default=16)
    for f in plan.merged_target_schema.vector_fields():
        change = changes.get(f.name)
        src = change.source_datatype if change else f.attrs.datatype
        before = docs * f.attrs.dims * element_size(src)
        after = docs * f.attrs.dims * element_size(f.attrs.datatype)
        field_backup = before if change is not None and change.reencode_documents else 0
        backup += field_backup
        if change is not None and change.reencode_documents:
            aof += docs * (after + key_len + len(f.name) + _AOF_OVERHEAD_PER_DOC)
        quality = change.quality[0] if change is not None and change.quality else None
        fields.append(
            FieldEstimate(
                field=f.name,
                dims=f.attrs.dims,
                source_datatype=src,
                target_datatype=f.attrs.datatype,
                bytes_before=before,
                bytes_after=after,
                backup_bytes=field_backup,
                recall_at_k=quality.recall_at_k if quality else None,
                k=quality.k if quality else 10,
                sample_size=quality.sample_size if quality else 0,
            )
        )
    rdb = sum(fe.bytes_before for fe in fields if changes.get(fe.field) is not None)
    return Estimate(
        index=plan.source.index_name,
        num_docs=docs,
        fields=fields,
        backup_bytes=backup,
        rdb_bytes=rdb,
        aof_bytes=aof if aof_enabled else None,
    )


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    return f"{n:.2f} TB"


def render_estimate(e: Estimate) -> list[str]:
    """The estimate as the lines the CLI prints (the guide's layout)."""
    lines = ["Pre-migration disk space estimate:", f"  Index: {e.index} ({e.num_docs:,} documents)"]
    for f in e.fields:
        arrow = (
            f"{f.source_datatype} -> {f.target_datatype}"
            if f.source_datatype != f.target_datatype
            else f"{f.source_datatype} (unchanged)"
        )
        lines.append(f"  Vector field '{f.field}': {f.dims} dims, {arrow}")
        lines.append(f"    memory: ~{human_bytes(f.bytes_before)} -> ~{human_bytes(f.bytes_after)}")
        if f.recall_at_k is not None:
            lines.append(
                f"    measured recall@{f.k}: {f.recall_at_k:.3f} on {f.sample_size} sampled vectors"
            )
    lines.append(f"  Backup (--backup-dir): ~{human_bytes(e.backup_bytes)}")
    lines.append(f"  RDB snapshot (BGSAVE): ~{human_bytes(e.rdb_bytes)}")
    if e.aof_bytes is None:
        lines.append("  AOF growth: not estimated (pass --aof-enabled if AOF is on)")
    else:
        lines.append(f"  AOF growth: ~{human_bytes(e.aof_bytes)}")
    lines.append(f"  Total new disk required: ~{human_bytes(e.total_disk_bytes)}")
    saved = e.memory_before - e.memory_after
    if e.memory_before and saved:
        word = "savings" if saved > 0 else "growth"
        lines.append(
            f"  Post-migration memory {word}: ~{human_bytes(abs(saved))} "
            f"({abs(saved) / e.memory_before:.0%} {'reduction' if saved > 0 else 'increase'})"
        )
    return lines


__all__ = ["Estimate", "FieldEstimate", "estimate", "human_bytes", "render_estimate"]
