"""Quantization parameters and the measured quality of conversions, on real MiniLM vectors."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import msgspec
import numpy as np
import pytest

from ftctl.errors import UsageError
from ftctl.plan.codecs import knn_recall, measure_recall
from ftctl.plan.quantization import (
    DATATYPES,
    METRICS,
    Metric,
    QualityMeasure,
    QuantizationParams,
    calibrate,
    element_size,
    float16_overflow,
    is_lossy,
)

FIXTURE = Path(__file__).resolve().parents[3] / "fixtures" / "embeddings" / "minilm-384-3000.npy"


@cache
def _embeddings() -> np.ndarray:
    vectors: np.ndarray = np.load(FIXTURE)
    assert vectors.shape == (3000, 384) and vectors.dtype == np.float32
    return vectors


def _per_vector_min_max(vectors: np.ndarray, target: str) -> np.ndarray:
    """RedisVL's baseline: each vector scaled by its own min/max, the scale thrown away."""
    low = vectors.min(axis=1, keepdims=True)
    span = vectors.max(axis=1, keepdims=True) - low
    span[span == 0] = 1.0
    q: np.ndarray = np.rint((vectors - low) / span * 255.0)
    return q - 128.0 if target == "int8" else q


def test_element_sizes() -> None:
    """Each datatype's element size is what Redis stores per dimension."""
    assert [element_size(d) for d in DATATYPES] == [8, 4, 2, 2, 1, 1]
    assert element_size("BFLOAT16") == 2
    with pytest.raises(UsageError):
        element_size("float8")


@pytest.mark.parametrize(
    ("src", "dst", "lossy"),
    [
        ("float32", "float64", False),
        ("float16", "float32", False),
        ("bfloat16", "float32", False),
        ("bfloat16", "float64", False),
        ("float32", "float32", False),
        ("int8", "float32", False),
        ("float64", "float32", True),
        ("float32", "float16", True),
        ("float32", "bfloat16", True),
        ("float16", "bfloat16", True),
        ("bfloat16", "float16", True),
        ("float32", "int8", True),
        ("float16", "uint8", True),
        ("int8", "uint8", True),
        ("uint8", "int8", True),
        ("int8", "float16", True),
    ],
)
def test_is_lossy(src: str, dst: str, lossy: bool) -> None:
    """Only conversions that may change a value count as lossy (and need a measured recall)."""
    assert is_lossy(src, dst) is lossy
    assert is_lossy(src.upper(), dst.upper()) is lossy


def test_int8_calibration_is_one_symmetric_scale_from_the_percentile() -> None:
    """int8 scale = p99.99(|x|) / 127 over the sample; few values clip; it says how it was made."""
    sample = _embeddings()[:2000]
    params = calibrate(sample, "int8")
    assert params.scheme == "symmetric" and params.zero_point == 0.0
    assert params.scale == pytest.approx(np.percentile(np.abs(sample), 99.99) / 127)
    assert 0.0 < params.clipped_fraction <= 1e-4 + 1e-6
    assert params.calibration == "p99.99 of |x| over 2000 sampled vectors"


def test_uint8_calibration_is_affine_with_an_exact_zero() -> None:
    """uint8 maps the p0.01..p99.99 range onto 0..255 with a whole-number zero point."""
    sample = _embeddings()[:2000]
    params = calibrate(sample, "uint8")
    assert params.scheme == "affine"
    assert params.zero_point == round(params.zero_point) and 100 < params.zero_point < 155
    span = np.percentile(sample, 99.99) - np.percentile(sample, 0.01)
    assert params.scale == pytest.approx(span / 255)
    assert params.clipped_fraction < 1e-3


def test_calibration_of_all_zero_vectors_does_not_divide_by_zero() -> None:
    """A field of zero vectors gets a usable scale instead of 0 (which would make NaNs)."""
    for target in ("int8", "uint8"):
        params = calibrate(np.zeros((4, 8), dtype=np.float32), target)
        assert params.scale == 1.0 and params.clipped_fraction == 0.0


