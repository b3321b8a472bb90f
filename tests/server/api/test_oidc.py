"""OpenID Connect login against a local fake identity provider (a real HTTP server on loopback): the
whole authorization code flow with PKCE, and each way a login must be refused."""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

import httpx
import pytest
import uvicorn
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey
from sqlalchemy import text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from medops.errors import Conflict, InvalidInput, PermissionDenied
from medops.server.api.app import ApiOptions, create_api
from medops.server.api.auth import SESSION_COOKIE
from medops.server.api.oidc import OidcSettings
from medops.workspace import Workspace
from tests.factories import PASSWORD, free_port

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

CLIENT_ID, CLIENT_SECRET = "medops", "fake-provider-secret"
SERVER = "http://testserver"


@dataclass
class FakeIssuer:
    """Signs in whoever ``user`` names; the knobs make it misbehave as a test needs."""

    url: str
    key: RSAKey = field(default_factory=lambda: RSAKey.generate_key(2048, parameters={"kid": "k1"}))
    user: str = "alice"
    subject: str | None = None  # the account's sub (default: one per user name)
    audience: str = CLIENT_ID
    sign_with: RSAKey | None = None  # another key than the published one
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)

    def app(self) -> Starlette:
        async def discovery(_: Request) -> Response:
            return JSONResponse(
                {
                    "issuer": self.url,
                    "authorization_endpoint": f"{self.url}/authorize",
                    "token_endpoint": f"{self.url}/token",
                    "jwks_uri": f"{self.url}/jwks",
                }
            )

        async def jwks(_: Request) -> Response:
            return JSONResponse(KeySet([self.key]).as_dict(private=False))

        async def authorize(request: Request) -> Response:
            q = request.query_params
            code = secrets.token_urlsafe(16)
            grant = {"nonce": q["nonce"], "challenge": q["code_challenge"], "user": self.user}
            self.codes[code] = {**grant, "sub": self.subject or f"sub-{self.user}"}
            return RedirectResponse(f"{q['redirect_uri']}?{urlencode({'code': code, 'state': q['state']})}", 302)

        async def token(request: Request) -> Response:
            form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
            sent = base64.b64decode(request.headers["authorization"].split()[1]).decode()
            grant = self.codes.pop(str(form["code"]), None)
            verifier = str(form["code_verifier"]).encode()
            challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier).digest()).rstrip(b"=").decode()
            if sent != f"{CLIENT_ID}:{CLIENT_SECRET}" or grant is None or challenge != grant["challenge"]:
                return JSONResponse({"error": "invalid_grant"}, status_code=400)
            now = int(time.time())
            claims = {
                "iss": self.url,
                "aud": self.audience,
                "sub": grant["sub"],
                "iat": now,
                "exp": now + 300,
                "nonce": grant["nonce"],
                "preferred_username": grant["user"],
            }
            signed = jwt.encode({"alg": "RS256", "kid": "k1"}, claims, self.sign_with or self.key)
            return JSONResponse({"id_token": signed, "access_token": "unused", "token_type": "Bearer"})

        return Starlette(
            routes=[
                Route("/.well-known/openid-configuration", discovery),
                Route("/jwks", jwks),
                Route("/authorize", authorize),
                Route("/token", token, methods=["POST"]),
            ]
        )


