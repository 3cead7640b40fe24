"""Disk and memory estimates of a plan (pure)."""

from __future__ import annotations

from planfixtures import FULL_CAPS, make_snapshot

from ftctl.plan import patch_from_builtins
from ftctl.plan.build import build_plan
from ftctl.plan.estimate import estimate, render_estimate


def test_float16_estimate_halves_memory_and_sizes_backup() -> None:
    """float32 → float16 on 1000 docs x 4 dims: 16000 B before, 8000 after, backup 16000."""
    patch = patch_from_builtins(
        {"changes": {"update_fields": [{"name": "embedding", "attrs": {"datatype": "float16"}}]}}
    )
    plan = build_plan(make_snapshot(), patch, FULL_CAPS)
    e = estimate(plan)
    (f,) = e.fields
    assert (f.bytes_before, f.bytes_after, e.backup_bytes) == (16000, 8000, 16000)
    assert e.aof_bytes is None and estimate(plan, aof_enabled=True).aof_bytes
    assert f.recall_at_k is not None
    text = "\n".join(render_estimate(e))
    assert "50% reduction" in text and "measured recall@10" in text
