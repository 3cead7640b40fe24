"""Vector codecs: exact widening, bfloat16 rounding, quantization bounds, overflow, batching."""

from __future__ import annotations

import math
import struct
from bisect import bisect_right
from fractions import Fraction
from functools import cache

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import (
    BFLOAT16_EDGE_FLOAT32_BITS,
    dims,
    float32_bit_patterns,
    float_batches,
    non_nan_half_bit_patterns,
)

from ftctl.errors import MigrationFailed, UsageError
from ftctl.plan.codecs import (
    CodecError,
    convert_batch,
    convert_many,
    decode,
    dequantize,
    encode,
    float32_to_bfloat16_bits,
)
from ftctl.plan.quantization import QuantizationParams, calibrate, element_size, float16_overflow

BF16_INF = 0x7F80


@cache
def _bf16_magnitude(bits: int) -> Fraction:
    """Exact value of a non-negative bfloat16; the inf pattern stands for 2**128, where IEEE
    rounding puts the overflow threshold."""
    if bits == BF16_INF:
        return Fraction(2) ** 128
    (value,) = struct.unpack("<f", struct.pack("<I", bits << 16))
    return Fraction(value)


def _reference_bf16(x: float) -> int:
    """Slow, obviously-correct round-to-nearest-even of a (non-NaN) float to bfloat16 bits."""
    sign = 0x8000 if math.copysign(1.0, x) < 0 else 0
    if math.isinf(x):
        return sign | BF16_INF
    a = abs(Fraction(x))
    lo = bisect_right(range(BF16_INF + 1), a, key=_bf16_magnitude) - 1
    if lo >= BF16_INF:
        return sign | BF16_INF
    hi = lo + 1
    below, above = a - _bf16_magnitude(lo), _bf16_magnitude(hi) - a
    if below < above or (below == above and lo % 2 == 0):
        return sign | lo
    return sign | hi


def _f32(bits: int) -> float:
    return float(np.array([bits], dtype=np.uint32).view(np.float32)[0])


def _check_bf16(bits_in: int, bits_out: int) -> None:
    f = np.array([bits_in], dtype=np.uint32).view(np.float32)[0]
    if np.isnan(f):
        assert bits_out & 0x7F80 == 0x7F80 and bits_out & 0x007F, "NaN must stay NaN"
        assert bits_out & 0x0040, "NaN must come out quiet"
        assert bits_out & 0x8000 == bits_in >> 16 & 0x8000, "NaN keeps its sign"
    else:
        assert bits_out == _reference_bf16(float(f)), hex(bits_in)


@given(float_batches(np.float32, allow_infinity=True))
def test_float32_to_float64_and_back_is_exact(batch: np.ndarray) -> None:
    """float32 → float64 → float32 returns the original bytes (widening loses nothing)."""
    dims_ = batch.shape[1]
    data = batch.astype("<f4").tobytes()
    wide = convert_batch(data, "float32", "float64", dims_, None)
    assert len(wide) == 2 * len(data)
    assert convert_batch(wide, "float64", "float32", dims_, None) == data


@given(st.lists(non_nan_half_bit_patterns(0x7C00), min_size=1, max_size=64))
def test_float16_to_float32_and_back_is_exact(patterns: list[int]) -> None:
    """Every non-NaN float16 survives float16 → float32 → float16 bit for bit."""
    data = np.array(patterns, dtype="<u2").tobytes()
    wide = convert_batch(data, "float16", "float32", len(patterns), None)
    assert convert_batch(wide, "float32", "float16", len(patterns), None) == data


@given(st.lists(non_nan_half_bit_patterns(0x7F80), min_size=1, max_size=64))
def test_bfloat16_to_float32_and_back_is_exact(patterns: list[int]) -> None:
    """Every non-NaN bfloat16 survives bfloat16 → float32 → bfloat16 bit for bit."""
    data = np.array(patterns, dtype="<u2").tobytes()
    wide = convert_batch(data, "bfloat16", "float32", len(patterns), None)
    values = np.frombuffer(wide, dtype="<f4")
    expected = [_f32(p << 16) for p in patterns]
    np.testing.assert_array_equal(values, np.array(expected, dtype=np.float32))
    assert convert_batch(wide, "float32", "bfloat16", len(patterns), None) == data


