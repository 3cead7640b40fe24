"""`ftctl demo` runs a real migration and its rollback end to end on its own server."""

from __future__ import annotations

from click.testing import CliRunner

from ftctl.cli import cli


def test_demo_migrates_and_rolls_back() -> None:
    """The demo plans float32→float16 + a field, applies, rolls back byte for byte, exits 0."""
    result = CliRunner().invoke(cli, ["demo", "--docs", "300"])
    assert result.exit_code == 0, result.output
    assert "Result: succeeded" in result.output
    assert "Result: rolled_back" in result.output
    assert "now 768 bytes (float16)" in result.output
    assert "back byte for byte" in result.output
