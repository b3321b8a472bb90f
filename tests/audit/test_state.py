"""Governed rows edited in SQL no longer match the trail: `audit verify --state` names each one."""

from __future__ import annotations

import pytest

from medops.audit.state_check import CHANGED, UNEXPLAINED, VANISHED, check_state
from medops.audit.verify import verify_chain
from medops.errors import AuthenticationFailed, IntegrityError, PermissionDenied
from medops.identity import Role
from medops.registry import approvals, stages, versions
from medops.workspace import Workspace
from tests.audit.tamper import tampering
from tests.factories import PASSWORD


def _problems(ws: Workspace) -> dict[str, str]:
    result = check_state(ws.db)
    return {p.to_json()["entity"]: p.kind for p in result.problems}  # type: ignore[misc]


def test_a_workspace_changed_only_through_medops_is_explained(team: Workspace) -> None:
    team.tokens.create("alice", "notebook")
    team.users.grant("admin", "carol", Role.VALIDATOR, reason="covering")
    with pytest.raises(AuthenticationFailed):
        team.users.check_password("ghost", "nope", purpose="login")  # an event on an entity with no row
    result = check_state(team.db)
    assert result.ok, result.problems
    assert result.checked >= 5 and not result.unhashed
    assert verify_chain(team.db).ok  # the state field is part of each hash


def test_sql_edits_of_users_roles_and_tokens_are_named(team: Workspace) -> None:
    _, secret = team.tokens.create("alice", "notebook")
    token_id = secret.split("_")[1]
    team.tokens.revoke("alice", token_id, reason="laptop lost")
    with tampering(team) as db:
        alice = db.sql("SELECT id FROM users WHERE username = ?", "alice")[0][0]
        db.sql("INSERT INTO user_roles (user_id, role) VALUES (?, ?)", alice, "admin")  # sock-puppet admin
        db.sql("UPDATE users SET password_hash = ? WHERE username = ?", "$argon2id$forged", "carol")
        db.sql("UPDATE api_tokens SET revoked_at = NULL WHERE id = ?", token_id)  # revocation undone
        db.sql(
            "INSERT INTO users (username, full_name, password_hash, active, failed_logins, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            "mallory",
            "Mallory",
            "x",
            True,
            0,
            "2026-01-01 00:00:00",
        )
    found = _problems(team)
    assert found == {
        "user:alice": CHANGED,
        "user:carol": CHANGED,
        f"token:{token_id}": CHANGED,
        "user:mallory": UNEXPLAINED,
    }
    assert verify_chain(team.db).ok  # the chain alone saw nothing: the trail itself was not touched


def test_a_deleted_token_row_is_named(team: Workspace) -> None:
    _, secret = team.tokens.create("alice", "notebook")
    token_id = secret.split("_")[1]
    with tampering(team) as db:
        db.sql("DELETE FROM api_tokens WHERE id = ?", token_id)
    assert _problems(team) == {f"token:{token_id}": VANISHED}


def test_a_stage_set_in_sql_and_an_inserted_approval_are_named(registry: tuple[Workspace, str]) -> None:
    ws, run = registry
    versions.register(ws, run, "readmission", actor="alice")
    approvals.approve(ws, ("readmission", 1), "carol", PASSWORD, "clinical_reviewer")
    stages.promote(ws, "readmission", 1, "staging", actor="ming", reason="try")
    assert check_state(ws.db).ok
    with tampering(ws) as db:
        db.sql("UPDATE model_versions SET stage = 'production' WHERE model = 'readmission'")
    assert _problems(ws) == {"model:readmission": CHANGED}
    with tampering(ws) as db:
        db.sql("UPDATE model_versions SET stage = 'staging' WHERE model = 'readmission'")
    assert check_state(ws.db).ok  # put back exactly as the trail says: explained again
    with tampering(ws) as db:
        sig = db.sql("SELECT signature_id FROM model_approvals")[0][0]
        db.sql(
            "INSERT INTO model_approvals (id, model, version, role, username, decision, signature_id, at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            "f" * 32,
            "readmission",
            1,
            "validator",
            "victor",
            "approved",
            sig,
            "2026-01-01 00:00:00",
        )
        if db.dialect == "sqlite":  # an owner of the file can drop the append-only trigger first
            db.sql("DROP TRIGGER evaluations_no_update")
        db.sql("UPDATE evaluations SET passed = ?", False)
    found = _problems(ws)
    assert found["model:readmission"] == CHANGED
    assert [k for k in found if k.startswith("evaluation:")] and set(found.values()) == {CHANGED}


def test_a_role_granted_in_sql_grants_nothing_and_no_later_event_launders_an_edit(team: Workspace) -> None:
    with tampering(team) as db:
        alice = db.sql("SELECT id FROM users WHERE username = ?", "alice")[0][0]
        db.sql("INSERT INTO user_roles (user_id, role) VALUES (?, ?)", alice, "admin")
    with pytest.raises(PermissionDenied, match="'alice' was changed outside medops"):
        team.users.add("alice", "puppet", "Sock Puppet", PASSWORD, [Role.VALIDATOR])
    with pytest.raises(IntegrityError, match="refusing to change it further"):
        team.users.check_password("alice", "wrong", purpose="login")  # counting a failure changes the row
    with pytest.raises(PermissionDenied):
        team.users.list("alice")  # denied and recorded...
    with pytest.raises(IntegrityError, match="refusing to change it further"):
        team.users.grant("admin", "alice", Role.VALIDATOR, reason="a change on top of the edit")
    assert _problems(team) == {"user:alice": CHANGED}  # ...and none of it made the edit look explained
