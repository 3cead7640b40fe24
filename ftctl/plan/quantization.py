"""Vector datatypes and how a plan quantizes floats to integers (pure data + calibration).

The plan records one :class:`QuantizationParams` per int8/uint8 field, calibrated on a sample
of the stored vectors, so the migration and every application that encodes queries use the
same map. It also records a :class:`QualityMeasure` (recall@k against float32 brute force)
for every lossy datatype change; ``ftctl.plan.codecs.measure_recall`` produces it.
"""

from __future__ import annotations

from typing import Literal

import msgspec
import numpy as np
import numpy.typing as npt

from ftctl.errors import UsageError

DATATYPES = ("float64", "float32", "float16", "bfloat16", "int8", "uint8")
"""Vector datatypes ftctl converts between, lowercase (Redis spells them uppercase)."""

INTEGER_DATATYPES = ("int8", "uint8")

Metric = Literal["COSINE", "L2", "IP"]
METRICS: tuple[Metric, ...] = ("COSINE", "L2", "IP")

_ELEMENT_SIZE = {"float64": 8, "float32": 4, "float16": 2, "bfloat16": 2, "int8": 1, "uint8": 1}

# Datatypes that hold every value of the key exactly (the value of an integer is the integer
# itself, or its dequantized float, which float32/float64 represent to within rounding).
_EXACT_INTO: dict[str, frozenset[str]] = {
    "float64": frozenset({"float64"}),
    "float32": frozenset({"float32", "float64"}),
    "float16": frozenset({"float16", "float32", "float64"}),
    "bfloat16": frozenset({"bfloat16", "float32", "float64"}),
    "int8": frozenset({"int8", "float32", "float64"}),
    "uint8": frozenset({"uint8", "float32", "float64"}),
}

FLOAT16_MAX = 65504.0
FLOAT16_OVERFLOW_AT = 65520.0
"""Smallest magnitude that rounds to inf in float16 (halfway between 65504 and 2**16)."""


def normalize_datatype(datatype: str) -> str:
    """``datatype`` in the lowercase spelling of :data:`DATATYPES`; unknown names refused."""
    name = datatype.lower()
    if name not in _ELEMENT_SIZE:
        raise UsageError(
            f"unknown vector datatype {datatype!r}",
            hint=f"use one of {', '.join(d.upper() for d in DATATYPES)}",
        )
    return name


def element_size(datatype: str) -> int:
    """Bytes per vector element of ``datatype`` (case-insensitive)."""
    return _ELEMENT_SIZE[normalize_datatype(datatype)]


def is_lossy(src: str, dst: str) -> bool:
    """True when converting ``src`` vectors to ``dst`` may change values (and rankings).

    Widening float conversions (float16/bfloat16 → float32 → float64) and integers back to
    float32/float64 are exact; everything else, including float16 ↔ bfloat16 and
    int8 ↔ uint8, is lossy and needs a measured recall in the plan.
    """
    return normalize_datatype(dst) not in _EXACT_INTO[normalize_datatype(src)]


class QuantizationParams(msgspec.Struct, frozen=True, kw_only=True):
    """How a field's floats map to int8/uint8; applications encode queries with the same map.

    Rounding is round-half-to-even (``numpy.rint``), computed in float64:

    * ``symmetric`` (int8):  ``q = clip(rint(x / scale), -127, 127)``;
      decode ``x ≈ q * scale``. -128 is never produced, so the map is symmetric around 0.
    * ``affine`` (uint8):    ``q = clip(rint(x / scale + zero_point), 0, 255)``;
      decode ``x ≈ (q - zero_point) * scale``. ``zero_point`` is a whole number so that 0.0
      encodes exactly.

    Within the calibrated range the decoding error is at most ``scale / 2``; values beyond it
    clip (``clipped_fraction`` of the calibration sample did).
    """

    scheme: Literal["symmetric", "affine"]
    scale: float
    zero_point: float = 0.0
    calibration: str = ""
    clipped_fraction: float = 0.0