def test_bfloat16_rounding_matches_reference_on_edge_values() -> None:
    """Ties to even, max finite, subnormals, ±0, ±inf and NaN round like the reference."""
    bits = np.array(BFLOAT16_EDGE_FLOAT32_BITS, dtype=np.uint32)
    out = float32_to_bfloat16_bits(bits.view(np.float32))
    for b_in, b_out in zip(BFLOAT16_EDGE_FLOAT32_BITS, out.tolist(), strict=True):
        _check_bf16(b_in, b_out)
    assert out[3] == 0x3F80 and out[4] == 0x3F82 and out[12] == BF16_INF
    assert out[18] == 0x7FC0, "a signalling NaN must not turn into inf"


def test_bfloat16_rounding_matches_reference_on_random_bits() -> None:
    """Thousands of random float32 bit patterns round exactly like the slow reference."""
    rng = np.random.default_rng(7)
    bits = rng.integers(0, 2**32, size=4000, dtype=np.uint64).astype(np.uint32)
    # low halves at the tie, to exercise the even/odd rule everywhere in the range
    bits[::4] = (bits[::4] & np.uint32(0xFFFF0000)) | np.uint32(0x8000)
    out = float32_to_bfloat16_bits(bits.view(np.float32))
    for b_in, b_out in zip(bits.tolist(), out.tolist(), strict=True):
        _check_bf16(b_in, b_out)


@given(float32_bit_patterns())
def test_bfloat16_rounding_matches_reference_property(bits: int) -> None:
    """Any float32 rounds to the bfloat16 the reference picks (NaN → quiet NaN)."""
    out = float32_to_bfloat16_bits(np.array([bits], dtype=np.uint32).view(np.float32))
    _check_bf16(bits, int(out[0]))


@given(st.floats(allow_nan=False, min_value=-3.3e38, max_value=3.3e38))
def test_float64_to_bfloat16_rounds_once(x: float) -> None:
    """float64 → bfloat16 is correctly rounded, not double-rounded through float32."""
    out = convert_batch(struct.pack("<d", x), "float64", "bfloat16", 1, None)
    assert struct.unpack("<H", out)[0] == _reference_bf16(x)


def test_float64_double_rounding_case_is_correct() -> None:
    """A float64 just above a bfloat16 tie rounds up, though float32 would round it to the tie."""
    tie = _f32(0x3F808000)  # 1 + 2**-8, halfway between two bfloat16
    x = tie + 2.0**-40  # above the tie; float32 rounds it back onto the tie (even → down)
    out = convert_batch(struct.pack("<d", x), "float64", "bfloat16", 1, None)
    assert struct.unpack("<H", out)[0] == 0x3F81


@pytest.mark.parametrize(
    ("values", "src", "dst", "count"),
    [
        ([1.0, 70000.0, -65520.0, 3.0], "float32", "float16", 2),
        ([3.4028234663852886e38, 1.0], "float32", "bfloat16", 1),
        ([1e300, -1e300, 2.0], "float64", "float32", 2),
        ([1e39], "float64", "bfloat16", 1),
    ],
)
def test_overflow_to_inf_is_refused(values: list[float], src: str, dst: str, count: int) -> None:
    """A finite value that would become inf raises CodecError naming how many overflowed."""
    data = np.array(values, dtype="<f8" if src == "float64" else "<f4").tobytes()
    with pytest.raises(CodecError, match=rf"^{count} finite values would overflow to inf"):
        convert_batch(data, src, dst, len(values), None)


def test_codec_error_is_a_migration_failure() -> None:
    """CodecError belongs to the ftctl error family, so the CLI maps it to exit code 1."""
    assert issubclass(CodecError, MigrationFailed)
    assert CodecError("x").exit_code == 1


def test_infinity_is_carried_not_refused() -> None:
    """An input that is already ±inf stays ±inf; only finite → inf counts as overflow."""
    data = np.array([np.inf, -np.inf, 1.0], dtype="<f4").tobytes()
    out = np.frombuffer(convert_batch(data, "float32", "float16", 3, None), dtype="<f2")
    assert np.isposinf(out[0]) and np.isneginf(out[1]) and out[2] == 1.0


