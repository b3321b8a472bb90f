"""The registry on both backends: promotion needs passed gates and every signature from distinct,
non-author signers; rollback restores; concurrent promotions leave exactly one production version."""

from __future__ import annotations

import multiprocessing as mp
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from medops.audit import AuditFilter, list_events, verify_chain
from medops.errors import AuthenticationFailed, InvalidInput, InvalidTransition, NotFound, PermissionDenied
from medops.evaluation.governing import governing_policy
from medops.evaluation.records import list_for, record
from medops.identity import Role
from medops.registry import approvals, stages, transfer, versions
from medops.store.schema import ModelVersion
from medops.training import Tracker
from medops.workspace import Workspace
from tests.factories import COHORT_FEATURES as FEATURES
from tests.factories import LOGISTIC, PASSWORD, POLICY, cohort, evaluate_run, event, govern, processes, train_run

pytestmark = pytest.mark.usefixtures("pseudonym_key")


def _sign_both(ws: Workspace, version: int) -> None:
    approvals.approve(ws, ("readmission", version), "carol", PASSWORD, "clinical_reviewer")
    approvals.approve(ws, ("readmission", version), "victor", PASSWORD, "validator")


def _stage_of(ws: Workspace, version: int) -> str:
    return versions.get(ws, "readmission", version).stage


def test_promotion_needs_gates_and_every_signature_from_distinct_non_authors(registry: tuple[Workspace, str]) -> None:
    ws, run = registry
    v1 = versions.register(ws, run, "readmission", actor="alice")
    assert (v1.version, v1.stage, v1.required_approvals) == (1, "none", ["clinical_reviewer", "validator"])
    assert v1.evaluation_id is not None
    with pytest.raises(InvalidTransition, match="no clinical_reviewer approval; no validator approval"):
        stages.promote(ws, "readmission", 1, "production", actor="ming", reason="go live")
    approvals.approve(ws, ("readmission", 1), "carol", PASSWORD, "clinical_reviewer")
    with pytest.raises(InvalidTransition, match="no validator approval"):
        stages.promote(ws, "readmission", 1, "production", actor="ming", reason="go live")
    ws.users.grant("admin", "alice", Role.VALIDATOR, reason="cover")  # the author holds the role now: still refused
    with pytest.raises(PermissionDenied, match="the author can't sign"):
        approvals.approve(ws, ("readmission", 1), "alice", PASSWORD, "validator")
    ws.users.grant("admin", "carol", Role.VALIDATOR, reason="cover")  # one person, two roles: she may fill one
    with pytest.raises(PermissionDenied, match="one person fills one role"):
        approvals.approve(ws, ("readmission", 1), "carol", PASSWORD, "validator")
    with pytest.raises(AuthenticationFailed):
        approvals.approve(ws, ("readmission", 1), "victor", "wrong-password", "validator")
    assert _stage_of(ws, 1) == "none"
    with pytest.raises(PermissionDenied):  # a data scientist registers; she does not promote
        stages.promote(ws, "readmission", 1, "staging", actor="alice", reason="try")
    approvals.approve(ws, ("readmission", 1), "victor", PASSWORD, "validator")
    moves = stages.promote(ws, "readmission", 1, "production", actor="ming", reason="go live")
    assert [(m.name, m.version) for m in moves] == [("production", 1)] and _stage_of(ws, 1) == "production"
    decided = approvals.decisions(ws, ("readmission", 1))
    assert [(d.role, d.username, d.valid) for d in decided] == [
        ("clinical_reviewer", "carol", True),
        ("validator", "victor", True),
    ]
    actions = [e.action for e in list_events(ws.db, AuditFilter(entity_type="model"), limit=None, newest_first=False)]
    assert actions.count("model.approve.denied") == 2 and actions[-1] == "model.production"
    assert actions.count("model.production.refused") == 2  # refusals are on the record too
    event = list_events(ws.db, AuditFilter(action="model.production"), limit=1)[0]
    policy = governing_policy(ws)
    assert policy is not None
    assert event.after["evidence"] == {
        "evaluation": v1.evaluation_id,
        "policy_sha256": policy.sha256,
        "project_sha256": policy.project_sha256,
    }


