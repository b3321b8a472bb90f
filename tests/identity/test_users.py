"""Users and roles: only admins change them, every change and every denial is audited."""

from __future__ import annotations

import pytest

from medops.audit import AuditFilter, list_events, verify_chain
from medops.errors import AuthenticationFailed, Conflict, InvalidInput, NotFound, PermissionDenied
from medops.identity import Role
from medops.identity.users import MAX_FAILED_LOGINS
from medops.workspace import Workspace
from tests.factories import PASSWORD


def test_admin_adds_users_with_several_roles(workspace: Workspace) -> None:
    view = workspace.users.add(
        "admin", "ming", "Ming Chen", PASSWORD, [Role.ML_ENGINEER, Role.VALIDATOR], reason="team"
    )
    assert view.roles == ("ml_engineer", "validator")
    event = list_events(workspace.db, AuditFilter(entity_type="user", entity_id="ming"))[0]
    assert (event.actor, event.action, event.reason) == ("admin", "user.add", "team")
    assert event.after["roles"] == ["ml_engineer", "validator"]
    assert PASSWORD not in str(event.after) and "password_hash" not in event.after


def test_non_admin_cannot_add_users_or_grant_roles_and_the_denial_is_audited(team: Workspace) -> None:
    before = len(team.users.list("admin"))
    with pytest.raises(PermissionDenied, match="needs the role admin"):
        team.users.add("alice", "mallory", "Mallory", PASSWORD, [Role.ADMIN])
    with pytest.raises(PermissionDenied):
        team.users.grant("alice", "alice", Role.ADMIN, reason="please")
    assert len(team.users.list("admin")) == before
    assert team.users.get("alice").roles == ("data_scientist",)
    denied = list_events(team.db, AuditFilter(actor="alice", action="user.*"))
    assert [e.action for e in denied] == ["user.grant.denied", "user.add.denied"]
    assert denied[1].entity_id == "mallory" and "admin" in (denied[1].reason or "")
    assert verify_chain(team.db).ok


def test_unknown_or_disabled_actor_is_denied(team: Workspace) -> None:
    with pytest.raises(PermissionDenied, match="no user 'ghost'"):
        team.users.add("ghost", "x1", "X", PASSWORD, [])
    team.users.disable("admin", "carol", reason="left")
    with pytest.raises(PermissionDenied, match="disabled"):
        team.users.list("carol")


def test_grant_revoke_disable_enable_are_audited_with_before_and_after(team: Workspace) -> None:
    team.users.grant("admin", "alice", Role.ML_ENGINEER, reason="on call")
    team.users.revoke("admin", "alice", Role.DATA_SCIENTIST, reason="moved")
    assert team.users.get("alice").roles == ("ml_engineer",)
    team.users.disable("admin", "alice", reason="left")
    team.users.enable("admin", "alice", reason="back")
    events = list_events(team.db, AuditFilter(entity_type="user", entity_id="alice"), newest_first=False)
    assert [e.action for e in events] == ["user.add", "user.grant", "user.revoke", "user.disable", "user.enable"]
    assert events[3].before["active"] is True and events[3].after["active"] is False


def test_invalid_changes_are_refused_and_leave_no_event(team: Workspace) -> None:
    count = verify_chain(team.db).checked
    with pytest.raises(Conflict):
        team.users.add("admin", "alice", "Another Alice", PASSWORD, [])
    with pytest.raises(Conflict):
        team.users.grant("admin", "alice", Role.DATA_SCIENTIST, reason="again")
    with pytest.raises(NotFound):
        team.users.grant("admin", "nobody", Role.AUDITOR, reason="typo")
    with pytest.raises(InvalidInput, match="needs a reason"):
        team.users.grant("admin", "alice", Role.AUDITOR, reason=" ")
    with pytest.raises(InvalidInput):
        team.users.add("admin", "Bad Name", "X", PASSWORD, [])
    with pytest.raises(InvalidInput, match="at least"):
        team.users.add("admin", "short", "X", "pw", [])
    with pytest.raises(InvalidInput):
        team.users.disable("admin", "admin", reason="oops")
    assert verify_chain(team.db).checked == count