@pytest.mark.parametrize("edge", [65504.0, 65519.996, 65520.0, 70000.0])
def test_float16_overflow_check_agrees_with_codec(edge: float) -> None:
    """The plan-time float16 check counts exactly the values the codec refuses."""
    values = np.array([edge, -edge, 1.0])
    overflow = float16_overflow(values)
    assert overflow == (2 if edge >= 65520.0 else 0)
    if overflow:
        with pytest.raises(CodecError):
            encode(values, "float16")
    else:
        assert np.isfinite(np.frombuffer(encode(values, "float16"), dtype="<f2")).all()


@given(float_batches(np.float32, min_value=-0.3, max_value=0.3))
def test_int8_error_is_at_most_half_a_step(batch: np.ndarray) -> None:
    """Within the calibrated range, int8 decode(encode(x)) is within scale/2 of x."""
    params = QuantizationParams(scheme="symmetric", scale=0.3 / 127, calibration="test")
    raw = decode(encode(batch, "int8", params), "int8", batch.shape[1])
    assert raw.dtype == np.int8 and raw.min(initial=0) >= -127
    error = np.abs(dequantize(raw, "int8", params) - batch.astype(np.float64))
    assert error.max(initial=0.0) <= params.scale / 2 * (1 + 1e-9)


@given(float_batches(np.float32, min_value=-0.2, max_value=0.3))
def test_uint8_error_is_at_most_half_a_step(batch: np.ndarray) -> None:
    """Within the calibrated range, uint8 decode(encode(x)) is within scale/2 of x."""
    params = QuantizationParams(
        scheme="affine", scale=0.5 / 255, zero_point=102.0, calibration="test"
    )
    raw = decode(encode(batch, "uint8", params), "uint8", batch.shape[1])
    error = np.abs(dequantize(raw, "uint8", params) - batch.astype(np.float64))
    assert error.max(initial=0.0) <= params.scale / 2 * (1 + 1e-9)


def test_quantization_follows_the_documented_formulas() -> None:
    """int8: clip(rint(x/scale), -127, 127); uint8: clip(rint(x/scale + zp), 0, 255)."""
    sym = QuantizationParams(scheme="symmetric", scale=0.5)
    out = np.frombuffer(encode([[0.25, 0.75, -0.26, 100.0, -100.0]], "int8", sym), dtype=np.int8)
    assert out.tolist() == [0, 2, -1, 127, -127]  # 0.5 → 0 and 1.5 → 2: ties to even
    aff = QuantizationParams(scheme="affine", scale=0.5, zero_point=10.0)
    out = np.frombuffer(encode([[0.0, -5.0, -6.0, 1.0, 1000.0]], "uint8", aff), dtype=np.uint8)
    assert out.tolist() == [10, 0, 0, 12, 255]


def test_values_beyond_the_calibrated_range_clip() -> None:
    """Values past the calibrated range saturate at ±127 instead of wrapping around."""
    params = calibrate(np.linspace(-1.0, 1.0, 1001)[None, :], "int8", percentile=100.0)
    out = np.frombuffer(encode([[5.0, -5.0]], "int8", params), dtype=np.int8)
    assert out.tolist() == [127, -127]


def test_integer_targets_need_params_and_finite_values() -> None:
    """int8/uint8 without parameters, or with NaN input, are refused, never guessed."""
    with pytest.raises(CodecError, match="needs quantization parameters"):
        encode([[0.1]], "int8", None)
    params = QuantizationParams(scheme="symmetric", scale=0.01)
    with pytest.raises(CodecError, match="1 NaN or infinite"):
        encode([[0.1, np.nan]], "int8", params)


def test_int8_to_uint8_requantizes_through_floats() -> None:
    """int8 → uint8 dequantizes with the source's params and quantizes with the target's."""
    src = QuantizationParams(scheme="symmetric", scale=0.01)
    dst = QuantizationParams(scheme="affine", scale=0.01, zero_point=128.0)
    data = np.array([-127, 0, 5, 127], dtype=np.int8).tobytes()
    out = convert_batch(data, "int8", "uint8", 4, dst, src_params=src)
    assert np.frombuffer(out, dtype=np.uint8).tolist() == [1, 128, 133, 255]


