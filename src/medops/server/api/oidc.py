"""Login with a hospital's identity provider (OpenID Connect, authorization code flow with PKCE).

The provider proves who the person is; medops decides what they may do: the claim named by
``username_claim`` must be an active medops user, whose roles are this workspace's. Nothing is
stored on the server between the two legs: the state, nonce and PKCE verifier travel in a
short-lived HttpOnly cookie signed with the client secret, which every worker holds, so the
callback may land on any of them. The ID token is checked with joserfc (Authlib's JOSE library)
against the provider's published keys: signature, issuer, audience, expiry and nonce.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx
from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from medops.errors import AuthenticationFailed
from medops.server.api.auth import Svc
from medops.server.api.sessions import session_response

FLOW_COOKIE = "medops_oidc"
FLOW_SECONDS = 600  # a login must come back from the provider within this
router = APIRouter(prefix="/v1/auth/oidc", tags=["auth"])


@dataclass(frozen=True)
class OidcSettings:
    issuer: str
    client_id: str
    client_secret: str = field(repr=False)
    redirect_url: str  # this server's callback as the provider sees it: https://HOST/v1/auth/oidc/callback
    username_claim: str = "preferred_username"
    scope: str = "openid profile email"


class Provider:
    """The issuer's endpoints and keys, read once from its discovery document (keys again for an unknown kid)."""

    def __init__(self, settings: OidcSettings) -> None:
        self.settings = settings
        self._config: dict[str, Any] | None = None
        self._keys: Any = None

    def config(self) -> dict[str, Any]:
        if self._config is None:
            found = _get_json(f"{self.settings.issuer.rstrip('/')}/.well-known/openid-configuration")
            if found.get("issuer") != self.settings.issuer:
                raise AuthenticationFailed("the identity provider names another issuer", code="oidc_failed")
            self._config = found
        return self._config

    def keys(self, refresh: bool = False) -> Any:
        from joserfc.jwk import KeySet

        if self._keys is None or refresh:
            self._keys = KeySet.import_key_set(_get_json(self.config()["jwks_uri"]))  # type: ignore[arg-type]
        return self._keys

    def claims(self, id_token: str, nonce: str) -> dict[str, Any]:
        """The ID token's claims once its signature, issuer, audience, times and nonce hold."""
        from joserfc import jwt
        from joserfc.errors import JoseError

        try:
            try:
                token = jwt.decode(id_token, self.keys(), algorithms=["RS256", "ES256", "PS256"])
            except JoseError:  # a key the provider rotated in since: read its keys once more
                token = jwt.decode(id_token, self.keys(refresh=True), algorithms=["RS256", "ES256", "PS256"])
            jwt.JWTClaimsRegistry(
                iss={"essential": True, "value": self.settings.issuer},
                aud={"essential": True, "value": self.settings.client_id},
                exp={"essential": True},
                nonce={"essential": True, "value": nonce},
                sub={"essential": True},
            ).validate(token.claims)
        except (JoseError, ValueError) as exc:
            raise AuthenticationFailed(
                f"the identity provider's ID token was refused ({type(exc).__name__})", code="oidc_failed"
            ) from None
        return dict(token.claims)


def _get_json(url: str) -> dict[str, Any]:
    try:
        answer = httpx.get(url, timeout=10)
        answer.raise_for_status()
        found: dict[str, Any] = answer.json()
        return found
    except (httpx.HTTPError, ValueError):
        raise AuthenticationFailed("the identity provider did not answer", code="oidc_failed") from None


def _sign(secret: str, payload: bytes) -> str:
    return hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()


def _flow_cookie(settings: OidcSettings, flow: dict[str, Any]) -> str:
    payload = base64.urlsafe_b64encode(json.dumps(flow).encode())
    return f"{payload.decode()}.{_sign(settings.client_secret, payload)}"


def _read_flow(settings: OidcSettings, cookie: str | None) -> dict[str, Any]:
    refused = AuthenticationFailed("this login did not start here, or took too long", code="oidc_failed")
    if not cookie or "." not in cookie:
        raise refused
    payload, signature = cookie.rsplit(".", 1)
    if not hmac.compare_digest(signature, _sign(settings.client_secret, payload.encode())):
        raise refused
    flow: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload))
    if flow.get("expires", 0) < time.time():
        raise refused
    return flow


def _provider(request: Request) -> Provider:
    provider: Provider | None = getattr(request.app.state, "oidc", None)
    if provider is None:
        raise AuthenticationFailed("this server has no identity provider configured", code="oidc_failed")
    return provider


@router.get("/login", status_code=302, response_class=Response)
def oidc_login(request: Request) -> Response:
    """Send the browser to the identity provider; it comes back to the callback."""
    provider = _provider(request)
    settings = provider.settings
    state, nonce, verifier = (secrets.token_urlsafe(32) for _ in range(3))
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    query = urlencode(
        {
            "response_type": "code",
            "client_id": settings.client_id,
            "redirect_uri": settings.redirect_url,
            "scope": settings.scope,
            "state": state,
            "nonce": nonce,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )
    response = RedirectResponse(f"{provider.config()['authorization_endpoint']}?{query}", status_code=302)
    flow = {"state": state, "nonce": nonce, "verifier": verifier, "expires": time.time() + FLOW_SECONDS}
    secure = request.app.state.options.secure_cookies
    # Lax, not Strict: the provider's redirect back is a top-level navigation from another site
    response.set_cookie(
        FLOW_COOKIE,
        _flow_cookie(settings, flow),
        max_age=FLOW_SECONDS,
        httponly=True,
        secure=secure,
        samesite="lax",
        path="/v1/auth/oidc",
    )
    return response


@router.get("/callback")
def oidc_callback(request: Request, services: Svc, code: str = "", state: str = "") -> Response:
    """The provider's answer: the code is exchanged, the ID token checked, and a medops session opened."""
    provider = _provider(request)
    settings = provider.settings
    flow = _read_flow(settings, request.cookies.get(FLOW_COOKIE))
    if not code or not hmac.compare_digest(state, flow["state"]):
        raise AuthenticationFailed("the identity provider's answer does not match this login", code="oidc_failed")
    try:
        answer = httpx.post(
            provider.config()["token_endpoint"],
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": settings.redirect_url,
                "code_verifier": flow["verifier"],
            },
            auth=(settings.client_id, settings.client_secret),
            timeout=10,
        )
        answer.raise_for_status()
        id_token = str(answer.json()["id_token"])
    except (httpx.HTTPError, ValueError, KeyError):
        raise AuthenticationFailed("the identity provider refused the code", code="oidc_failed") from None
    claims = provider.claims(id_token, flow["nonce"])
    username = claims.get(settings.username_claim)
    if not isinstance(username, str) or not username:
        raise AuthenticationFailed(f"the ID token has no {settings.username_claim!r} claim", code="oidc_failed")
    session, secret = services.identity.login_external(
        username, provider=settings.issuer, subject=str(claims["sub"]), channel="api"
    )
    response = session_response(request, session, secret, cookie=True)
    response.delete_cookie(FLOW_COOKIE, path="/v1/auth/oidc")
    return response