def test_repeated_wrong_passwords_lock_the_account(team: Workspace) -> None:
    for _ in range(MAX_FAILED_LOGINS):
        with pytest.raises(AuthenticationFailed):
            team.users.check_password("victor", "not-his-password", purpose="test")
    assert team.users.get("victor").active is False
    with pytest.raises(AuthenticationFailed):  # even the right password is refused now
        team.users.check_password("victor", PASSWORD, purpose="test")
    actions = [e.action for e in list_events(team.db, AuditFilter(entity_id="victor"), newest_first=False)]
    assert actions.count("auth.failed") == MAX_FAILED_LOGINS + 1 and "user.locked" in actions
    team.users.enable("admin", "victor", reason="identity confirmed by phone")
    assert team.users.check_password("victor", PASSWORD, purpose="test").username == "victor"


def test_a_user_changes_their_password_only_with_the_old_one(team: Workspace) -> None:
    with pytest.raises(AuthenticationFailed):
        team.users.change_password("alice", "not-the-old-one", "a-brand-new-passphrase")
    with pytest.raises(AuthenticationFailed):
        team.users.check_password("alice", "a-brand-new-passphrase", purpose="t")  # unchanged
    team.users.change_password("alice", PASSWORD, "a-brand-new-passphrase")
    assert team.users.check_password("alice", "a-brand-new-passphrase", purpose="t")
    with pytest.raises(InvalidInput, match="differ"):
        team.users.change_password("alice", "a-brand-new-passphrase", "a-brand-new-passphrase")
    events = list_events(team.db, AuditFilter(entity_id="alice"), newest_first=False)
    [failed, changed] = [e for e in events if e.action in ("auth.failed", "user.password") and e.reason != "t"]
    assert (failed.action, failed.reason) == ("auth.failed", "password change")
    assert (changed.actor, changed.action, changed.after) == (
        "alice",
        "user.password",
        {"password": "changed", "must_change_password": False},
    )


def test_an_admin_reset_forces_a_change_and_is_audited_as_a_reset(team: Workspace) -> None:
    with pytest.raises(PermissionDenied):
        team.users.reset_password("alice", "victor", "hijacked-password-1", reason="mine now")
    with pytest.raises(InvalidInput, match="needs a reason"):
        team.users.reset_password("admin", "victor", "temporary-pass-01")
    view = team.users.reset_password("admin", "victor", "temporary-pass-01", reason="forgotten; called back")
    assert view.must_change_password
    reset = list_events(team.db, AuditFilter(entity_id="victor", action="user.password_reset"))[0]
    assert (reset.actor, reset.reason) == ("admin", "forgotten; called back")
    assert reset.after == {"password": "reset", "must_change_password": True, "sessions_ended": 0}
    with pytest.raises(AuthenticationFailed) as refused:  # a password someone else knows can't sign
        team.signatures.sign(
            "victor", "temporary-pass-01", record_type="plan", record_id="p1", record={"a": 1}, meaning="approved"
        )
    assert refused.value.code == "password_change_required"
    team.users.change_password("victor", "temporary-pass-01", "a-passphrase-of-his-own")
    assert not team.users.get("victor").must_change_password
    team.signatures.sign(
        "victor", "a-passphrase-of-his-own", record_type="plan", record_id="p1", record={"a": 1}, meaning="approved"
    )


def test_nobody_resets_their_own_password(team: Workspace) -> None:
    with pytest.raises(InvalidInput) as refused:
        team.users.reset_password("admin", "admin", "no-old-password-1", reason="forgot it")
    assert refused.value.code == "own_password_reset"
    assert team.users.check_password("admin", PASSWORD, purpose="t")


def test_a_success_resets_the_failure_count_on_the_record(team: Workspace) -> None:
    for _ in range(MAX_FAILED_LOGINS - 1):
        with pytest.raises(AuthenticationFailed):
            team.users.check_password("carol", "not-her-password", purpose="test")
    team.users.check_password("carol", PASSWORD, purpose="test")
    reset = list_events(team.db, AuditFilter(action="auth.failures_reset"))[0]
    assert reset.before == {"failed_logins": MAX_FAILED_LOGINS - 1}
    with pytest.raises(AuthenticationFailed):  # one more failure no longer locks
        team.users.check_password("carol", "not-her-password", purpose="test")
    assert team.users.get("carol").active
