"""Vector codecs: convert whole batches of stored vectors between datatypes with numpy.

Redis stores a hash vector as its elements concatenated, little-endian. A batch is many such
vectors concatenated again, so one ``frombuffer`` decodes it and one ``tobytes`` encodes it;
nothing here loops over vectors in Python.

* bfloat16 is the top half of a float32; float32 → bfloat16 rounds to nearest, ties to even,
  on integer views (no optional dtype package), NaN stays a quiet NaN.
* int8/uint8 use the plan's :class:`~ftctl.plan.quantization.QuantizationParams`.
* A finite value that would become ±inf (float16 range, or float64 → float32/bfloat16) is
  refused with :class:`CodecError` rather than written.

:func:`measure_recall` runs the real conversion on a sample and reports what it does to k-NN
rankings, for the plan.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, NamedTuple

import numpy as np
import numpy.typing as npt

from ftctl.errors import MigrationFailed
from ftctl.plan.quantization import (
    INTEGER_DATATYPES,
    Metric,
    QualityMeasure,
    QuantizationParams,
    calibrate,
    element_size,
    normalize_datatype,
)

FloatArray = npt.NDArray[np.floating]

_WIRE_DTYPE: dict[str, str] = {
    "float64": "<f8",
    "float32": "<f4",
    "float16": "<f2",
    "bfloat16": "<u2",
    "int8": "i1",
    "uint8": "u1",
}


class CodecError(MigrationFailed):
    """Vector bytes that cannot be decoded, or values the target datatype cannot hold."""


def _check_dims(dims: int) -> None:
    if dims <= 0:
        raise CodecError(f"vector dimension must be positive, got {dims}")


def decode(data: bytes, datatype: str, dims: int) -> np.ndarray:
    """Concatenated vectors → an ``(n, dims)`` array of the stored values.

    Floats come back as floats (bfloat16 widened exactly to float32); int8/uint8 come back as
    their raw integers (dequantize with :func:`dequantize`).
    """
    kind = normalize_datatype(datatype)
    _check_dims(dims)
    row = dims * element_size(kind)
    if len(data) % row:
        raise CodecError(
            f"{len(data)} bytes is not a whole number of {kind} vectors of {dims} dims "
            f"({row} bytes each)",
            hint="the stored vector does not match the schema's DIM and TYPE",
        )
    raw = np.frombuffer(data, dtype=_WIRE_DTYPE[kind]).reshape(-1, dims)
    if kind == "bfloat16":
        return bfloat16_bits_to_float32(raw)
    return raw


def bfloat16_bits_to_float32(bits: npt.NDArray[np.uint16]) -> npt.NDArray[np.float32]:
    """bfloat16 bit patterns → float32 (exact: the bits become the float32's top half)."""
    wide = bits.astype(np.uint32) << np.uint32(16)
    return wide.view(np.float32)


def float32_to_bfloat16_bits(values: npt.NDArray[np.float32]) -> npt.NDArray[np.uint16]:
    """float32 → bfloat16 bit patterns, round to nearest, ties to even; NaN → quiet NaN.

    Finite values past bfloat16's largest finite value round to ±inf here; :func:`encode`
    refuses those.
    """
    u = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
    nan = (u & np.uint32(0x7FFFFFFF)) > np.uint32(0x7F800000)
    # Adding 0x7FFF plus the lowest kept bit carries into the kept half exactly when the
    # dropped half is above the tie, or at the tie with an odd kept half. uint32 arithmetic
    # wraps only for NaN patterns, which are replaced below.
    rounded = (u + np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1))) >> np.uint32(16)
    quiet = (u >> np.uint32(16)) | np.uint32(0x0040)
    return np.where(nan, quiet, rounded).astype(np.uint16)


def _float64_to_float32_round_to_odd(values: npt.NDArray[np.float64]) -> npt.NDArray[np.float32]:
    """float64 → float32 rounding to odd, so a second rounding to bfloat16 is still correct.

    Rounding to nearest twice (float64 → float32 → bfloat16) can land on the wrong side of a
    tie; rounding the first step to odd cannot, since float32 keeps 16 more bits than
    bfloat16 (more than the 2 the technique needs).
    """
    with np.errstate(over="ignore"):
        nearest = values.astype(np.float32)
    inexact = (nearest.astype(np.float64) != values) & np.isfinite(nearest)
    bits = nearest.view(np.uint32).copy()
    even = (bits & np.uint32(1)) == 0
    fix = inexact & even
    # x lies strictly between `nearest` and its neighbour towards x; the odd one of the two is
    # that neighbour, one step up or down in magnitude (sign-magnitude bits).
    toward_zero = np.abs(nearest.astype(np.float64)) > np.abs(values)
    bits[fix & toward_zero] -= np.uint32(1)
    bits[fix & ~toward_zero] += np.uint32(1)
    return bits.view(np.float32)