def test_a_looser_policy_never_unlocks_production(registry: tuple[Workspace, str], tmp_path: Path) -> None:
    """Re-evaluating a failed run under a looser policy file until it passes gets it nowhere."""
    ws, _run = registry
    tracker = Tracker(ws)
    weak = train_run(tracker, tmp_path, "weak", cohort(1200, biased=True), LOGISTIC, ["frailty_seen"])
    strict = {"policy": {"metrics": {"auroc": {"min": 0.95}}, "prerequisites": []}, "robustness": {}}
    govern(ws, **strict)
    failed = record(ws, evaluate_run(tracker, weak, **strict), "", "", "", actor="victor")
    assert failed.governing and not failed.passed
    loose = {"policy": {"metrics": {"auroc": {"min": 0.1}}, "prerequisites": []}, "robustness": {}}
    explored = record(ws, evaluate_run(tracker, weak, **loose), "", "", "", actor="victor")  # another policy file
    assert explored.passed and not explored.governing
    assert list_for(ws, weak)[0].id == explored.id  # the newest evaluation is the loose one
    version = versions.register(ws, weak, "readmission", actor="alice")
    assert version.evaluation_id == failed.id  # bound to the governing one, not the newest
    _sign_both(ws, version.version)
    with pytest.raises(InvalidTransition, match=f"its evaluation {failed.short} failed"):
        stages.promote(ws, "readmission", version.version, "production", actor="ming", reason="go")
    chosen = versions.register(ws, weak, "readmission", actor="alice", evaluation=explored.id)
    assert chosen.evaluation_id == explored.id
    _sign_both(ws, chosen.version)
    with pytest.raises(InvalidTransition, match="exploratory evaluation can't gate production"):
        stages.promote(ws, "readmission", chosen.version, "production", actor="ming", reason="go")
    govern(ws, **loose)  # the reviewed file itself is loosened: old evaluations no longer count
    with pytest.raises(InvalidTransition, match="governing policy changed since its evaluation"):
        stages.promote(ws, "readmission", version.version, "production", actor="ming", reason="go")
    with pytest.raises(InvalidInput, match="is of run"):
        versions.register(ws, _run, "readmission", actor="alice", evaluation=explored.id)
    from sqlalchemy import update

    from medops.errors import MedopsError
    from medops.store.schema import Evaluation

    with pytest.raises(MedopsError), ws.db.write() as session:  # SQL can't turn exploration into policy either
        session.execute(update(Evaluation).where(Evaluation.id == explored.id).values(governing=True))
    assert not list_for(ws, weak)[0].governing


def test_the_policy_names_who_signs_not_the_author(registry: tuple[Workspace, str]) -> None:
    ws, run = registry
    ws.users.grant("admin", "ming", Role.VALIDATOR, reason="cover")
    # The author asks for an ML engineer's signature only: the policy's roles stay required.
    version = versions.register(ws, run, "readmission", actor="alice", extra_approvals=["ml_engineer"])
    assert version.required_approvals == ["clinical_reviewer", "validator", "ml_engineer"]
    approvals.approve(ws, ("readmission", 1), "ming", PASSWORD, "ml_engineer")
    with pytest.raises(InvalidTransition, match="no clinical_reviewer approval; no validator approval"):
        stages.promote(ws, "readmission", 1, "production", actor="ming", reason="alone")
    govern(ws, policy={**POLICY["policy"], "approvals": ["clinical_reviewer", "validator", "admin"]})
    with pytest.raises(InvalidTransition, match="no admin approval"):  # a role the policy added later counts too
        stages.promote(ws, "readmission", 1, "production", actor="ming", reason="alone")


def test_rollback_never_restores_a_rejected_version(registry: tuple[Workspace, str]) -> None:
    ws, run = registry
    for _ in range(2):
        _sign_both(ws, versions.register(ws, run, "readmission", actor="alice").version)
    stages.promote(ws, "readmission", 1, "production", actor="ming", reason="first")
    stages.promote(ws, "readmission", 2, "production", actor="ming", reason="second")
    approvals.reject(ws, ("readmission", 2), "victor", PASSWORD, "validator", "miscalibrated for women")
    stages.rollback(ws, "readmission", actor="ming", reason="v2 rejected")
    assert (_stage_of(ws, 1), _stage_of(ws, 2)) == ("production", "archived")
    with pytest.raises(InvalidTransition, match="readmission:2 can't return to production: validator rejected it"):
        stages.rollback(ws, "readmission", actor="ming", reason="undo the rollback")
    assert _stage_of(ws, 1) == "production"
    refused = list_events(ws.db, AuditFilter(action="model.rollback.refused"), limit=None)
    assert len(refused) == 1 and "validator rejected it" in (refused[0].reason or "")


