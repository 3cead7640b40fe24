"""What a connected server supports, as found by probing it (never by version strings)."""

from __future__ import annotations

import msgspec


class Capabilities(msgspec.Struct, frozen=True, kw_only=True):
    """The result of a capability probe; recorded in plans."""

    search_version: int = 0
    """MODULE LIST ``ver`` of the search module (e.g. 21005 for 2.10.5); 0 when absent."""
    json: bool = False
    vector_types: tuple[str, ...] = ()
    """Vector TYPEs a throwaway FT.CREATE accepted, upper case (FLOAT32, FLOAT16, …)."""
    algorithms: tuple[str, ...] = ()
    """Vector algorithms a throwaway FT.CREATE accepted (FLAT, HNSW, SVS-VAMANA)."""
    field_types: tuple[str, ...] = ()
    """Non-vector field types accepted (TEXT, TAG, NUMERIC, GEO, GEOSHAPE)."""
    field_options: tuple[str, ...] = ()
    """Field options accepted (INDEXMISSING, INDEXEMPTY, WITHSUFFIXTRIE)."""

    @property
    def search_release(self) -> str:
        """The search module's version as released (``2.10.5`` for 21005; ``8.2.0`` for
        80200), or ``"unknown"``."""
        v = self.search_version
        return f"{v // 10000}.{v // 100 % 100}.{v % 100}" if v else "unknown"

    def has_vector_type(self, datatype: str) -> bool:
        return datatype.upper() in self.vector_types

    def has_algorithm(self, algorithm: str) -> bool:
        return algorithm.upper().replace("_", "-") in self.algorithms

    def has_field_type(self, field_type: str) -> bool:
        return field_type.upper() in self.field_types
