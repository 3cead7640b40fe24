"""Mode selection is pure: what may run online, with which strategy, and why not."""

from __future__ import annotations

from ftctl.plan.online import OnlineOptions, ServerMemory, choose_mode, online_blockers
from ftctl.schema.model import IndexSchema, from_builtins

MB = 1024 * 1024


def _schema(name: str = "docs", algorithm: str = "flat", extra: bool = False) -> IndexSchema:
    fields: list[dict[str, object]] = [
        {"name": "title", "type": "text"},
        {
            "name": "emb",
            "type": "vector",
            "attrs": {
                "algorithm": algorithm,
                "dims": 4,
                "datatype": "float32",
                "distance_metric": "cosine",
            },
        },
    ]
    if extra:
        fields.append({"name": "color", "type": "tag"})
    return from_builtins({"index": {"name": name, "prefix": "doc:"}, "fields": fields})


def _choose(
    target: IndexSchema,
    *,
    blockers: list[str] | None = None,
    memory: ServerMemory | None = None,
    requested: str = "auto",
):  # type: ignore[no-untyped-def]
    return choose_mode(
        requested,  # type: ignore[arg-type]
        source=_schema(),
        target=target,
        serving_name="docs",
        blockers=blockers or [],
        total_index_mb=10.0,
        vector_index_mb=8.0,
        server=memory or ServerMemory(),
        options=OnlineOptions(token="t"),
    )


def test_added_fields_only_use_ft_alter() -> None:
    """Appending a non-vector field is planned online with the alter strategy (no shadow)."""
    decision = _choose(_schema(extra=True))
    assert decision.mode == "online" and decision.online is not None
    assert decision.online.strategy == "alter" and decision.online.added_fields == ["color"]


def test_algorithm_change_uses_a_shadow_with_a_temporary_name() -> None:
    """An index-only change builds a shadow named after the serving name and the plan token."""
    decision = _choose(_schema(algorithm="hnsw"))
    assert decision.online is not None and decision.online.strategy == "shadow"
    assert decision.online.shadow_name == "docs__ftctl_t"
    assert decision.online.memory.shadow_mb > 0


def test_rename_builds_the_target_name() -> None:
    """An index rename makes the target name the real index."""
    decision = _choose(_schema(name="docs2"))
    assert decision.online is not None and decision.online.shadow_name == "docs2"


def test_auto_falls_back_when_memory_does_not_fit() -> None:
    """auto: used_memory + shadow estimate over maxmemory gives drop_recreate with the reason."""
    tight = ServerMemory(used_memory=100 * MB, maxmemory=105 * MB)
    decision = _choose(_schema(algorithm="hnsw"), memory=tight)
    assert decision.mode == "drop_recreate" and "exceeds" in decision.reason


def test_explicit_online_is_refused_instead_of_falling_back() -> None:
    """--mode online with a document-rewriting change is a blocked reason, not a fallback."""
    blockers = online_blockers(
        _schema(), _schema(), field_renames=1, prefix_change=False, reencoded=["emb"]
    )
    assert len(blockers) == 2
    decision = _choose(_schema(algorithm="hnsw"), blockers=blockers, requested="online")
    assert decision.mode == "online" and decision.refusal is not None
    assert "field renames" in decision.refusal and "hash quantization" in decision.refusal
