"""A predict caller's admission is remembered only while the audit trail is unchanged: a revoked
token, a removed role or a disabled user is refused on the very next request."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from medops.caller import Caller
from medops.errors import AuthenticationFailed, PermissionDenied
from medops.identity import Role
from medops.identity import admissions as admission
from medops.services import Services
from medops.workspace import Workspace
from tests.factories import PASSWORD

ADMIN = Caller("admin", channel="token")


@pytest.fixture
def pat(workspace: Workspace) -> Iterator[tuple[Services, str, str]]:
    """pat (predictor) and an API token for it; the connection admissions hold is given back after."""
    services = Services(workspace)
    workspace.users.add("admin", "pat", "Pat Integration", PASSWORD, [Role.PREDICTOR])
    view, secret = services.identity.create_token(ADMIN, "ehr", username="pat", expires_in_days=1)
    yield services, view.id, secret
    services.serving.close()


def test_remembered_until_anything_audited_happens(workspace: Workspace, pat: tuple[Services, str, str]) -> None:
    services, _, secret = pat
    serving = services.serving
    assert serving.admit(secret).user == "pat" and serving.admit(secret).user == "pat"
    assert serving.admissions.full_checks == 1  # the second request read one id, not the rows
    first, second = serving.admit(secret), serving.admit(secret)
    assert first.request_id != second.request_id and first.channel == "token"

    workspace.users.add("admin", "zoe", "Zoe", PASSWORD, [Role.AUDITOR])  # any audited change: checked again
    serving.admit(secret)
    assert serving.admissions.full_checks == 2

    services.identity.revoke_role(ADMIN, "pat", Role.PREDICTOR, reason="integration paused")
    with pytest.raises(PermissionDenied):
        serving.admit(secret)
    with pytest.raises(PermissionDenied):  # a refusal is never remembered
        serving.admit(secret)


@pytest.mark.parametrize("how", ["revoke", "disable"])
def test_a_revoked_token_or_disabled_user_is_refused_next(pat: tuple[Services, str, str], how: str) -> None:
    services, token_id, secret = pat
    services.serving.admit(secret)
    if how == "revoke":
        services.identity.revoke_token(ADMIN, token_id, reason="leaked")
    else:
        services.identity.disable(ADMIN, "pat", reason="left")
    with pytest.raises(AuthenticationFailed):
        services.serving.admit(secret)


def test_a_remembered_admission_ends_at_the_token_expiry(
    pat: tuple[Services, str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    services, _, secret = pat
    services.serving.admit(secret)
    later = admission.utc_now() + timedelta(days=2)
    monkeypatch.setattr(admission, "utc_now", lambda: later)
    monkeypatch.setattr("medops.identity.tokens.utc_now", lambda: later)
    with pytest.raises(AuthenticationFailed):
        services.serving.admit(secret)


def test_a_dropped_connection_is_replaced(pat: tuple[Services, str, str]) -> None:
    services, _, secret = pat
    services.serving.admit(secret)
    services.serving.admissions._connection.close()  # the database dropped it (a restart, a failover)
    assert services.serving.remembered(secret) is not None  # read again on a fresh connection
    assert services.serving.admissions.full_checks == 1
