"""The import contracts of pyproject.toml ([tool.importlinter]) hold, under pytest too.

``make lint`` runs the same check as ``lint-imports``; this test keeps a plain ``pytest``
run (what developers run most) from passing with a layering violation or an import cycle.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest
from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parents[2]


def test_import_contracts_are_kept(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """cli → orchestration → drivers → steps → journal | plan → schema, sans-IO steps, no
    import cycles: every contract in pyproject.toml is kept (its report is the failure)."""
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(sys, "path", list(sys.path))  # lint_imports prepends the cwd
    # lint_imports configures logging with dictConfig, which disables every logger that
    # exists (ftctl's among them): later tests in this process must still see their lines.
    loggers = [x for x in logging.root.manager.loggerDict.values() if isinstance(x, logging.Logger)]
    enabled = [x for x in loggers if not x.disabled]
    try:
        status = lint_imports(
            config_filename=str(ROOT / "pyproject.toml"), no_cache=True, no_logo=True
        )
    finally:
        for logger in enabled:
            logger.disabled = False
    assert status == 0, capsys.readouterr().out