def test_a_rejection_landing_during_promote_is_seen(
    registry: tuple[Workspace, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ws, run = registry
    _sign_both(ws, versions.register(ws, run, "readmission", actor="alice").version)
    real = ws.users.authorized

    def reject_first(actor: str, action: str, *args: Any, **kwargs: Any) -> Any:
        if action == "model.production":  # the rejection commits after promote was called, before its write
            approvals.reject(ws, ("readmission", 1), "victor", PASSWORD, "validator", "late finding")
        return real(actor, action, *args, **kwargs)

    monkeypatch.setattr(ws.users, "authorized", reject_first)
    with pytest.raises(InvalidTransition, match="validator rejected it"):
        stages.promote(ws, "readmission", 1, "production", actor="ming", reason="go live")
    assert _stage_of(ws, 1) == "none"


def test_failed_gates_and_a_rejection_block_production(registry: tuple[Workspace, str], tmp_path: Path) -> None:
    ws, _run = registry
    tracker = Tracker(ws)
    weak = train_run(tracker, tmp_path, "weak", cohort(1200, biased=True), LOGISTIC, ["frailty_seen"])
    strict = {"policy": {"metrics": {"auroc": {"min": 0.95}}, "prerequisites": []}, "robustness": {}}
    govern(ws, **strict)  # the reviewed policy, at the time of this evaluation
    failed = evaluate_run(tracker, weak, **strict)
    assert record(ws, failed, "", "", "", actor="victor").governing
    govern(ws)
    version = versions.register(ws, weak, "readmission", actor="alice").version
    _sign_both(ws, version)
    with pytest.raises(InvalidTransition, match="failed: auroc ≥ 0.95"):
        stages.promote(ws, "readmission", version, "production", actor="ming", reason="go live")
    unevaluated = train_run(tracker, tmp_path, "weak", cohort(1000, biased=False, seed=4), LOGISTIC, FEATURES)
    other = versions.register(ws, unevaluated, "readmission", actor="alice").version
    _sign_both(ws, other)
    with pytest.raises(InvalidTransition, match="registered without an evaluation"):
        stages.promote(ws, "readmission", other, "production", actor="ming", reason="go live")
    run_ok = versions.register(ws, _run, "readmission", actor="alice").version
    approvals.approve(ws, ("readmission", run_ok), "carol", PASSWORD, "clinical_reviewer")
    approvals.reject(ws, ("readmission", run_ok), "victor", PASSWORD, "validator", "subgroup sizes too small")
    with pytest.raises(InvalidTransition, match="validator rejected it"):
        stages.promote(ws, "readmission", run_ok, "production", actor="ming", reason="go live")
    with pytest.raises(InvalidInput, match="needs a reason"):
        approvals.reject(ws, ("readmission", run_ok), "victor", PASSWORD, "validator", " ")


def test_promoting_archives_the_previous_and_rollback_restores_it(registry: tuple[Workspace, str]) -> None:
    ws, run = registry
    for _ in range(2):
        number = versions.register(ws, run, "readmission", actor="alice").version
        _sign_both(ws, number)
    stages.promote(ws, "readmission", 1, "production", actor="ming", reason="first")
    before_second = versions.get(ws, "readmission", 1).created_at + timedelta(days=1)
    moves = stages.promote(ws, "readmission", 2, "production", actor="ming", reason="better")
    assert [(m.name, m.version, m.previous) for m in moves] == [("archived", 1, None), ("production", 2, 1)]
    assert (_stage_of(ws, 1), _stage_of(ws, 2)) == ("archived", "production")
    with pytest.raises(InvalidTransition, match="is in production: it leaves by"):
        stages.promote(ws, "readmission", 2, "staging", actor="ming", reason="demote")
    with pytest.raises(PermissionDenied):  # a clinical reviewer signs; she does not ship bundles out
        transfer.export(ws, "readmission:2", ws.settings.home.parent / "out.medops", actor="carol")
    assert not (ws.settings.home.parent / "out.medops").exists()
    with pytest.raises(InvalidTransition, match="archived: it can't return to production"):
        stages.promote(ws, "readmission", 1, "production", actor="ming", reason="again")
    from medops.services.projects.evaluate import production_run

    assert production_run(ws, "readmission", "f" * 32) == run  # the champion a new evaluation compares with
    assert production_run(ws, "readmission", run) is None and production_run(ws, "other", "f" * 32) is None
    moves = stages.rollback(ws, "readmission", actor="ming", reason="alarm on v2")
    assert [(m.name, m.version) for m in moves] == [("archived", 2), ("production", 1)]
    assert (_stage_of(ws, 1), _stage_of(ws, 2)) == ("production", "archived")
    events = list_events(ws.db, AuditFilter(action="model.rollback"), limit=None)
    assert len(events) == 1 and events[0].reason == "alarm on v2" and events[0].after["production"] == 1
    history = stages.history(ws, "readmission")
    assert [(h.name, h.version) for h in history][-2:] == [("archived", 2), ("production", 1)]
    first = history[0]
    assert stages.holder_at(ws, "readmission", "production", first.at) is not None
    assert stages.holder_at(ws, "readmission", "production", first.at - timedelta(seconds=1)) is None
    assert before_second > first.at
    stages.set_alias(ws, "readmission", "champion", 1, actor="ming", reason="current best")
    stages.set_alias(ws, "readmission", "challenger", 2, actor="ming", reason="shadow")
    assert versions.get(ws, "readmission", 1).aliases == ["champion"]
    with pytest.raises(InvalidInput, match="can't be an alias"):
        stages.set_alias(ws, "readmission", "production", 2, actor="ming", reason="no")


def test_a_version_is_immutable_but_for_its_stage(registry: tuple[Workspace, str]) -> None:
    from sqlalchemy import delete, update

    from medops.errors import MedopsError

    ws, run = registry
    v1 = versions.register(ws, run, "readmission", actor="alice", tags={"ticket": "CAB-118"}, description="first")
    assert (v1.tags, v1.description) == ({"ticket": "CAB-118"}, "first")
    for change in (
        update(ModelVersion).values(artifact_sha256="0" * 64),
        update(ModelVersion).values(run_id=None),
        update(ModelVersion).values(tags="{}"),
        delete(ModelVersion),
    ):
        with pytest.raises(MedopsError), ws.db.write() as session:  # refused by the database itself
            session.execute(change)
    assert versions.get(ws, "readmission", 1) == v1


def test_bad_input_changes_nothing(registry: tuple[Workspace, str]) -> None:
    ws, run = registry
    with pytest.raises(NotFound, match="no registered model 'nope'"):
        stages.promote(ws, "nope", 1, "staging", actor="ming", reason="x")
    versions.register(ws, run, "readmission", actor="alice")
    with pytest.raises(NotFound, match="has no version 7"):
        approvals.approve(ws, ("readmission", 7), "carol", PASSWORD, "clinical_reviewer")
    with pytest.raises(InvalidInput, match="stage 'live' is not known"):
        stages.promote(ws, "readmission", 1, "live", actor="ming", reason="x")
    with pytest.raises(InvalidInput, match="not a model name"):
        versions.parse_ref("Readmission:1")
    with pytest.raises(InvalidInput, match="not a role"):
        versions.register(ws, run, "readmission", actor="alice", extra_approvals=["cardiologist"])
    with pytest.raises(InvalidTransition, match="no production version to roll back"):
        stages.rollback(ws, "readmission", actor="ming", reason="x")
    assert [v.stage for v in versions.versions(ws, "readmission")] == ["none"]


def _promoter(home: str, version: int, start: mp.synchronize.Event) -> None:
    ws = Workspace.open(Path(home))
    start.wait()
    stages.promote(ws, "readmission", version, "production", actor="ming", reason=f"worker {version}")
    ws.close()


@pytest.mark.slow
def test_eight_processes_promoting_at_once_leave_one_production_version(registry: tuple[Workspace, str]) -> None:
    ws, run = registry
    for _ in range(8):
        _sign_both(ws, versions.register(ws, run, "readmission", actor="alice").version)
    start = event()
    procs = processes(_promoter, [(str(ws.settings.home), v, start) for v in range(1, 9)])
    start.set()
    for p in procs:
        p.join(timeout=300)
    assert [p.exitcode for p in procs] == [0] * 8  # serialized: each promotion archived the one before
    with ws.db.read() as session:
        staged = dict(session.execute(select(ModelVersion.version, ModelVersion.stage)).all())
    assert sorted(staged.values()) == ["archived"] * 7 + ["production"]
    entered = [m for m in stages.history(ws, "readmission") if m.name == "production"]
    assert len(entered) == 8 and entered[0].previous is None
    for earlier, later in zip(entered, entered[1:], strict=False):
        assert later.previous == earlier.version  # no lost update: each saw the one before it
    assert staged[entered[-1].version] == "production"
    assert len(list_events(ws.db, AuditFilter(action="model.production"), limit=None)) == 8
    assert verify_chain(ws.db).ok
