"""Mode selection is pure: what may run online, with which strategy, and why not."""

from __future__ import annotations

from ftctl.plan.online import OnlineOptions, Rewrites, ServerMemory, choose_mode
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
    rewrites: Rewrites | None = None,
    memory: ServerMemory | None = None,
    requested: str = "auto",
    postpone: bool | None = None,
):  # type: ignore[no-untyped-def]
    return choose_mode(
        requested,  # type: ignore[arg-type]
        source=_schema(),
        target=target,
        serving_name="docs",
        rewrites=rewrites or Rewrites(),
        total_index_mb=10.0,
        vector_index_mb=8.0,
        server=memory or ServerMemory(),
        options=OnlineOptions(token="t", postpone_cutover=postpone),
        num_docs=1000,
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
    """--mode online with a change even expand cannot run online is a blocked reason, not a
    fallback to drop_recreate."""
    rewrites = Rewrites(field_renames=["a → b"], blockers=["renaming 'a' moves a nested path"])
    decision = _choose(_schema(algorithm="hnsw"), rewrites=rewrites, requested="online")
    assert decision.mode == "online" and decision.refusal is not None
    assert "nested path" in decision.refusal


def test_document_rewrites_run_online_with_expand() -> None:
    """A hash quantization in place is planned with the expand strategy: a temporary field
    per converted vector, a second index for the final layout, two builds, and a cut-over
    that waits for the operator (the query format changes); renames alone cut over at once."""
    rewrites = Rewrites(converted_in_place=["emb"], converted=["emb"])
    decision = _choose(_schema(), rewrites=rewrites)
    online = decision.online
    assert decision.mode == "online" and online is not None and online.strategy == "expand"
    assert online.temp_fields == {"emb": "emb__ftctl_t"}
    assert online.final_name == "docs__ftctl_tf" and online.index_builds == 2
    assert online.postpone_cutover
    assert "rewrites documents" in decision.reason
    renames = _choose(_schema(), rewrites=Rewrites(field_renames=["title → headline"]))
    assert renames.online is not None and renames.online.strategy == "expand"
    assert not renames.online.postpone_cutover and not renames.online.temp_fields
    assert renames.online.index_builds == 1 and not renames.online.final_name
    immediate = _choose(_schema(), rewrites=rewrites, postpone=False)
    assert immediate.online is not None and not immediate.online.postpone_cutover


def test_expand_memory_counts_the_copied_vectors() -> None:
    """The expand estimate adds the converted vectors written beside the old ones (1,000
    documents x 4 dims x 4 bytes here, with the margin) to the two index builds."""
    rewrites = Rewrites(converted_in_place=["emb"], converted=["emb"])
    decision = _choose(_schema(), rewrites=rewrites)
    assert decision.online is not None
    assert "documents written beside the old layout" in decision.online.memory.basis
    tight = ServerMemory(used_memory=100 * MB, maxmemory=101 * MB)
    fallback = _choose(_schema(), rewrites=rewrites, memory=tight)
    assert fallback.mode == "drop_recreate" and "exceeds" in fallback.reason


def test_a_json_datatype_change_waits_at_the_gate_too() -> None:
    """A JSON vector datatype change rewrites no document (a shadow index reads the same
    arrays) but changes the query blob format all the same: its cut-over waits for the
    operator unless asked otherwise; an algorithm change does not wait."""
    json_f16 = from_builtins(
        {
            "index": {"name": "docs", "prefix": "doc:", "storage_type": "json"},
            "fields": [
                {"name": "title", "type": "text"},
                {
                    "name": "emb",
                    "type": "vector",
                    "attrs": {
                        "algorithm": "flat",
                        "dims": 4,
                        "datatype": "float16",
                        "distance_metric": "cosine",
                    },
                },
            ],
        }
    )
    decision = _choose(json_f16)
    assert decision.online is not None and decision.online.strategy == "shadow"
    assert decision.online.postpone_cutover
    assert not _choose(json_f16, postpone=False).online.postpone_cutover  # type: ignore[union-attr]
    hnsw = _choose(_schema(algorithm="hnsw"))
    assert hnsw.online is not None and not hnsw.online.postpone_cutover