def test_calibration_refuses_float_targets_and_empty_samples() -> None:
    """Only int8/uint8 are calibrated; an empty sample cannot be."""
    with pytest.raises(UsageError):
        calibrate(np.ones((2, 2)), "float16")
    with pytest.raises(UsageError, match="empty sample"):
        calibrate(np.zeros((0, 4)), "int8")


def test_params_and_measures_round_trip_through_plan_yaml_types() -> None:
    """The plan stores both records as plain data; decoding gives back equal records."""
    params = calibrate(_embeddings()[:100], "uint8")
    assert msgspec.json.decode(msgspec.json.encode(params), type=QuantizationParams) == params
    measure = QualityMeasure("int8", "IP", 10, 100, 0.99, 0.01, 0.001, 20)
    assert msgspec.json.decode(msgspec.json.encode(measure), type=QualityMeasure) == measure


def test_float16_overflow_counts_values_past_the_range() -> None:
    """Values that float16 would turn into inf are counted so the plan can block them."""
    assert float16_overflow(_embeddings()) == 0
    sample = np.array([[1.0, 65504.0, 65520.0, -1e6, np.inf, np.nan]])
    assert float16_overflow(sample) == 2


@pytest.mark.parametrize("metric", METRICS)
def test_int8_keeps_recall_on_every_metric(metric: Metric) -> None:
    """One global symmetric int8 scale keeps recall@10 ≥ 0.98 on COSINE, L2 and IP."""
    vectors = _embeddings()
    measure = measure_recall(vectors, "int8", metric, calibrate(vectors[:2000], "int8"))
    assert measure.recall_at_k >= 0.98, measure
    assert (measure.datatype, measure.metric, measure.k) == ("int8", metric, 10)
    assert measure.sample_size == 3000 and measure.queries == 200
    assert 0.0 < measure.mean_abs_error < measure.max_abs_error


@pytest.mark.parametrize("target", ["float16", "bfloat16"])
@pytest.mark.parametrize("metric", METRICS)
def test_half_floats_keep_recall(target: str, metric: Metric) -> None:
    """float16 and bfloat16 keep recall@10 ≥ 0.995; bfloat16 errs more than float16."""
    measure = measure_recall(_embeddings(), target, metric)
    assert measure.recall_at_k >= 0.995, measure
    bound = 2.0**-11 if target == "float16" else 2.0**-8  # half an ulp at |x| < 1
    assert 0.0 < measure.max_abs_error <= bound


def test_uint8_inner_product_is_measured_lower_than_cosine() -> None:
    """uint8's offset adds a per-document term to IP; the measure reports it, not a guess."""
    vectors = _embeddings()
    params = calibrate(vectors[:2000], "uint8")
    cosine = measure_recall(vectors, "uint8", "COSINE", params)
    l2 = measure_recall(vectors, "uint8", "L2", params)
    ip = measure_recall(vectors, "uint8", "IP", params)
    assert cosine.recall_at_k >= 0.97 and l2.recall_at_k >= 0.97
    assert ip.recall_at_k < 0.9 < cosine.recall_at_k
    assert ip.max_abs_error == l2.max_abs_error, "same codec, only the ranking differs"


@pytest.mark.parametrize("target", ["int8", "uint8"])
@pytest.mark.parametrize("metric", METRICS)
def test_per_vector_min_max_is_worse_than_one_calibrated_scale(target: str, metric: Metric) -> None:
    """RedisVL's per-vector min-max scaling loses recall that our global scale keeps."""
    vectors = _embeddings()
    rows = np.random.default_rng(0).choice(len(vectors), size=200, replace=False)
    baseline = knn_recall(
        vectors,
        _per_vector_min_max(vectors, target),
        metric,
        k=10,
        query_rows=rows,
    )
    ours = measure_recall(vectors, target, metric, calibrate(vectors[:2000], target))
    assert baseline < 0.9
    assert ours.recall_at_k > baseline + 0.05, (ours.recall_at_k, baseline)


def test_lossless_conversion_measures_perfect_recall() -> None:
    """Widening to float64 changes nothing, so recall is exactly 1 and the error 0."""
    measure = measure_recall(_embeddings()[:500], "float64", "L2", queries=50)
    assert measure.recall_at_k == 1.0 and measure.max_abs_error == 0.0
