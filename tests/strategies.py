"""Hypothesis strategies shared by the unit tests (import as ``from strategies import ...``)."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

MAX_DIMS = 16
MAX_ROWS = 8


def dims() -> st.SearchStrategy[int]:
    """Vector dimensions, small enough to keep examples fast."""
    return st.integers(min_value=1, max_value=MAX_DIMS)


def shapes() -> st.SearchStrategy[tuple[int, int]]:
    """``(rows, dims)`` of a batch of vectors, including the empty batch."""
    return st.tuples(st.integers(min_value=0, max_value=MAX_ROWS), dims())


def float_batches(
    dtype: type[np.floating] = np.float32,
    *,
    min_value: float | None = None,
    max_value: float | None = None,
    allow_infinity: bool = False,
) -> st.SearchStrategy[np.ndarray]:
    """``(rows, dims)`` arrays of non-NaN floats of ``dtype`` (subnormals and ±0 included)."""
    # bounds rounded to the dtype, which hypothesis requires to be exactly representable
    cast = np.dtype(dtype).type
    elements = st.floats(
        min_value=None if min_value is None else float(cast(min_value)),
        max_value=None if max_value is None else float(cast(max_value)),
        allow_nan=False,
        allow_infinity=allow_infinity and min_value is None and max_value is None,
        width={2: 16, 4: 32, 8: 64}[np.dtype(dtype).itemsize],  # type: ignore[arg-type]  # Literal widths, picked by item size
    )
    return hnp.arrays(dtype, shapes(), elements=elements)


def float32_bit_patterns() -> st.SearchStrategy[int]:
    """Any 32-bit pattern: every float32, NaN payloads and subnormals included."""
    return st.integers(min_value=0, max_value=0xFFFFFFFF)


def non_nan_half_bit_patterns(exponent_mask: int) -> st.SearchStrategy[int]:
    """16-bit patterns that are not NaN for a format whose exponent bits are ``exponent_mask``."""
    mantissa_mask = ~exponent_mask & 0x7FFF

    def is_nan(bits: int) -> bool:
        return (bits & exponent_mask) == exponent_mask and (bits & mantissa_mask) != 0

    return st.integers(min_value=0, max_value=0xFFFF).filter(lambda b: not is_nan(b))


BFLOAT16_EDGE_FLOAT32_BITS = (
    0x00000000,  # +0
    0x80000000,  # -0
    0x3F800000,  # 1.0
    0x3F808000,  # tie, kept half even → down
    0x3F818000,  # tie, kept half odd → up
    0x3F80FFFF,  # just below the next bfloat16 → up
    0xBF818000,  # negative tie, odd → up in magnitude
    0x00000001,  # smallest subnormal → 0
    0x00008000,  # subnormal tie, even → 0
    0x00018000,  # subnormal tie, odd → up
    0x007FFFFF,  # largest subnormal → rounds into the normals
    0x7F7F7FFF,  # just below the tie under bfloat16's max → max finite
    0x7F7F8000,  # tie at bfloat16's max, odd → inf
    0x7F7FFFFF,  # float32 max → inf
    0xFF7FFFFF,  # -float32 max → -inf
    0x7F800000,  # +inf
    0xFF800000,  # -inf
    0x7FC00000,  # quiet NaN
    0x7F800001,  # signalling NaN whose payload is all in the dropped half
    0xFFFFFFFF,  # negative NaN, full payload
)
"""float32 bit patterns where bfloat16 rounding is easy to get wrong."""


def url_passwords() -> st.SearchStrategy[str]:
    """Passwords as a user might paste them into a URL: any printable ASCII but whitespace
    (which URL parsers strip), reserved characters such as ``@ : / ? # & %`` included."""
    return st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=24)


def index_names() -> st.SearchStrategy[str]:
    """Any string Redis accepts as an index name: ordinary ones, path-like ones, long ones,
    control characters and lone surrogates included."""
    path_like = st.lists(st.sampled_from(["..", ".", "", "a", "/", "batch", "-", "~"]), max_size=6)
    return st.one_of(
        st.from_regex(r"[A-Za-z0-9_.-]{1,120}", fullmatch=True),
        path_like.map("/".join),
        path_like.map("".join),
        st.text(max_size=300),
        st.text(min_size=1, max_size=3).map(lambda s: s * 2000),
    )
