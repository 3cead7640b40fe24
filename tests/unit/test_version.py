"""The one version helper every layer records."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

import pytest

from ftctl import version as version_module
from ftctl.version import UNKNOWN, ftctl_version


def test_version_is_the_installed_distributions() -> None:
    """Plans and journals record the version pip installed."""
    assert ftctl_version() == version("ftctl")


def test_a_source_tree_without_metadata_records_unknown(monkeypatch: pytest.MonkeyPatch) -> None:
    """Running from a checkout that was never installed records a marker, not a crash."""

    def missing(name: str) -> str:
        raise PackageNotFoundError(name)

    monkeypatch.setattr(version_module, "version", missing)
    assert ftctl_version() == UNKNOWN
