"""Hand-built live snapshots for pure planning tests (no server); import as ``planfixtures``."""

from __future__ import annotations

import numpy as np

from ftctl.plan.live import LiveSnapshot, VectorSample
from ftctl.schema.capabilities import Capabilities
from ftctl.schema.ftinfo import IndexInfo, IndexStats
from ftctl.schema.model import IndexSchema, from_builtins

FULL_CAPS = Capabilities(
    search_version=21005,
    json=True,
    vector_types=("FLOAT32", "FLOAT64", "FLOAT16", "BFLOAT16", "INT8", "UINT8"),
    algorithms=("FLAT", "HNSW", "SVS-VAMANA"),
    field_types=("TEXT", "TAG", "NUMERIC", "GEO", "GEOSHAPE"),
    field_options=("INDEXMISSING", "INDEXEMPTY", "WITHSUFFIXTRIE"),
)

SOURCE = {
    "index": {"name": "products", "prefix": "doc:", "storage_type": "hash"},
    "fields": [
        {"name": "title", "type": "text"},
        {"name": "category", "type": "tag"},
        {"name": "price", "type": "numeric"},
        {
            "name": "embedding",
            "type": "vector",
            "attrs": {"dims": 4, "algorithm": "hnsw", "datatype": "float32", "m": 16},
        },
    ],
}


def source_schema(**index: object) -> IndexSchema:
    raw = {**SOURCE, "index": {**SOURCE["index"], **index}}
    return from_builtins(raw)


def vectors(scale: float = 1.0, count: int = 60, dims: int = 4) -> np.ndarray:
    return np.random.default_rng(7).normal(size=(count, dims)) * scale


def make_snapshot(
    schema: IndexSchema | None = None, *, scale: float = 1.0, **overrides: object
) -> LiveSnapshot:
    schema = schema or source_schema()
    info = IndexInfo(
        index_name=schema.name,
        schema=schema,
        stats=IndexStats(num_docs=1000, total_indexing_time=250.0),
    )
    samples = {
        v.name: VectorSample.of(v.name, v.attrs.datatype, v.attrs.dims, vectors(scale))
        for v in schema.vector_fields()
    }
    base: dict[str, object] = {
        "requested_name": schema.name,
        "source": info,
        "index_names": [schema.name],
        "key_sample": ["doc:1", "doc:2"],
        "vector_samples": samples,
        "target_validated": True,
    }
    base.update(overrides)
    return LiveSnapshot(**base)  # type: ignore[arg-type]
