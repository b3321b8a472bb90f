"""Who calls: a bearer token (API token or session) for machines and the CLI, a session cookie for
people in a browser; nothing else.

Default deny: every route but the probes and the login depends on ``acting``, which turns the
credential into a Caller through the identity service (the same check the CLI makes), or
answers 401. A change made with a cookie must also carry the session's CSRF token in a header:
a page on another site can make the browser send the cookie, never the header. The token is
derived from the session's secret (HMAC), so it is never stored and can't be fixed in advance.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import replace
from typing import Annotated

from fastapi import Depends, Request

from medops.caller import Caller
from medops.errors import AuthenticationFailed, PermissionDenied
from medops.services import Services

SESSION_COOKIE = "medops_session"
CSRF_COOKIE = "medops_csrf"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def csrf_token(session_secret: str) -> str:
    """The CSRF token of a session: the page reads it from its cookie and sends it back in a header."""
    return hmac.new(session_secret.encode(), b"medops-csrf", hashlib.sha256).hexdigest()


def presented(request: Request) -> tuple[str, bool] | None:
    """The secret the request presents and whether it came in the session cookie; a bearer header wins."""
    header = request.headers.get("authorization")
    if header:
        scheme, _, secret = header.partition(" ")
        if scheme.lower() == "bearer" and secret.strip():
            return secret.strip(), False
        return None
    cookie = request.cookies.get(SESSION_COOKIE)
    return (cookie, True) if cookie else None


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


def acting(request: Request) -> Caller:
    """The verified caller of this request, or 401 (no credential, or one that is not valid)."""
    credential = presented(request)
    if credential is None:
        raise AuthenticationFailed(
            "this endpoint needs a bearer token (API token or session) or a login session cookie",
            code="login_required",
            hint="POST /v1/auth/login, or send Authorization: Bearer <token>",
        )
    secret, from_cookie = credential
    try:
        caller = services(request).identity.authenticate_remembered(secret)
    except AuthenticationFailed:
        # one answer for every bad credential: unknown, revoked, expired or disabled are not told apart
        raise AuthenticationFailed("the credential is not valid", code="credential_invalid") from None
    if from_cookie and request.method not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(sent.encode(), csrf_token(secret).encode()):
            raise PermissionDenied(
                f"a change made with the session cookie needs the {CSRF_HEADER} header",
                code="csrf_failed",
                hint=f"send the value of the {CSRF_COOKIE} cookie (or the login's csrf_token) in {CSRF_HEADER}",
            )
    caller = replace(caller, request_id=request.state.request_id)
    request.state.caller = caller
    return caller


def reading(request: Request, caller: Annotated[Caller, Depends(acting)]) -> Caller:
    """``acting``, for a read: the user must hold a role that reads the workspace (a predictor reads nothing)."""
    action = f"api.{request.scope['route'].name}" if request.scope.get("route") else "api.read"
    services(request).identity.reader(caller, action)
    return caller


Acting = Annotated[Caller, Depends(acting)]
Reading = Annotated[Caller, Depends(reading)]
Svc = Annotated[Services, Depends(services)]
