"""The capability probe reads only what FT.CREATE accepted, from scripted replies."""

from __future__ import annotations

from ftctl.steps.effects import ReplyError
from ftctl.steps.probe import probe_candidates, probe_capabilities
from ftctl.testing import ScriptedRedis


def _script(modules: object, accept: set[str]) -> ScriptedRedis:
    script: list[tuple[str, object]] = [("MODULE LIST", modules)]
    for feature in probe_candidates():
        ok = feature in accept
        script.append(
            ("FT.CREATE __ftctl_probe_t_* ON HASH PREFIX 1 *", b"OK" if ok else ReplyError("bad"))
        )
        script.append(
            ("FT.DROPINDEX __ftctl_probe_t_*", b"OK" if ok else ReplyError("Unknown index name"))
        )
    return ScriptedRedis(script)


def test_server_with_int8_and_svs_reports_them() -> None:
    """A Redis 8.2 server that accepts INT8, UINT8 and SVS-VAMANA is reported as having them."""
    accept = set(probe_candidates())
    scripted = _script(
        [{b"name": b"search", b"ver": 80200}, {b"name": b"ReJSON", b"ver": 80200}], accept
    )
    caps = scripted.run(probe_capabilities(token="t"))
    scripted.assert_done()
    assert caps.search_version == 80200 and caps.json
    assert caps.has_vector_type("int8") and caps.has_vector_type("UINT8")
    assert caps.has_algorithm("svs-vamana") and caps.has_algorithm("SVS_VAMANA")


def test_rejected_features_are_absent_resp2_module_list() -> None:
    """Features whose FT.CREATE failed are absent; a RESP2 MODULE LIST is read the same."""
    accept = {f for f in probe_candidates() if "INT8" not in f and "SVS" not in f}
    scripted = _script([[b"name", b"search", b"ver", 21005, b"path", b"x", b"args", []]], accept)
    caps = scripted.run(probe_capabilities(token="t"))
    assert caps.search_version == 21005 and not caps.json
    assert not caps.has_vector_type("INT8") and not caps.has_vector_type("UINT8")
    assert caps.has_vector_type("FLOAT16")
    assert not caps.has_algorithm("SVS-VAMANA")


def test_server_without_search_is_not_probed() -> None:
    """Without the search module nothing is created; the result says version 0."""
    scripted = ScriptedRedis([("MODULE LIST", [])])
    caps = scripted.run(probe_capabilities(token="t"))
    scripted.assert_done()
    assert caps.search_version == 0 and caps.vector_types == ()


def test_out_of_memory_server_is_refused_not_reported_as_missing_features() -> None:
    """When FT.CREATE fails because used_memory > maxmemory, the probe says so instead of
    claiming that TEXT or HNSW are unsupported."""
    import pytest

    from ftctl.errors import RefusedError

    script: list[tuple[str, object]] = [("MODULE LIST", [{b"name": b"search", b"ver": 21005}])]
    oom = ReplyError("OOM command not allowed when used memory > 'maxmemory'.")
    for _feature in probe_candidates():
        script.append(("FT.CREATE *", oom))
        script.append(("FT.DROPINDEX *", ReplyError("Unknown index name")))
    with pytest.raises(RefusedError, match="maxmemory") as caught:
        ScriptedRedis(script).run(probe_capabilities(token="t"))
    assert "raise maxmemory" in caught.value.hint