_EXPONENT_BITS = {
    np.dtype(np.float16): (np.uint16, 0x7C00),
    np.dtype(np.float32): (np.uint32, 0x7F800000),
}


def _all_finite(values: np.ndarray) -> bool:
    """Whether no value is inf or NaN; for float16/float32 by their exponent bits, which is
    an order of magnitude faster than ``np.isfinite`` on float16."""
    found = _EXPONENT_BITS.get(values.dtype)
    if found is None:
        return bool(np.isfinite(values).all())
    unsigned, mask = found
    bits = np.ascontiguousarray(values).view(unsigned)
    return not bool(((bits & unsigned(mask)) == mask).any())


def _refuse_overflow(source: np.ndarray, result: np.ndarray, datatype: str) -> None:
    if _all_finite(result):
        return
    overflowed = np.isinf(result) & np.isfinite(source)
    count = int(np.count_nonzero(overflowed))
    if count:
        worst = float(np.max(np.abs(source[overflowed])))
        raise CodecError(
            f"{count} finite values would overflow to inf as {datatype} (largest |x| = {worst:g})",
            hint="choose a datatype with a wider range (bfloat16 or float32), or rescale the vectors",
        )


def dequantize(
    raw: np.ndarray, datatype: str, params: QuantizationParams | None
) -> npt.NDArray[np.float64]:
    """Stored values → floats: int8 ``q * scale``, uint8 ``(q - zero_point) * scale``.

    Without ``params`` the raw integers are taken as the values, which is exactly what the
    server compares, so rankings are unchanged. Float datatypes are only widened.
    """
    values = np.asarray(raw, dtype=np.float64)
    if normalize_datatype(datatype) in INTEGER_DATATYPES and params is not None:
        return (values - params.zero_point) * params.scale
    return values


def _quantize(values: np.ndarray, kind: str, params: QuantizationParams | None) -> np.ndarray:
    if params is None:
        raise CodecError(
            f"converting to {kind} needs quantization parameters",
            hint="plan the migration so that it calibrates a scale for the field",
        )
    if not (np.isfinite(params.scale) and params.scale > 0.0):
        raise CodecError(f"quantization scale must be a positive number, got {params.scale}")
    floats = np.asarray(values, dtype=np.float64)
    bad = int(np.count_nonzero(~np.isfinite(floats)))
    if bad:
        raise CodecError(f"{bad} NaN or infinite values cannot be quantized to {kind}")
    scaled = np.rint(floats / params.scale + params.zero_point)
    if kind == "int8":
        return np.clip(scaled, -127.0, 127.0).astype(np.int8)
    return np.clip(scaled, 0.0, 255.0).astype(np.uint8)


def encode_array(
    array: npt.ArrayLike, datatype: str, params: QuantizationParams | None = None
) -> np.ndarray:
    """Float values → the stored representation (wire dtype, little-endian), as an array.

    bfloat16 comes back as its uint16 bit patterns. Overflow to inf and non-finite values
    bound for int8/uint8 raise :class:`CodecError`.
    """
    kind = normalize_datatype(datatype)
    values = np.asarray(array)
    if values.dtype.kind not in "fiu":
        raise CodecError(f"cannot encode an array of {values.dtype} as {kind}")
    if kind in INTEGER_DATATYPES:
        return _quantize(values, kind, params).astype(_WIRE_DTYPE[kind])
    if kind == "bfloat16":
        if values.dtype == np.float64 or values.dtype.kind in "iu":
            wide = _float64_to_float32_round_to_odd(values.astype(np.float64))
        else:
            wide = values.astype(np.float32)
        bits = float32_to_bfloat16_bits(wide)
        _refuse_overflow(values, bfloat16_bits_to_float32(bits), kind)
        return bits.astype(_WIRE_DTYPE[kind])
    with np.errstate(over="ignore"):
        out = values.astype(_WIRE_DTYPE[kind])
    _refuse_overflow(values, out, kind)
    return out


