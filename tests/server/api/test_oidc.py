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
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from medops.server.api.app import ApiOptions, create_api
from medops.server.api.auth import SESSION_COOKIE
from medops.server.api.oidc import OidcSettings
from medops.workspace import Workspace
from tests.factories import free_port

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
            self.codes[code] = {"nonce": q["nonce"], "challenge": q["code_challenge"], "user": self.user}
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
                "sub": f"sub-{grant['user']}",
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
    from tests.factories import PASSWORD

    secret = api.post("/v1/auth/login", json={"username": "admin", "password": PASSWORD, "cookie": False})
    return {"Authorization": f"Bearer {secret.json()['secret']}"}