def test_integer_to_float_without_params_keeps_the_raw_values() -> None:
    """uint8 → float32 with no known scale writes the integers the server compared."""
    data = bytes([0, 7, 255])
    out = np.frombuffer(convert_batch(data, "uint8", "float32", 3, None), dtype="<f4")
    assert out.tolist() == [0.0, 7.0, 255.0]
    params = QuantizationParams(scheme="affine", scale=0.5, zero_point=7.0)
    out = np.frombuffer(convert_batch(data, "uint8", "float32", 3, params), dtype="<f4")
    assert out.tolist() == [-3.5, 0.0, 124.0]


PAIRS = [
    ("float32", "float16"),
    ("float32", "bfloat16"),
    ("float64", "bfloat16"),
    ("float16", "bfloat16"),
    ("bfloat16", "float16"),
    ("float32", "int8"),
    ("float32", "uint8"),
    ("float16", "float64"),
]


@given(float_batches(np.float32, min_value=-1.0, max_value=1.0), st.sampled_from(PAIRS))
def test_batch_conversion_equals_per_vector_conversion(
    batch: np.ndarray, pair: tuple[str, str]
) -> None:
    """Converting a batch at once gives the same bytes as converting each vector alone."""
    src, dst = pair
    params = calibrate(np.ones((1, 1)), dst, percentile=100.0) if dst in ("int8", "uint8") else None
    dims_ = batch.shape[1]
    vectors = [encode(row[None, :], src) for row in batch.astype(np.float64)]
    one_by_one = [convert_batch(v, src, dst, dims_, params) for v in vectors]
    together = convert_many(vectors, src, dst, dims_, params)
    assert together == one_by_one
    assert convert_batch(b"".join(vectors), src, dst, dims_, params) == b"".join(one_by_one)
    assert all(len(v) == dims_ * element_size(dst) for v in together)


@given(dims(), st.integers(min_value=1, max_value=3))
def test_wrong_byte_length_is_refused(dims_: int, extra: int) -> None:
    """A batch that is not a whole number of vectors raises CodecError, not a reshape error."""
    data = bytes(dims_ * 4 * 2 + extra)
    with pytest.raises(CodecError, match="not a whole number of float32 vectors"):
        decode(data, "float32", dims_)
    with pytest.raises(CodecError):
        convert_batch(data, "float32", "float32", dims_, None)


def test_convert_many_names_the_bad_vector() -> None:
    """One vector of the wrong size in a list is reported by its index."""
    good = bytes(8)
    with pytest.raises(CodecError, match="vector 1 has 6 bytes"):
        convert_many([good, bytes(6)], "float32", "float16", 2)


def test_decode_shapes_and_rejects_bad_arguments() -> None:
    """decode returns (n, dims) (empty input → zero rows); dims ≤ 0 and unknown types refused."""
    assert decode(b"", "float16", 3).shape == (0, 3)
    assert decode(bytes(24), "float32", 3).shape == (2, 3)
    with pytest.raises(CodecError, match="dimension must be positive"):
        decode(b"", "float32", 0)
    with pytest.raises(UsageError, match="unknown vector datatype"):
        decode(b"", "float128", 1)


def test_datatype_names_are_case_insensitive() -> None:
    """Redis's FLOAT32/BFLOAT16 spellings are accepted like the lowercase ones."""
    data = np.array([1.5, -2.0], dtype="<f4").tobytes()
    assert convert_batch(data, "FLOAT32", "BFLOAT16", 2, None) == convert_batch(
        data, "float32", "bfloat16", 2, None
    )


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_all_finite_by_exponent_bits_agrees_with_numpy(dtype: type) -> None:
    """The bit test behind the overflow check says what ``np.isfinite`` says, for every
    special value, in contiguous and strided arrays."""
    from ftctl.plan.codecs import _all_finite

    finite = np.array([0.0, -0.0, 1.5, -65504.0, 6e-8], dtype=dtype)
    assert _all_finite(finite) and _all_finite(finite[::2])
    for special in (np.inf, -np.inf, np.nan):
        values = np.append(finite, dtype(special)).astype(dtype)
        assert not _all_finite(values)
        assert _all_finite(values[:-1])
