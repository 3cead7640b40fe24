"""Plans are tamper-evident and their derived values re-validated (pure, no server)."""

from __future__ import annotations

from pathlib import Path

import msgspec
from planfixtures import FULL_CAPS, make_snapshot, source_schema

from ftctl.plan.build import build_plan
from ftctl.plan.integrity import (
    content_digest,
    derived_problems,
    digest_problem,
    identity_problem,
    seal,
)
from ftctl.plan.models import (
    MigrationPlan,
    ServerIdentity,
    dump_plan,
    load_plan,
    patch_from_builtins,
    plan_digest,
)
from ftctl.schema.model import from_builtins, schema_to_builtins

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures"
SERVER = ServerIdentity(run_id="a" * 40, address="10.0.0.5:6379", source_fingerprint="f" * 64)


def _plan(changes: dict[str, object]) -> MigrationPlan:
    patch = patch_from_builtins({"version": 1, "changes": changes})
    return build_plan(make_snapshot(), patch, FULL_CAPS)


def _edited(plan: MigrationPlan, old: str, new: str) -> MigrationPlan:
    text = dump_plan(plan).decode()
    assert old in text
    return load_plan(text.replace(old, new, 1).encode())


TO_INT8 = {"update_fields": [{"name": "embedding", "attrs": {"datatype": "int8"}}]}


def test_a_sealed_plan_matches_its_digest_after_a_yaml_round_trip() -> None:
    """The digest covers everything but itself, the server included, and survives the file."""
    sealed = seal(_plan(TO_INT8), SERVER)
    assert sealed.digest.startswith("sha256:") and sealed.server == SERVER
    again = load_plan(dump_plan(sealed))
    assert digest_problem(again) is None and again.digest == content_digest(again)
    assert derived_problems(again) == []


def test_any_edit_breaks_the_digest() -> None:
    """``lossy: false``, a changed warning or another server identity: all edits."""
    sealed = seal(_plan(TO_INT8), SERVER)
    for old, new in [
        ("lossy: true", "lossy: false"),
        ("Index downtime", "Index Downtime"),
        ("10.0.0.5:6379", "10.0.0.6:6379"),
    ]:
        problem = digest_problem(_edited(sealed, old, new))
        assert problem is not None and problem.startswith("the plan was edited after it was made")


def test_lossiness_is_recomputed_from_the_schemas() -> None:
    """``lossy: false`` on float32 → int8 contradicts the conversion, whatever the digest."""
    edited = _edited(seal(_plan(TO_INT8), None), "lossy: true", "lossy: false")
    assert not edited.requires_data_loss_ack
    (problem,) = derived_problems(edited)
    assert problem == (
        "vector_changes 'embedding' float32→int8 says lossy: false, but that conversion is lossy"
    )


def test_a_datatype_change_the_plan_does_not_list_is_a_contradiction() -> None:
    """Schemas that re-encode a field with no vector change listed (RedisVL writes none):
    applying would create the index over bytes of the old datatype."""
    plan = _plan(TO_INT8)
    emptied = msgspec.structs.replace(plan, vector_changes=[])
    (problem,) = derived_problems(emptied)
    assert "change vector field 'embedding' from float32 to int8" in problem
    assert "vector_changes does not list it" in problem


def test_supported_true_on_a_blocked_plan_is_refused_by_its_own_schemas() -> None:
    """A dims change is blocked; editing ``supported: true`` (with or without clearing the
    reasons) contradicts the plan's schemas."""
    plan = _plan({"update_fields": [{"name": "embedding", "attrs": {"dims": 8}}]})
    assert not plan.supported
    forged = _edited(plan, "supported: false", "supported: true")
    assert "supported: true but lists blocked reasons" in derived_problems(forged)[0]
    cleared = msgspec.structs.replace(
        forged,
        diff_classification=msgspec.structs.replace(forged.diff_classification, blocked_reasons=[]),
    )
    (problem,) = derived_problems(cleared)
    assert problem.startswith("diff_classification says supported: true, but the plan's own")
    assert "vector dims change 4 → 8" in problem


def test_renames_and_target_schema_plans_revalidate_clean() -> None:
    """A field rename with a datatype change, and a target-schema plan: no false alarm."""
    renamed = _plan(
        {
            "rename_fields": [{"old_name": "embedding", "new_name": "vec"}],
            "update_fields": [{"name": "vec", "attrs": {"datatype": "float16"}}],
        }
    )
    assert renamed.supported and derived_problems(renamed) == []
    raw = schema_to_builtins(source_schema())
    raw["fields"][3]["attrs"]["datatype"] = "float16"
    by_target = build_plan(make_snapshot(), from_builtins(raw), FULL_CAPS)
    assert [c.target_datatype for c in by_target.vector_changes] == ["float16"]
    assert by_target.requested_changes is None and derived_problems(by_target) == []


def test_redisvl_plans_carry_no_seal_and_revalidate_clean() -> None:
    """The guide's plan has neither digest nor server: nothing to check there (apply warns),
    its values agree with its schemas, and an unsealed plan's file and journal digest are
    what earlier releases wrote (no ``server:``/``digest:`` keys)."""
    plan = load_plan(FIXTURES / "plans" / "guide_plan.yaml")
    assert plan.digest == "" and plan.server is None
    assert digest_problem(plan) is None and derived_problems(plan) == []
    text = dump_plan(plan).decode()
    assert "digest:" not in text and "server:" not in text
    assert plan_digest(plan) == plan_digest(load_plan(text.encode()))


def test_same_run_id_is_the_same_server() -> None:
    """Whatever else differs, an equal run_id is the server the plan was made against."""
    live = msgspec.structs.replace(SERVER, address="elsewhere:1")
    assert identity_problem(SERVER, live, sampled_keys_exist=False) is None


def test_a_restart_is_the_same_server_only_with_its_address_index_and_keys() -> None:
    """Another run_id (a restart) passes at the same address with the same source index
    and the sampled keys present; another address, another definition or missing keys is
    another server, each difference named."""
    restarted = msgspec.structs.replace(SERVER, run_id="b" * 40)
    assert identity_problem(SERVER, restarted, sampled_keys_exist=True) is None
    moved = msgspec.structs.replace(restarted, address="10.0.0.9:6379")
    problem = identity_problem(SERVER, moved, sampled_keys_exist=True)
    assert problem is not None and problem.startswith(
        "the plan was made against another server (run_id aaaaaaaaaaaa…, this one is bbbbbbbbbbbb…)"
    )
    assert "made against 10.0.0.5:6379, this server is 10.0.0.9:6379" in problem
    copy = msgspec.structs.replace(restarted, source_fingerprint="0" * 64)
    problem = identity_problem(SERVER, copy, sampled_keys_exist=False)
    assert problem is not None
    assert "another definition" in problem and "sampled do not all exist" in problem
