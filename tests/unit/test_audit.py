"""Read-only journal views (``ftctl.audit``)."""

from __future__ import annotations

from pathlib import Path

from ftctl.audit import inspect
from ftctl.journal import Journal
from ftctl.journal.events import RunStarted


def test_inspect_masks_a_url_an_older_release_recorded_in_clear(tmp_path: Path) -> None:
    """A journal written before ``?password=`` was masked shows its URL masked in the
    inspect view; the file itself is never rewritten."""
    clear = "redis://db.example:6379/0?username=ops&password=S3cr3t-Zq9"
    first = RunStarted(
        run_id="run-1",
        kind="apply",
        index_name="products",
        plan_yaml="{}",
        plan_sha256="0" * 64,
        mode="drop_recreate",
        redis_url=clear,
    )
    Journal.create(tmp_path / "products", first=first).close()
    (timeline,) = inspect(tmp_path)
    details = " ".join(row.detail for row in timeline.rows)
    assert "redis://db.example:6379/0?username=***&password=***" in details
    assert "S3cr3t-Zq9" not in details
    assert b"S3cr3t-Zq9" in (tmp_path / "products" / "journal.log").read_bytes()
