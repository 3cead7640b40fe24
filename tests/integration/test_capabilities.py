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


def test_a_missing_datatype_names_the_search_module_not_redis(r: redis.Redis) -> None:
    """On Redis 8.2 with Search 2.10 an int8 plan is blocked naming what is missing: the
    Search module's release (this server's, and the one that brought INT8), never "upgrade
    to Redis 8.0+", which this server already is."""
    from ftctl import MigrationPlanner
    from ftctl.plan import patch_from_builtins

    r.execute_command(
        "FT.CREATE", "v", "PREFIX", "1", "v:", "SCHEMA",
        "e", "VECTOR", "FLAT", "6", "TYPE", "FLOAT32", "DIM", "4", "DISTANCE_METRIC", "L2",
    )  # fmt: skip
    redis_major = int(r.info("server")["redis_version"].split(".")[0])
    patch = patch_from_builtins(
        {"changes": {"update_fields": [{"name": "e", "attrs": {"datatype": "int8"}}]}}
    )
    plan = MigrationPlanner().create_plan("v", redis_client=r, schema_patch=patch)
    caps = plan.capabilities
    assert caps is not None and caps.search_version < 80000 and redis_major >= 8
    # The server's own refusal of the target schema follows as the second reason.
    assert plan.diff_classification.blocked_reasons[0] == (
        f"field 'e': this server's Search module ({caps.search_release}) does not support "
        "vector datatype INT8 (capability probe); workaround: INT8 needs the Search module "
        "8.0+ (bundled with Redis 8.0+): upgrade the Search module or choose another datatype"
    )
