"""Plan warnings say what RedisVL's users look for."""

from __future__ import annotations

from ftctl.plan.wording import guide_warnings


def test_indexing_failures_are_hash_indexing_failures() -> None:
    """The indexing-failures warning names "hash indexing failure(s)" (with the count
    grouped), keeping ftctl's explanation."""
    (out,) = guide_warnings(
        ["Source index 'docs' has 1234 indexing failures: those documents are enumerated"]
    )
    assert out == (
        "Source index 'docs' has 1,234 hash indexing failure(s): those documents are enumerated"
    )
    assert "hash indexing failure" in out


def test_lossy_warning_says_apply_runs_it() -> None:
    """A lossy quantization warning says apply runs the reviewed plan and only batch-apply
    asks for --accept-data-loss; other warnings are left as they are."""
    lossy = "Lossy quantization of 'emb' float32 → float16: recall@10 0.990; apply needs --accept-data-loss"
    other = "Index downtime is required: 'docs' is unavailable"
    assert guide_warnings([other, lossy]) == [
        other,
        "Lossy quantization of 'emb' float32 → float16: recall@10 0.990; reviewed here, apply "
        "runs it (batch-apply asks for --accept-data-loss)",
    ]
