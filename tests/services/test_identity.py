"""Logins and the Caller: every adapter acts only as a user a verified session or API token proves."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from medops.audit import AuditFilter, list_events
from medops.clock import utc_now
from medops.credentials import Credential
from medops.errors import AuthenticationFailed, InvalidInput
from medops.identity import tokens
from medops.identity.users import MAX_FAILED_LOGINS
from medops.services.identity import IdentityService
from medops.store.schema import ApiToken
from medops.workspace import Workspace
from tests.factories import PASSWORD


def _session(secret: str) -> Credential:
    return Credential(secret, "session")


def test_a_password_login_opens_a_short_session_and_is_audited(team: Workspace) -> None:
    identity = IdentityService(team)
    view, secret = identity.login("carol", password=PASSWORD)
    assert view.kind == "session" and view.username == "carol" and view.expires_at is not None
    assert timedelta(hours=11.9) < view.expires_at - utc_now() <= timedelta(hours=12)  # session_hours' default
    caller = identity.authenticate(secret)
    assert (caller.user, caller.channel, caller.authenticated) == ("carol", "session", True)
    login = list_events(team.db, AuditFilter(action="auth.login"))[0]
    assert (login.actor, login.entity_id) == ("carol", "carol")
    assert login.after is not None
    assert {k: login.after[k] for k in ("session", "channel", "method")} == {
        "session": view.id,
        "channel": "cli",
        "method": "password",
    }
    assert secret.split("_", 2)[2] not in str(login.after)
    assert [t.id for t in team.tokens.list("carol")] == []  # `token list` shows API tokens
    assert [t.kind for t in team.tokens.list("carol", sessions=True)] == ["session"]


def test_a_wrong_password_is_refused_audited_and_counts_toward_the_lock(team: Workspace) -> None:
    identity = IdentityService(team)
    for _ in range(MAX_FAILED_LOGINS):
        with pytest.raises(AuthenticationFailed):
            identity.login("victor", password="not-his-password")
    with pytest.raises(AuthenticationFailed, match="locked"):
        identity.login("victor", password=PASSWORD)
    assert [e.reason for e in list_events(team.db, AuditFilter(action="auth.failed"))][0] == "login"


def test_an_api_token_logs_its_owner_in_and_a_session_is_no_api_token(team: Workspace) -> None:
    identity = IdentityService(team)
    api, token = team.tokens.create("alice", "laptop")
    view, secret = identity.login(None, token=token)
    assert view.username == "alice" and view.kind == "session"
    login = list_events(team.db, AuditFilter(action="auth.login"))[0]
    assert login.after is not None and (login.after["method"], login.after["token"]) == ("token", api.id)
    assert identity.authenticate(token).channel == "token"  # MEDOPS_TOKEN for automation
    with pytest.raises(AuthenticationFailed, match="not 'victor'"):
        identity.login("victor", token=token)
    with pytest.raises(InvalidInput) as refused:
        identity.login(None, token=secret)
    assert refused.value.code == "not_an_api_token"
    with pytest.raises(InvalidInput):
        identity.login("alice", password=PASSWORD, token=token)


def test_expired_ended_forged_and_disabled_credentials_are_refused_saying_why(team: Workspace) -> None:
    identity = IdentityService(team)
    view, secret = identity.login("alice", password=PASSWORD)
    later = view.expires_at + timedelta(minutes=1)  # time moves on; the row is as the login made it
    with pytest.MonkeyPatch.context() as clock:
        clock.setattr(tokens, "utc_now", lambda: later)
        with pytest.raises(AuthenticationFailed, match="your session expired at 20") as expired:
            identity.authenticate(secret)
    assert expired.value.code == "session_expired"
    with team.db.write() as session:  # a session revived in SQL, after the fact
        row = session.get(ApiToken, view.id)
        assert row is not None
        row.expires_at = utc_now() + timedelta(days=30)
    with pytest.raises(AuthenticationFailed) as revived:
        identity.authenticate(secret)
    assert revived.value.code == "credential_invalid"
    with pytest.raises(AuthenticationFailed) as forged:
        identity.authenticate(secret[:-2] + ("AA" if not secret.endswith("AA") else "BB"))
    assert forged.value.code == "credential_invalid" and "expired" not in forged.value.message
    _, secret = identity.login("alice", password=PASSWORD)
    identity.logout(secret)
    with pytest.raises(AuthenticationFailed, match="was ended") as ended:
        identity.authenticate(secret)
    assert ended.value.code == "session_ended"
    assert [e.action for e in list_events(team.db, AuditFilter(actor="alice"))][0] == "auth.logout"
    _, secret = identity.login("alice", password=PASSWORD)
    team.users.disable("admin", "alice", reason="left")
    with pytest.raises(AuthenticationFailed, match="disabled") as disabled:
        identity.authenticate(secret)
    assert disabled.value.code == "account_disabled"


def test_a_reset_ends_the_users_sessions_and_refuses_their_login_until_they_change_it(team: Workspace) -> None:
    identity = IdentityService(team)
    _, carols = identity.login("carol", password=PASSWORD)
    admin = identity.authenticate(identity.login("admin", password=PASSWORD)[1])
    identity.reset_password(admin, "carol", "temporary-pass-01", reason="forgotten; identity checked")
    with pytest.raises(AuthenticationFailed) as ended:
        identity.authenticate(carols)
    assert ended.value.code == "session_ended"
    with pytest.raises(AuthenticationFailed) as refused:
        identity.login("carol", password="temporary-pass-01")
    assert refused.value.code == "password_change_required" and refused.value.fields == {"user": "carol"}
    identity.change_password("carol", "temporary-pass-01", "her-own-passphrase-2")
    _, secret = identity.login("carol", password="her-own-passphrase-2")
    assert identity.authenticate(secret).user == "carol"


def test_without_a_credential_changes_are_refused_and_reads_follow_the_workspace(team: Workspace) -> None:
    identity = IdentityService(team)
    with pytest.raises(AuthenticationFailed) as refused:
        identity.caller(None, writes=True)
    assert refused.value.code == "login_required"
    anonymous = identity.caller(None, writes=False)
    assert not anonymous.authenticated
    with pytest.raises(AuthenticationFailed) as gated:  # a read that needs a role needs a login
        identity.users(anonymous)
    assert gated.value.code == "login_required"
    assert list_events(team.db, AuditFilter(actor="anonymous")) == []  # nothing is written for nobody
    strict = IdentityService(replace(team, settings=replace(team.settings, login_for_reads=True)))
    with pytest.raises(AuthenticationFailed, match="login to read"):
        strict.caller(None, writes=False)
    _, secret = identity.login("alice", password=PASSWORD)
    assert strict.caller(_session(secret), writes=False).user == "alice"
    with pytest.raises(InvalidInput, match="reserved"):
        team.users.add("admin", "anonymous", "Nobody", PASSWORD, [])
