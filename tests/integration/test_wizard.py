"""``ftctl migrate wizard`` driven by scripted answers (CliRunner input=)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import redis
from click.testing import CliRunner

from ftctl.cli import cli
from ftctl.plan import load_patch, load_plan
from ftctl.schema.model import TagField, VectorField


@pytest.fixture
def products(r: redis.Redis) -> redis.Redis:
    """Index 'products' on 'doc:' with title, category and an HNSW float32 vector."""
    r.execute_command(
        "FT.CREATE", "products", "ON", "HASH", "PREFIX", "1", "doc:", "SCHEMA",
        "title", "TEXT", "category", "TAG",
        "embedding", "VECTOR", "HNSW", "6", "TYPE", "FLOAT32", "DIM", "8", "DISTANCE_METRIC", "COSINE",
    )  # fmt: skip
    rng = np.random.default_rng(5)
    for i in range(20):
        vec = rng.normal(size=8).astype(np.float32).tobytes()
        r.hset(f"doc:{i}", mapping={"title": "t", "category": "c", "embedding": vec})
    return r


def _wizard(redis_url: str, tmp_path: Path, answers: list[str]) -> tuple[str, Path, Path]:
    plan_out, patch_out = tmp_path / "plan.yaml", tmp_path / "patch.yaml"
    result = CliRunner().invoke(
        cli,
        ["--url", redis_url, "migrate", "wizard", "--index", "products",
         "--plan-out", str(plan_out), "--patch-out", str(patch_out)],
        input="\n".join(answers) + "\n",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return result.output, plan_out, patch_out


def test_add_tag_field(products: redis.Redis, redis_url: str, tmp_path: Path) -> None:
    """Menu 1 adds a tag field with a separator; the plan is supported."""
    out, plan_out, patch_out = _wizard(redis_url, tmp_path, ["1", "brand", "tag", "n", "|", "8"])
    assert "Supported: True" in out
    added = load_patch(patch_out).changes.add_fields
    assert isinstance(added[0], TagField) and added[0].attrs.separator == "|"
    assert load_plan(plan_out).merged_target_schema.field("brand") is not None


def test_quantize_to_float16(products: redis.Redis, redis_url: str, tmp_path: Path) -> None:
    """Menu 2 on the vector field, datatype float16, other settings kept."""
    out, plan_out, _ = _wizard(
        redis_url, tmp_path, ["2", "embedding", "", "float16", "", "", "", "8"]
    )
    assert "Current vector config for 'embedding'" in out
    plan = load_plan(plan_out)
    emb = plan.merged_target_schema.field("embedding")
    assert isinstance(emb, VectorField) and emb.attrs.datatype == "float16"
    assert emb.attrs.algorithm == "hnsw"
    assert plan.requires_data_loss_ack


def test_rename_field(products: redis.Redis, redis_url: str, tmp_path: Path) -> None:
    """Menu 4 renames a field: rename_operations lists it."""
    _, plan_out, _ = _wizard(redis_url, tmp_path, ["4", "1", "headline", "8"])
    plan = load_plan(plan_out)
    (rename,) = plan.rename_operations.rename_fields
    assert (rename.old_name, rename.new_name) == ("title", "headline")


def test_change_prefix(products: redis.Redis, redis_url: str, tmp_path: Path) -> None:
    """Menu 6 changes the prefix; preview (7) shows it before finishing."""
    out, plan_out, _ = _wizard(redis_url, tmp_path, ["6", "item:", "7", "8"])
    assert "prefix: 'item:'" in out or "prefix: item:" in out
    assert load_plan(plan_out).rename_operations.change_prefix == "item:"


def test_bad_answers_are_asked_again(products: redis.Redis, redis_url: str, tmp_path: Path) -> None:
    """Bad menu numbers, an existing field name, a vector type, a bad y/n and datatype re-ask."""
    out, plan_out, _ = _wizard(
        redis_url,
        tmp_path,
        [
            "9", "x",                     # bad menu choices
            "1", "title", "has space", "brand",  # existing and invalid names
            "vector", "blob", "tag",      # blocked and unknown types
            "maybe", "n", "||", "",       # bad y/n, bad separator
            "2", "99", "embedding", "", "float8", "bfloat16", "", "", "",
            "8",
        ],
    )  # fmt: skip
    assert out.count("Invalid answer") == 10
    plan = load_plan(plan_out)
    assert plan.merged_target_schema.field("brand") is not None
    emb = plan.merged_target_schema.field("embedding")
    assert isinstance(emb, VectorField) and emb.attrs.datatype == "bfloat16"
