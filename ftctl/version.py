"""The installed ftctl version, recorded in plans, journals and schema history.

A leaf module (it imports only the standard library) so every layer can record the version
without importing an orchestration module for it.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

UNKNOWN = "0+unknown"
"""Recorded when ftctl runs from a source tree that was never installed (no metadata)."""


def ftctl_version() -> str:
    """The version of the installed ``ftctl`` distribution, or :data:`UNKNOWN`."""
    try:
        return version("ftctl")
    except PackageNotFoundError:
        return UNKNOWN
