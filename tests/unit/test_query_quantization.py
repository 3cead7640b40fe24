"""``ftctl.query`` without a server: where int8/uint8 quantization parameters come from."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest
import redis

from ftctl import AsyncQueryEncoder, QuantizationParams, QueryEncoder, quantization_params
from ftctl.errors import UsageError
from ftctl.plan.models import VectorChange, dump_plan, load_plan
from ftctl.query import _quantization

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
INT8 = QuantizationParams(scheme="symmetric", scale=0.0123, calibration="p99.99")


def _change(field: str, target: str, params: QuantizationParams | None) -> VectorChange:
    return VectorChange(
        field=field,
        source_field=field,
        source_datatype="float32",
        target_datatype=target,
        dims=4,
        lossy=True,
        reencode_documents=True,
        params=params,
    )


def test_quantization_params_come_from_the_plan_object_or_its_file(tmp_path: Path) -> None:
    """The plan's int8/uint8 vector changes give their parameters by target attribute name,
    from a MigrationPlan or its YAML file; float targets give none."""
    plan = msgspec.structs.replace(
        load_plan(FIXTURES / "plans" / "guide_plan.yaml"),
        vector_changes=[_change("emb", "int8", INT8), _change("other", "float16", None)],
    )
    assert quantization_params(plan) == {"emb": INT8}
    path = tmp_path / "plan.yaml"
    path.write_bytes(dump_plan(plan))
    assert quantization_params(path) == {"emb": INT8}
    assert quantization_params(str(path)) == {"emb": INT8}
    assert quantization_params(FIXTURES / "plans" / "guide_plan.yaml") == {}


def test_parameters_may_be_given_as_configuration_mappings() -> None:
    """An application may keep the parameters in its own configuration: a mapping with the
    plan's keys converts to QuantizationParams; a malformed one is a UsageError."""
    given = {"emb": {"scheme": "affine", "scale": 0.5, "zero_point": 128.0}, "v": INT8}
    assert _quantization(given) == {
        "emb": QuantizationParams(scheme="affine", scale=0.5, zero_point=128.0),
        "v": INT8,
    }
    with pytest.raises(UsageError, match="'emb'"):
        # refused when the encoder is made, before anything is sent
        QueryEncoder(
            "docs",
            redis_client=redis.Redis(),
            quantization={"emb": {"scheme": "log", "scale": 1.0}},
        )


async def test_an_async_encoder_connects_only_when_first_used() -> None:
    """Constructing an AsyncQueryEncoder opens nothing (no event loop work in __init__);
    closing one that never connected is harmless."""
    encoder = AsyncQueryEncoder("docs", redis_url="redis://127.0.0.1:1")
    await encoder.aclose()
    assert encoder.name == "docs"