@pytest.fixture
def issuer() -> Iterator[FakeIssuer]:
    port = free_port()
    fake = FakeIssuer(f"http://127.0.0.1:{port}")
    server = uvicorn.Server(uvicorn.Config(fake.app(), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):  # a bound on the wait for the port
        if server.started:
            break
        time.sleep(0.02)
    yield fake
    server.should_exit = True
    thread.join(10)


@pytest.fixture
def api(registry: tuple[Workspace, str], issuer: FakeIssuer) -> Iterator[TestClient]:
    ws, _ = registry
    settings = OidcSettings(issuer.url, CLIENT_ID, CLIENT_SECRET, f"{SERVER}/v1/auth/oidc/callback")
    with TestClient(create_api(ws, ApiOptions(secure_cookies=False, oidc=settings)), base_url=SERVER) as client:
        yield client


def sign_in(api: TestClient) -> httpx.Response:
    """The browser's walk: medops -> the provider -> medops's callback."""
    start = api.get("/v1/auth/oidc/login", follow_redirects=False)
    assert start.status_code == 302
    at_provider = httpx.get(start.headers["location"], follow_redirects=False)
    assert at_provider.status_code == 302
    back = urlparse(at_provider.headers["location"])
    return api.get(f"{back.path}?{back.query}")


def test_a_person_signs_in_with_the_identity_provider(api: TestClient) -> None:
    answer = sign_in(api)
    assert answer.status_code == 200, answer.text
    assert answer.json()["user"] == "alice" and SESSION_COOKIE in api.cookies
    assert api.get("/v1/auth/whoami").json()["user"] == "alice"
    assert api.get("/v1/runs").status_code == 200  # alice's roles, this workspace's


def test_logins_the_provider_or_medops_must_refuse(api: TestClient, issuer: FakeIssuer) -> None:
    issuer.user = "mallory"  # the provider knows them; this workspace does not
    refused = sign_in(api)
    assert refused.status_code == 401 and refused.json()["code"] == "credential_invalid"
    issuer.user, issuer.audience = "alice", "another-client"
    assert sign_in(api).json()["code"] == "oidc_failed"
    issuer.audience, issuer.sign_with = CLIENT_ID, RSAKey.generate_key(2048, parameters={"kid": "k1"})
    assert sign_in(api).json()["code"] == "oidc_failed"
    issuer.sign_with = None
    start = api.get("/v1/auth/oidc/login", follow_redirects=False)
    back = urlparse(httpx.get(start.headers["location"], follow_redirects=False).headers["location"])
    code = parse_qs(back.query)["code"][0]
    forged = api.get(f"{back.path}?{urlencode({'code': code, 'state': 'not-the-state'})}")
    assert forged.status_code == 401 and SESSION_COOKIE not in api.cookies
    api.cookies.clear()
    no_flow = api.get(f"{back.path}?{back.query}")  # the callback without the flow's cookie
    assert no_flow.status_code == 401
    trail = api.get("/v1/audit/events?actor=mallory", headers=admin_headers(api)).json()["items"]
    assert trail and trail[0]["action"] == "auth.login.failed"


def admin_headers(api: TestClient) -> dict[str, str]:
    secret = api.post("/v1/auth/login", json={"username": "admin", "password": PASSWORD, "cookie": False})
    return {"Authorization": f"Bearer {secret.json()['secret']}"}


def test_a_user_is_pinned_to_the_provider_account_of_their_first_login(
    api: TestClient, issuer: FakeIssuer, registry: tuple[Workspace, str]
) -> None:
    """A name claim people can edit at the provider can't reach another medops user once each is linked."""
    from medops.audit.state_check import check_state
    from medops.services import Services

    ws, _ = registry
    assert sign_in(api).status_code == 200  # alice's first login links sub-alice to alice
    api.cookies.clear()
    issuer.subject = "sub-mallory"  # another person's account, its name claim edited to say alice
    refused = sign_in(api)
    assert refused.status_code == 401 and refused.json()["code"] == "credential_invalid"
    issuer.user, issuer.subject = "admin", "sub-alice"  # alice's account, its claim edited to say admin
    assert sign_in(api).status_code == 401
    trail = api.get("/v1/audit/events?action=auth.login.failed", headers=admin_headers(api)).json()["items"]
    assert "linked to the medops user 'alice'" in trail[0]["reason"]
    assert "'alice' is linked to another account" in trail[1]["reason"]
    links = api.get("/v1/audit/events?action=user.sso.link", headers=admin_headers(api)).json()["items"]
    assert [e["entity_id"] for e in links] == ["alice"]

    identity = Services(ws).identity
    admin = identity.authenticate(identity.login("admin", password=PASSWORD)[1])
    alice = identity.authenticate(identity.login("alice", password=PASSWORD)[1])
    with pytest.raises(PermissionDenied):
        identity.unlink_provider(alice, "alice", reason="mine")
    with pytest.raises(InvalidInput, match="needs a reason"):
        identity.unlink_provider(admin, "alice", reason=None)
    identity.unlink_provider(admin, "alice", reason="alice's account at the provider was re-created")
    with pytest.raises(Conflict):
        identity.unlink_provider(admin, "alice", reason="again")
    issuer.user, issuer.subject = "alice", "sub-alice-2"
    api.cookies.clear()
    assert sign_in(api).status_code == 200  # the new account links at its first login
    assert not check_state(ws.db).problems  # every link was made through the trail

    with ws.db.write() as session:  # a link written by hand, around medops
        session.execute(
            text(
                "INSERT INTO external_identities (issuer, subject, user_id, linked_at)"
                " SELECT :i, 'sub-x', id, :t FROM users WHERE username = 'admin'"
            ),
            {"i": issuer.url, "t": "2026-12-01 00:00:00"},
        )
    assert any(p.entity_id == "admin" for p in check_state(ws.db).problems)
