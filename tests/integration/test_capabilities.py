"""The capability probe tells what the real server accepts, and leaves nothing behind."""

from __future__ import annotations

import redis

from ftctl.drivers import SyncDriver
from ftctl.steps.probe import probe_capabilities


def test_embedded_server_capabilities(r: redis.Redis) -> None:
    """RediSearch 2.10 has FLOAT16/BFLOAT16 and GEOSHAPE, no INT8/UINT8 and no SVS-VAMANA."""
    caps = SyncDriver(r).run(probe_capabilities())
    assert caps.search_version >= 20000
    assert caps.json
    assert {"FLOAT32", "FLOAT64", "FLOAT16", "BFLOAT16"} <= set(caps.vector_types)
    assert not caps.has_vector_type("INT8") and not caps.has_vector_type("UINT8")
    assert caps.algorithms == ("FLAT", "HNSW")
    assert caps.has_field_type("GEOSHAPE")
    assert r.execute_command("FT._LIST") == []
    assert r.dbsize() == 0
