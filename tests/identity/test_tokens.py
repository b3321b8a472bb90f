"""API tokens: shown once, stored hashed, revocable, expiring."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from medops.clock import utc_now
from medops.errors import AuthenticationFailed, PermissionDenied
from medops.store.schema import ApiToken
from medops.workspace import Workspace


def test_token_authenticates_its_owner_and_only_its_hash_is_stored(team: Workspace) -> None:
    view, secret = team.tokens.create("alice", "notebook")
    assert team.tokens.authenticate(secret).username == "alice"
    with team.db.read() as session:
        stored = session.execute(select(ApiToken.secret_hash)).scalar_one()
    assert secret.split("_", 2)[2] not in stored and len(stored) == 64


def test_revoked_expired_forged_and_disabled_tokens_fail(team: Workspace) -> None:
    view, secret = team.tokens.create("alice", "a")
    for bad in (secret[:-1] + ("A" if secret[-1] != "A" else "B"), "medops_x_y", "garbage", ""):
        with pytest.raises(AuthenticationFailed):
            team.tokens.authenticate(bad)
    team.tokens.revoke("alice", view.id, reason="rotated")
    with pytest.raises(AuthenticationFailed):
        team.tokens.authenticate(secret)
    view2, secret2 = team.tokens.create("victor", "b", expires_in_days=1)
    with team.db.write() as session:
        session.get(ApiToken, view2.id).expires_at = utc_now() - timedelta(seconds=1)  # type: ignore[union-attr]
    with pytest.raises(AuthenticationFailed):
        team.tokens.authenticate(secret2)
    _, secret3 = team.tokens.create("carol", "c")
    team.users.disable("admin", "carol", reason="left")
    with pytest.raises(AuthenticationFailed):
        team.tokens.authenticate(secret3)
    states = {t.name: t.state for t in team.tokens.list("admin")}
    assert states == {"a": "revoked", "b": "expired", "c": "active"}


def test_only_admins_manage_other_peoples_tokens(team: Workspace) -> None:
    view, _ = team.tokens.create("victor", "mine")
    with pytest.raises(PermissionDenied):
        team.tokens.create("alice", "for-victor", username="victor")
    with pytest.raises(PermissionDenied):
        team.tokens.revoke("alice", view.id, reason="not mine")
    assert [t.name for t in team.tokens.list("alice")] == []
    assert [t.name for t in team.tokens.list("victor")] == ["mine"]
    team.tokens.create("admin", "service", username="alice")
    assert {t.username for t in team.tokens.list("admin")} == {"victor", "alice"}
