"""Password checks: parallel guesses lock an account once, and an unknown name costs what a wrong password costs."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from argon2 import extract_parameters

from medops.audit import AuditFilter, list_events, verify_chain
from medops.errors import AuthenticationFailed
from medops.identity import passwords, users
from medops.identity.users import MAX_FAILED_LOGINS, UserRepository
from medops.workspace import Workspace
from tests.factories import PASSWORD


def _actions(ws: Workspace, username: str) -> list[str]:
    return [e.action for e in list_events(ws.db, AuditFilter(entity_id=username), limit=None, newest_first=False)]


def _failed_logins(ws: Workspace, username: str) -> int:
    with ws.db.read() as session:
        return UserRepository(session).get(username).failed_logins


def _stored_hash(ws: Workspace, username: str) -> str:
    with ws.db.read() as session:
        return UserRepository(session).get(username).password_hash


def _count_verifications(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The hashes verify_password is called with, in order."""
    seen: list[str] = []
    real = users.verify_password

    def spy(stored_hash: str, password: str) -> bool:
        seen.append(stored_hash)
        return real(stored_hash, password)

    monkeypatch.setattr(users, "verify_password", spy)
    return seen


def _parallel(n: int, attempt: Callable[[], None]) -> list[BaseException | None]:
    start = threading.Barrier(n)
    outcomes: list[BaseException | None] = [None] * n

    def run(i: int) -> None:
        start.wait()
        try:
            attempt()
        except BaseException as exc:  # collected and asserted on by the caller
            outcomes[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return outcomes


def test_twelve_parallel_wrong_passwords_lock_the_account_exactly_once(team: Workspace) -> None:
    """Each guess read the count before any was written: 8 `user.locked` events on SQLite before."""
    outcomes = _parallel(12, lambda: team.users.check_password("victor", "a-wrong-guess", purpose="test"))
    assert all(isinstance(o, AuthenticationFailed) for o in outcomes), outcomes
    actions = _actions(team, "victor")
    assert actions.count("user.locked") == 1
    assert actions.count("auth.failed") == 12  # every attempt is on the record, none lost
    assert _failed_logins(team, "victor") == 12  # the count lost no increment either
    assert team.users.get("victor").active is False
    assert verify_chain(team.db).ok


def test_a_locked_account_is_refused_without_checking_the_password(
    team: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    for _ in range(MAX_FAILED_LOGINS):
        with pytest.raises(AuthenticationFailed):
            team.users.check_password("carol", "a-wrong-guess", purpose="test")
    checked = _count_verifications(monkeypatch)
    with pytest.raises(AuthenticationFailed, match="locked") as exc:
        team.users.check_password("carol", PASSWORD, purpose="test")
    assert checked == []  # the right password is never even looked at
    assert exc.value.hint is not None and "medops user enable carol" in exc.value.hint
    assert _actions(team, "carol").count("user.locked") == 1  # later attempts lock nothing again
    assert _actions(team, "carol")[-1] == "auth.failed"  # but each is audited


def test_a_right_password_checked_while_parallel_guesses_lock_the_account_is_refused(
    team: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The guesses in flight together: the lock lands while the right one is being verified."""
    real = users.verify_password

    def slow_verify(stored_hash: str, password: str) -> bool:
        if password == PASSWORD:
            for _ in range(MAX_FAILED_LOGINS):  # the other guesses fail and lock meanwhile
                with pytest.raises(AuthenticationFailed):
                    team.users.check_password("alice", "a-wrong-guess", purpose="test")
        return real(stored_hash, password)

    monkeypatch.setattr(users, "verify_password", slow_verify)
    with pytest.raises(AuthenticationFailed, match="locked"):
        team.users.check_password("alice", PASSWORD, purpose="test")
    assert team.users.get("alice").active is False
    assert "auth.failures_reset" not in _actions(team, "alice")


def test_a_failure_run_ended_by_the_right_password_is_reset_on_the_record(team: Workspace) -> None:
    with pytest.raises(AuthenticationFailed):
        team.users.check_password("alice", "a-wrong-guess", purpose="test")
    assert team.users.check_password("alice", PASSWORD, purpose="test").username == "alice"
    assert _failed_logins(team, "alice") == 0
    reset = list_events(team.db, AuditFilter(action="auth.failures_reset", entity_id="alice"))[0]
    assert (reset.before, reset.after) == ({"failed_logins": 1}, {"failed_logins": 0})


def test_an_unknown_or_disabled_user_costs_one_verification_like_a_wrong_password(
    team: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unknown name answered at once (10 ms against 496 ms): timing told which names exist."""
    team.users.disable("admin", "carol", reason="left the hospital")
    real_params = extract_parameters(passwords.hash_password("any-password-at-all"))
    checked = _count_verifications(monkeypatch)
    answers = {}
    for username in ("victor", "nobody", "carol"):  # wrong password, unknown user, disabled user
        checked.clear()
        with pytest.raises(AuthenticationFailed) as exc:
            team.users.check_password(username, "a-wrong-guess", purpose="test")
        assert len(checked) == 1, username  # exactly one argon2 verification on every path
        assert extract_parameters(checked[0]) == real_params  # at the same cost as a real hash
        answers[username] = (str(exc.value).replace(repr(username), "NAME"), exc.value.hint)
    assert answers["nobody"] == answers["victor"] == answers["carol"]  # and the same words
    checked.clear()
    with pytest.raises(AuthenticationFailed):  # a disabled user's right password does not get in either
        team.users.check_password("carol", PASSWORD, purpose="test")
    assert len(checked) == 1 and checked[0] != _stored_hash(team, "carol")  # the dummy, not carol's hash


def test_the_dummy_hash_matches_no_password_and_follows_the_hasher() -> None:
    dummy = passwords.dummy_hash()
    assert dummy != passwords.dummy_hash()  # a fresh salt each time: nothing to precompute against
    assert not passwords.verify_password(dummy, "")
    assert not passwords.verify_password(dummy, "test-password-0123")
    assert extract_parameters(dummy) == extract_parameters(passwords.hash_password("x" * 12))