def encode(array: npt.ArrayLike, datatype: str, params: QuantizationParams | None = None) -> bytes:
    """An ``(n, dims)`` batch of float values → concatenated ``datatype`` vectors (row-major).

    Each row is ``dims * element_size(datatype)`` bytes, as Redis stores one vector.
    """
    return np.ascontiguousarray(encode_array(array, datatype, params)).tobytes()


def convert_batch(
    data: bytes,
    src: str,
    dst: str,
    dims: int,
    params: QuantizationParams | None = None,
    *,
    src_params: QuantizationParams | None = None,
) -> bytes:
    """Concatenated ``src`` vectors → concatenated ``dst`` vectors, the whole batch at once.

    ``params`` is the target field's quantization (required when ``dst`` is int8/uint8).
    ``src_params`` dequantizes an int8/uint8 source; when it is omitted and only the source is
    an integer type, ``params`` is taken as the source's; with neither, the raw integers are
    the values (what the server compared, so rankings survive).
    """
    s, d = normalize_datatype(src), normalize_datatype(dst)
    if src_params is None and s in INTEGER_DATATYPES and d not in INTEGER_DATATYPES:
        src_params = params
    if s == d and (s not in INTEGER_DATATYPES or src_params is None or src_params == params):
        decode(data, s, dims)  # validates the length
        return bytes(data)
    values = decode(data, s, dims)
    if s in INTEGER_DATATYPES:
        values = dequantize(values, s, src_params)
    return encode(values, d, params)


def convert_many(
    vectors: Sequence[bytes],
    src: str,
    dst: str,
    dims: int,
    params: QuantizationParams | None = None,
    *,
    src_params: QuantizationParams | None = None,
) -> list[bytes]:
    """Per-vector bytes → per-vector bytes: joins once, :func:`convert_batch`, splits."""
    _check_dims(dims)
    row = dims * element_size(src)
    for index, vector in enumerate(vectors):
        if len(vector) != row:
            raise CodecError(
                f"vector {index} has {len(vector)} bytes, a {src} vector of {dims} dims has {row}",
                hint="the stored vector does not match the schema's DIM and TYPE",
            )
    out = convert_batch(b"".join(vectors), src, dst, dims, params, src_params=src_params)
    size = dims * element_size(dst)
    return [out[i * size : (i + 1) * size] for i in range(len(vectors))]


class Rejection(NamedTuple):
    """Why one vector cannot be converted: ``wrong_length`` (not one vector of the schema's
    DIM and TYPE) or ``unconvertible`` (a value the target datatype cannot hold)."""

    kind: Literal["wrong_length", "unconvertible"]
    detail: str


def convert_rows(
    vectors: Sequence[bytes | None],
    src: str,
    dst: str,
    dims: int,
    params: QuantizationParams | None = None,
) -> tuple[list[bytes | None], dict[int, Rejection]]:
    """Each vector converted, or ``None`` with the reason it cannot be, never raising on data.

    Returns the converted vectors (``None`` for absent ones and for those that cannot be
    converted) and, per row that cannot, why: a length that is not one ``src`` vector of
    ``dims`` (the source index could not hold it either), or a value the target cannot hold
    (a finite value that would overflow to inf, a NaN bound for int8/uint8). A batch is
    converted at once; only a batch that fails is looked at row by row.
    """
    _check_dims(dims)
    width = dims * element_size(src)
    out: list[bytes | None] = [None] * len(vectors)
    rejected: dict[int, Rejection] = {}
    rows = []
    for i, vector in enumerate(vectors):
        if vector is None:
            continue
        if len(vector) != width:
            detail = f"{len(vector)} bytes, not a {src} vector of {dims} dims ({width} bytes)"
            rejected[i] = Rejection("wrong_length", detail)
        else:
            rows.append(i)
    try:
        converted = convert_batch(b"".join(vectors[i] or b"" for i in rows), src, dst, dims, params)
    except CodecError:
        for i in rows:
            try:
                out[i] = convert_batch(vectors[i] or b"", src, dst, dims, params)
            except CodecError as exc:
                rejected[i] = Rejection("unconvertible", exc.message)
        return out, rejected
    size = len(converted) // len(rows) if rows else 0
    for n, i in enumerate(rows):
        out[i] = converted[n * size : (n + 1) * size]
    return out, rejected


