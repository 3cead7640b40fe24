"""The pause flag file: created once, removed once, never followed."""

from __future__ import annotations

from pathlib import Path

from ftctl.journal.pause import PAUSE_NAME, clear_pause, pause_requested, request_pause


def test_the_flag_is_created_and_removed_once(tmp_path: Path) -> None:
    """request_pause makes an empty regular file (False when it was there), clear_pause
    removes it (False when there was none)."""
    assert not pause_requested(tmp_path)
    assert request_pause(tmp_path) and not request_pause(tmp_path)
    flag = tmp_path / PAUSE_NAME
    assert flag.is_file() and flag.read_bytes() == b"" and pause_requested(tmp_path)
    assert clear_pause(tmp_path) and not clear_pause(tmp_path)
    assert not pause_requested(tmp_path)


def test_a_link_named_pause_counts_and_is_removed_not_followed(tmp_path: Path) -> None:
    """Any entry named PAUSE pauses (even a dangling link, e.g. made by hand); removing it
    removes the link, never what it points to."""
    target = tmp_path / "elsewhere"
    target.write_text("keep me")
    journal = tmp_path / "journal"
    journal.mkdir()
    (journal / PAUSE_NAME).symlink_to(target)
    assert pause_requested(journal)
    assert clear_pause(journal)
    assert target.read_text() == "keep me" and not pause_requested(journal)
    (journal / PAUSE_NAME).symlink_to(tmp_path / "missing")
    assert pause_requested(journal)


def test_a_journal_directory_that_is_gone_is_not_paused(tmp_path: Path) -> None:
    """No directory (a backup dir moved away mid-run) reads as no flag, not as an error."""
    assert not pause_requested(tmp_path / "gone")
    (tmp_path / "file").write_text("")
    assert not pause_requested(tmp_path / "file")
