"""Signing in to the platform API on SQLite and PostgreSQL: session cookies with CSRF, bearer secrets,
lockout, e-signatures that ask for the password again, limits, and problems without traces."""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import pytest

from medops.server.api.app import ApiOptions, create_api
from medops.server.api.auth import CSRF_COOKIE, CSRF_HEADER
from medops.workspace import Workspace
from tests.factories import PASSWORD

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


@pytest.fixture
def api(registry: tuple[Workspace, str]) -> Iterator[TestClient]:
    ws, _ = registry
    with TestClient(create_api(ws, ApiOptions(secure_cookies=False, max_body_bytes=10_000))) as client:
        yield client


def bearer(api: TestClient, user: str) -> dict[str, str]:
    answer = api.post("/v1/auth/login", json={"username": user, "password": PASSWORD, "cookie": False})
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['secret']}"}


def test_a_cookie_session_changes_nothing_without_its_csrf_token(
    api: TestClient, registry: tuple[Workspace, str]
) -> None:
    _, run = registry
    login = api.post("/v1/auth/login", json={"username": "alice", "password": PASSWORD})
    assert login.status_code == 200 and "secret" not in login.json()
    cookie = login.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    assert api.get("/v1/runs").status_code == 200  # a read needs no CSRF token
    body = {"run": run, "name": "readmission"}
    refused = api.post("/v1/models", json=body)
    assert refused.status_code == 403 and refused.json()["code"] == "csrf_failed"
    assert api.post("/v1/models", json=body, headers={CSRF_HEADER: "0" * 64}).status_code == 403
    assert api.get("/v1/models").json() == []  # nothing was registered
    made = api.post("/v1/models", json=body, headers={CSRF_HEADER: api.cookies[CSRF_COOKIE]})
    assert made.status_code == 201, made.text
    assert api.post("/v1/auth/logout", headers={CSRF_HEADER: api.cookies[CSRF_COOKIE]}).status_code == 200
    assert api.get("/v1/runs").status_code == 401


def test_a_signature_asks_for_the_password_again(api: TestClient, registry: tuple[Workspace, str]) -> None:
    _, run = registry
    assert api.post("/v1/models", headers=bearer(api, "alice"), json={"run": run, "name": "m"}).status_code == 201
    victor = bearer(api, "victor")
    wrong = api.post("/v1/models/m:1/signatures", headers=victor, json={"password": "not-it", "role": "validator"})
    assert wrong.status_code == 401
    assert "not-it" not in wrong.text
    assert api.get("/v1/models/m:1/approvals", headers=victor).json()["decisions"] == []
    missing = api.post("/v1/models/m:1/signatures", headers=victor, json={"role": "validator"})
    assert missing.status_code == 422 and missing.json()["errors"][0]["field"] == "body.password"
    signed = api.post("/v1/models/m:1/signatures", headers=victor, json={"password": PASSWORD, "role": "validator"})
    assert signed.status_code == 201 and signed.json()["valid"] is True


def test_failed_logins_lock_the_account_and_are_audited(api: TestClient) -> None:
    answers = [
        api.post("/v1/auth/login", json={"username": "carol", "password": f"wrong-{i}"}).status_code for i in range(6)
    ]
    assert set(answers) == {401}
    locked = api.post("/v1/auth/login", json={"username": "carol", "password": PASSWORD})
    assert locked.status_code == 401
    events = api.get("/v1/audit/events?actor=carol&limit=50", headers=bearer(api, "admin")).json()["items"]
    assert any(e["action"].startswith("auth.") for e in events)


def test_limits_and_problems(api: TestClient) -> None:
    alice = bearer(api, "alice")
    big = api.post("/v1/models", headers=alice, content=b"{" + b" " * 20_000 + b"}")
    assert big.status_code == 413 and big.headers["content-type"] == "application/problem+json"
    assert api.get("/v1/runs?limit=501", headers=alice).status_code == 422
    page = api.get("/v1/runs?limit=1", headers=alice).json()
    assert set(page) == {"items", "limit", "offset", "next_offset"}
    missing = api.get("/v1/runs/0123456789abcdef0123456789abcdef", headers=alice)
    assert missing.status_code == 404
    doc = missing.json()
    assert doc["type"].startswith("urn:medops:problem:") and doc["request_id"] == missing.headers["x-request-id"]
    assert "Traceback" not in missing.text


def test_a_nul_character_is_refused_before_it_reaches_a_store(api: TestClient) -> None:
    alice = bearer(api, "alice")
    for answer in (
        api.get("/v1/datasets?name=a%00b", headers=alice),
        api.get("/v1/runs/ab%00cd", headers=alice),
        api.post("/v1/tokens", headers=alice, json={"name": "a\u0000b"}),
    ):
        assert answer.status_code == 422, answer.text
        assert answer.json()["code"] == "invalid_request"


@pytest.mark.parametrize("change", ["disable", "reset"])
def test_a_remembered_credential_is_refused_after_a_change_made_elsewhere(
    api: TestClient, registry: tuple[Workspace, str], change: str
) -> None:
    ws, _ = registry
    alice = bearer(api, "alice")
    assert [api.get("/v1/runs", headers=alice).status_code for _ in range(3)] == [200, 200, 200]
    if change == "disable":  # by another process on the same database: the server's memory is not told
        ws.users.disable("admin", "alice", reason="left the team")
    else:
        ws.users.reset_password("admin", "alice", "a-temporary-password-1", reason="forgotten")
    refused = api.get("/v1/runs", headers=alice)
    assert refused.status_code == 401 and refused.json()["code"] == "credential_invalid"
