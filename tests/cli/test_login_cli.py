"""`medops login`, `logout`, `whoami` and `user passwd`: the CLI acts only as a user it verified.

The attacks: a colleague with a shell sets MEDOPS_USER (or nothing: the first admin) and acts
as anyone; an admin resets a reviewer's password without the old one and signs as them.
"""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path

import pytest

from medops.audit import AuditFilter, list_events
from medops.clock import utc_now
from medops.credentials import save_session, session_file
from medops.errors import AuthenticationFailed
from medops.identity import Role, tokens
from medops.workspace import Workspace
from tests.factories import PASSWORD, log_in, run

TEMPORARY = "temporary-pass-01"


@pytest.fixture
def home(team: Workspace, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The team's workspace as the CLI finds it; nobody is logged in."""
    monkeypatch.setenv("MEDOPS_HOME", str(team.settings.home))
    return team.settings.home


def _stdin(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], args: list[str], text: str) -> tuple:
    return run(args, capsys, stdin=text, monkeypatch=monkeypatch)


def test_a_name_alone_acts_as_nobody_sock_puppets_included(
    team: Workspace, home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEDOPS_USER", "admin")
    add = ["user", "add", "sock", "--name", "Sock Puppet", "--role", "validator", "--password-stdin"]
    code, _, err = _stdin(monkeypatch, capsys, add, PASSWORD + "\n")
    assert code == 1 and "it needs you to log in" in err and "hint: run: medops login" in err
    code, _, err = run(["user", "grant", "alice", "validator", "-r", "second signer"], capsys)
    assert code == 1 and "log in" in err
    monkeypatch.setenv("MEDOPS_USER", "carol")  # her password is no login either: signing needs a session
    approve = ["models", "approve", "readmission:1", "--role", "clinical_reviewer", "--password-stdin"]
    code, _, err = _stdin(monkeypatch, capsys, approve, PASSWORD + "\n")
    assert code == 1 and "log in" in err
    monkeypatch.delenv("MEDOPS_USER")  # and unset, nobody is the first admin
    code, _, err = _stdin(monkeypatch, capsys, add, PASSWORD + "\n")
    assert code == 1 and "log in" in err
    assert [u.username for u in team.users.list("admin")] == ["admin", "alice", "carol", "victor"]
    assert team.users.get("alice").roles == ("data_scientist",)
    assert not [e for e in list_events(team.db, AuditFilter()) if e.action.startswith(("user.grant", "model."))]


def test_login_keeps_a_private_session_that_whoami_and_logout_use(
    team: Workspace, home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEDOPS_USER", "victor")  # the name login suggests
    code, out, err = _stdin(monkeypatch, capsys, ["login", "--password-stdin", "--json"], PASSWORD + "\n")
    assert code == 0, err
    doc = json.loads(out)
    path = Path(doc["session_file"])
    assert doc["user"] == "victor" and path == session_file(team.settings)
    assert path.stat().st_mode & 0o777 == 0o600 and path.parent.stat().st_mode & 0o777 == 0o700
    assert not path.is_relative_to(home)  # a copied workspace copies nobody's login
    code, out, _ = run(["whoami", "--json"], capsys)
    who = json.loads(out)
    assert (who["user"], who["via"], who["id"]) == ("victor", "session", doc["session"]) and who["expires_at"]
    login = list_events(team.db, AuditFilter(action="auth.login"))[0]
    assert login.actor == "victor" and login.after is not None
    assert (login.after["channel"], login.after["method"]) == ("cli", "password")
    secret = path.read_text().strip()
    code, out, _ = run(["logout"], capsys)
    assert code == 0 and "session ended" in out and not path.exists()
    with pytest.raises(AuthenticationFailed, match="was ended"):
        team.tokens.verify(secret)  # revoked in the database, not only forgotten here
    assert list_events(team.db, AuditFilter(action="auth.logout"))[0].actor == "victor"
    code, _, err = run(["whoami"], capsys)
    assert code == 1 and "not logged in" in err and "medops login" in err


def test_a_session_readable_by_others_is_refused(
    team: Workspace, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log_in(team, "admin")
    os.chmod(session_file(team.settings), 0o644)
    code, _, err = run(["user", "list"], capsys)
    assert code == 2 and "can be read by other users" in err


def test_expired_and_revoked_sessions_are_refused_saying_when(
    team: Workspace, home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    log_in(team, "admin")
    later = utc_now() + timedelta(hours=13)  # a session lasts session_hours (12): time moves on, the row stays
    with monkeypatch.context() as clock:
        clock.setattr(tokens, "utc_now", lambda: later)
        code, _, err = run(["user", "grant", "alice", "auditor", "-r", "audit"], capsys)
    assert code == 1 and "your session expired at 20" in err and "hint: run: medops login" in err
    secret = log_in(team, "admin")
    team.tokens.close_session(secret)  # ended elsewhere (an admin, a reset)
    code, _, err = run(["user", "list"], capsys)
    assert code == 1 and "your session was ended" in err and "medops login" in err
    assert team.users.get("alice").roles == ("data_scientist",)


def test_an_api_token_logs_in_or_acts_through_medops_token(
    team: Workspace, home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    view, token = team.tokens.create("alice", "laptop")
    code, out, err = _stdin(monkeypatch, capsys, ["login", "--token-stdin"], token + "\n")
    assert code == 0 and "logged in as alice" in out, err
    assert list_events(team.db, AuditFilter(action="auth.login"))[0].after["method"] == "token"  # type: ignore[index]
    run(["logout"], capsys)
    monkeypatch.setenv("MEDOPS_TOKEN", token)  # automation: no session file at all
    code, out, _ = run(["whoami"], capsys)
    assert code == 0 and out.startswith("alice (Alice Moreau)") and f"API token {view.id}" in out
    team.tokens.revoke("admin", view.id, reason="laptop lost")
    code, _, err = run(["token", "list"], capsys)
    assert code == 1 and f"API token {view.id} was revoked" in err and "unset MEDOPS_TOKEN" in err


def test_an_admin_reset_forces_a_change_and_is_audited_as_a_reset(
    team: Workspace, home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    carols = log_in(team, "carol")
    log_in(team, "admin")
    passwd = ["user", "passwd", "carol", "--password-stdin", "-r", "forgotten; identity checked by phone"]
    code, out, err = _stdin(monkeypatch, capsys, passwd, TEMPORARY + "\n")
    assert code == 0 and "must change it" in out, err
    reset = list_events(team.db, AuditFilter(entity_id="carol"))[0]
    assert (reset.actor, reset.action) == ("admin", "user.password_reset")
    assert reset.after == {"password": "reset", "must_change_password": True, "sessions_ended": 1}
    with pytest.raises(AuthenticationFailed, match="was ended"):
        team.tokens.verify(carols)
    # carol, at her own terminal (her session file still holds the session the reset ended)
    save_session(team.settings, carols)
    code, _, err = run(["whoami"], capsys)
    assert code == 1 and "your session was ended" in err
    code, _, err = _stdin(monkeypatch, capsys, ["login", "carol", "--password-stdin"], TEMPORARY + "\n")
    assert code == 1 and "must change the password" in err and "medops user passwd carol" in err
    change = ["user", "passwd", "carol", "--password-stdin"]
    code, out, err = _stdin(monkeypatch, capsys, change, f"{TEMPORARY}\nher-own-passphrase-2\n")
    assert code == 0 and "password of carol changed" in out, err
    assert [e.action for e in list_events(team.db, AuditFilter(entity_id="carol"))][0] == "user.password"
    code, _, err = _stdin(monkeypatch, capsys, ["login", "carol", "--password-stdin"], "her-own-passphrase-2\n")
    assert code == 0, err


def test_changing_your_own_password_needs_the_old_one(
    team: Workspace, home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    log_in(team, "admin")  # an admin too: their own password is a change, never a reset
    code, _, err = _stdin(
        monkeypatch, capsys, ["user", "passwd", "--password-stdin"], "a-wrong-guess-1\nnew-pass-12345\n"
    )
    assert code == 1 and "authentication failed" in err
    code, _, err = _stdin(monkeypatch, capsys, ["user", "passwd", "admin", "--password-stdin"], "new-pass-12345\n")
    assert code == 2 and "standard input had no line" in err  # the old one, then the new one
    assert team.users.check_password("admin", PASSWORD, purpose="test")
    code, out, err = _stdin(
        monkeypatch, capsys, ["user", "passwd", "--password-stdin"], f"{PASSWORD}\nnew-pass-12345\n"
    )
    assert code == 0 and "password of admin changed" in out, err
    assert team.users.check_password("admin", "new-pass-12345", purpose="test")
    log_in(team, "alice")  # a non-admin can't reset someone else's
    code, _, err = _stdin(
        monkeypatch, capsys, ["user", "passwd", "victor", "--password-stdin", "-r", "x"], TEMPORARY + "\n"
    )
    assert code == 1 and "'alice' may not user password_reset" in err


def test_reads_without_a_login_follow_the_workspace_setting(
    team: Workspace, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    team.users.add("admin", "ming", "Ming Chen", PASSWORD, [Role.ML_ENGINEER])
    code, out, err = run(["models", "list", "--json"], capsys)
    assert code == 0 and json.loads(out) == [], err  # a plain read: anonymous is enough by default
    code, _, err = run(["user", "list"], capsys)  # a read that needs a role needs a login
    assert code == 1 and "user list needs you to log in" in err and "hint: run: medops login" in err
    code, _, err = run(["audit", "log"], capsys)
    assert code == 1 and "log in" in err
    config = home / "medops.toml"
    config.write_text(config.read_text() + "login_for_reads = true\n")
    code, _, err = run(["models", "list"], capsys)
    assert code == 1 and "needs a login to read as well" in err
    log_in(team, "ming")
    assert run(["models", "list"], capsys)[0] == 0


def test_init_logs_the_first_admin_in(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    init = ["init", str(tmp_path / "solo"), "--admin", "ada", "--password-stdin", "--json"]
    code, out, err = _stdin(monkeypatch, capsys, init, PASSWORD + "\n")
    assert code == 0 and json.loads(out)["logged_in_until"], err
    monkeypatch.setenv("MEDOPS_HOME", str(tmp_path / "solo"))
    add = ["user", "add", "alice", "--name", "Alice Moreau", "--role", "data_scientist", "--password-stdin"]
    code, _, err = _stdin(monkeypatch, capsys, add, PASSWORD + "\n")
    assert code == 0, err
    code, out, _ = run(["whoami"], capsys)
    assert out.startswith("ada (Workspace Administrator) · roles: admin")