def _scores(queries: np.ndarray, docs: np.ndarray, metric: Metric) -> npt.NDArray[np.float64]:
    """Higher is nearer, for every (query, document) pair, in float64."""
    q = np.asarray(queries, dtype=np.float64)
    x = np.asarray(docs, dtype=np.float64)
    dots: npt.NDArray[np.float64] = q @ x.T
    if metric == "IP":
        return dots
    if metric == "COSINE":
        qn = np.sqrt(np.einsum("ij,ij->i", q, q))
        xn = np.sqrt(np.einsum("ij,ij->i", x, x))
        qn[qn == 0.0] = 1.0  # a zero vector scores 0 against everything, not NaN
        xn[xn == 0.0] = 1.0
        cosine: npt.NDArray[np.float64] = dots / qn[:, None] / xn[None, :]
        return cosine
    if metric == "L2":
        # -|q - x|^2, expanded so it is one matrix product
        neg_l2: npt.NDArray[np.float64] = (
            2.0 * dots - np.einsum("ij,ij->i", x, x)[None, :] - np.einsum("ij,ij->i", q, q)[:, None]
        )
        return neg_l2
    raise CodecError(f"unknown distance metric {metric!r}", hint="use COSINE, L2 or IP")


def _top_k(scores: npt.NDArray[np.float64], k: int) -> npt.NDArray[np.intp]:
    return np.argpartition(-scores, k - 1, axis=1)[:, :k]


def knn_recall(
    exact: np.ndarray,
    approx: np.ndarray,
    metric: Metric,
    *,
    k: int = 10,
    query_rows: npt.ArrayLike,
) -> float:
    """Mean recall@k of brute-force k-NN on ``approx`` against brute force on ``exact``.

    Row ``i`` of both arrays is the same document; the queries are the rows ``query_rows`` of
    each array (a query is encoded like a document), and each query's own row is excluded
    from both rankings. ``approx`` holds the values the server compares.
    """
    rows = np.asarray(query_rows, dtype=np.intp)
    n = exact.shape[0]
    if not 0 < k < n:
        raise CodecError(f"recall@{k} needs more than {k} vectors, the sample has {n}")
    picked = np.arange(rows.size)
    truth_scores = _scores(exact[rows], exact, metric)
    approx_scores = _scores(approx[rows], approx, metric)
    truth_scores[picked, rows] = -np.inf
    approx_scores[picked, rows] = -np.inf
    truth = _top_k(truth_scores, k)
    found = _top_k(approx_scores, k)
    hit = np.zeros(truth_scores.shape, dtype=bool)
    hit[picked[:, None], truth] = True
    return float(hit[picked[:, None], found].sum() / (rows.size * k))


def measure_recall(
    sample: npt.ArrayLike,
    target: str,
    metric: Metric,
    params: QuantizationParams | None = None,
    *,
    k: int = 10,
    queries: int = 200,
    seed: int = 0,
) -> QualityMeasure:
    """What converting ``sample`` (``(n, d)`` float vectors) to ``target`` does to k-NN.

    Converts with the real codec, then ranks the values the server would compare — the
    converted floats, or the raw int8/uint8 integers with the query encoded by the same
    ``params`` — against float32 brute force. ``queries`` sample rows (chosen with ``seed``)
    serve as queries. int8/uint8 without ``params`` calibrate on the sample.
    """
    kind = normalize_datatype(target)
    original = np.asarray(sample, dtype=np.float64)
    if original.ndim != 2:
        raise CodecError(f"the sample must be a 2-d array of vectors, got shape {original.shape}")
    if kind in INTEGER_DATATYPES and params is None:
        params = calibrate(original, kind)
    stored = encode_array(original, kind, params)
    if kind == "bfloat16":
        compared = bfloat16_bits_to_float32(stored.astype(np.uint16)).astype(np.float64)
    else:
        compared = stored.astype(np.float64)
    decoded = dequantize(compared, kind, params)
    n = original.shape[0]
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(n, size=min(queries, n), replace=False))
    exact = original.astype(np.float32)
    recall = knn_recall(exact, compared, metric, k=k, query_rows=rows)
    error = np.abs(decoded - original)
    return QualityMeasure(
        datatype=kind,
        metric=metric,
        k=k,
        sample_size=n,
        recall_at_k=recall,
        max_abs_error=float(error.max()) if error.size else 0.0,
        mean_abs_error=float(error.mean()) if error.size else 0.0,
        queries=int(rows.size),
    )


__all__ = [
    "CodecError",
    "bfloat16_bits_to_float32",
    "convert_batch",
    "convert_many",
    "decode",
    "dequantize",
    "encode",
    "encode_array",
    "float32_to_bfloat16_bits",
    "knn_recall",
    "measure_recall",
]
