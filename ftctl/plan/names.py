"""Public names of an index (pure): the names users know first, ftctl's generated ones last.

An online migration builds its shadow under a generated name (``<name>__ftctl_<hex>``, a
rollback's ``<name>__ftctl_rb<hex>``) and moves the public names onto it as aliases, which
ftctl's schema history records. Listings and batch patterns show and match those names; the
real name is kept beside them (it is what FT._LIST and the journals use).
"""

from __future__ import annotations

from collections.abc import Sequence

GENERATED_INFIX = "__ftctl_"
"""In the name of every index ftctl creates under a name nobody chose (shadow, cut-back)."""


def is_generated(name: str) -> bool:
    """Whether ftctl made up ``name`` (a shadow or cut-back index, never a user's name)."""
    return GENERATED_INFIX in name


def public_names(index: str, aliases: Sequence[str]) -> list[str]:
    """The names of ``index`` in the order users know them: its own name first unless ftctl
    generated it, then the recorded aliases, a generated own name last."""
    own = [] if is_generated(index) and aliases else [index]
    rest = [a for a in dict.fromkeys(aliases) if a != index]
    return [*own, *rest] + ([index] if not own else [])


def public_name(index: str, aliases: Sequence[str]) -> str:
    """The one name to show for ``index`` (see :func:`public_names`)."""
    return public_names(index, aliases)[0]


__all__ = ["GENERATED_INFIX", "is_generated", "public_name", "public_names"]
