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


def test_the_newest_id_is_read_with_no_transaction_left_open_and_the_pool_keeps_its_mode(
    workspace: Workspace, pat: tuple[Services, str, str]
) -> None:
    """The reads run in autocommit on a connection taken out of the pool: none stays open between requests
    (it would hold SQLite's log from being checkpointed), and no pooled connection is left in autocommit."""
    services, _, secret = pat
    sqlite = workspace.db.dialect == "sqlite"

    def mode() -> object:
        with workspace.db.engine.connect() as pooled:
            raw = pooled.connection.dbapi_connection
            return raw.isolation_level if sqlite else raw.autocommit  # type: ignore[union-attr]

    before = mode()
    services.serving.admit(secret)
    assert services.serving.remembered(secret) is not None
    driver = services.serving.admissions._cursor.connection
    if sqlite:
        assert not driver.in_transaction
    else:
        import psycopg

        assert driver.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    services.serving.close()
    assert driver.closed if not sqlite else _closed_sqlite(driver)
    assert mode() == before


def _closed_sqlite(connection: object) -> bool:
    import sqlite3

    try:
        connection.execute("SELECT 1")  # type: ignore[attr-defined]
    except sqlite3.ProgrammingError:
        return True
    return False