class QualityMeasure(msgspec.Struct, frozen=True):
    """Measured effect of a datatype conversion on a sample of stored vectors.

    ``recall_at_k`` is the mean fraction of each query's exact float32 top-``k`` (brute force,
    the query itself excluded) that the converted vectors still rank in their top-``k``,
    computed on the values the server compares (raw integers for int8/uint8). The errors are
    element-wise, between the original and the decoded (dequantized) values.
    """

    datatype: str
    metric: str
    k: int
    sample_size: int
    recall_at_k: float
    max_abs_error: float
    mean_abs_error: float
    queries: int = 0


def _finite_values(sample: npt.ArrayLike) -> npt.NDArray[np.float64]:
    values = np.asarray(sample, dtype=np.float64)
    if values.size == 0:
        raise UsageError(
            "cannot calibrate quantization on an empty sample",
            hint="sample at least one stored vector of the field",
        )
    return values[np.isfinite(values)].ravel()


def calibrate(
    sample: npt.ArrayLike, target: str, *, percentile: float = 99.99
) -> QuantizationParams:
    """One scale for the whole field, from the ``percentile`` of a sample of its vectors.

    int8 gets a symmetric map whose ±127 covers the ``percentile`` of ``|x|``; uint8 gets an
    affine map whose 0..255 covers the ``(100 - percentile)`` to ``percentile`` range of ``x``.
    Calibrating on a high percentile rather than the maximum keeps one outlier from coarsening
    every other value. Non-finite sample values are ignored.
    """
    kind = normalize_datatype(target)
    if kind not in INTEGER_DATATYPES:
        raise UsageError(f"calibration is for int8/uint8, not {target!r}")
    if not 0.0 < percentile <= 100.0:
        raise UsageError(f"percentile must be in (0, 100], got {percentile}")
    samples = np.asarray(sample)
    rows = samples.shape[0] if samples.ndim == 2 else 1
    values = _finite_values(samples)
    where = f"over {rows} sampled vectors"
    if kind == "int8":
        bound = float(np.percentile(np.abs(values), percentile)) if values.size else 0.0
        scale = bound / 127.0 if bound > 0.0 else 1.0
        clipped = np.count_nonzero(np.abs(values) > 127.5 * scale)
        return QuantizationParams(
            scheme="symmetric",
            scale=scale,
            calibration=f"p{percentile:g} of |x| {where}",
            clipped_fraction=float(clipped) / max(values.size, 1),
        )
    if values.size:
        low = min(float(np.percentile(values, 100.0 - percentile)), 0.0)
        high = max(float(np.percentile(values, percentile)), 0.0)
    else:
        low = high = 0.0
    scale = (high - low) / 255.0 if high > low else 1.0
    zero_point = float(np.clip(np.rint(-low / scale), 0.0, 255.0))
    encoded = values / scale + zero_point
    clipped = np.count_nonzero((encoded < -0.5) | (encoded > 255.5))
    return QuantizationParams(
        scheme="affine",
        scale=scale,
        zero_point=zero_point,
        calibration=f"p{100.0 - percentile:g}..p{percentile:g} of x {where}",
        clipped_fraction=float(clipped) / max(values.size, 1),
    )


def float16_overflow(sample: npt.ArrayLike) -> int:
    """How many finite values of ``sample`` would become ±inf as float16 (block at plan time)."""
    values = np.asarray(sample, dtype=np.float64)
    return int(np.count_nonzero(np.isfinite(values) & (np.abs(values) >= FLOAT16_OVERFLOW_AT)))


__all__ = [
    "DATATYPES",
    "FLOAT16_MAX",
    "INTEGER_DATATYPES",
    "METRICS",
    "Metric",
    "QualityMeasure",
    "QuantizationParams",
    "calibrate",
    "element_size",
    "float16_overflow",
    "is_lossy",
    "normalize_datatype",
]
