"""Logging in and out over the API: a person gets a session cookie (and its CSRF token), a client that
keeps its own credential (the CLI, the SDK) asks for the session's secret instead."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from medops.errors import InvalidInput
from medops.identity.tokens import TokenView
from medops.server.api.auth import CSRF_COOKIE, SESSION_COOKIE, Acting, Svc, csrf_token, presented
from medops.server.api.documents import Doc

router = APIRouter(prefix="/v1/auth", tags=["auth"])


class Login(BaseModel):
    username: str | None = Field(None, max_length=64, description="with password")
    password: str | None = Field(None, max_length=1024, description="the user's password (lockout applies)")
    token: str | None = Field(None, max_length=512, description="or an API token")
    cookie: bool = Field(True, description="set the session cookie; false: return the session's secret instead")


class PasswordChange(BaseModel):
    username: str = Field(..., max_length=64)
    old_password: str = Field(..., max_length=1024)
    new_password: str = Field(..., max_length=1024)


@router.post("/login")
def login(request: Request, services: Svc, body: Annotated[Login, Body()]) -> Doc:
    """Open a session with a password or an API token; failed passwords lock the account as the CLI's do."""
    if (body.password is None) == (body.token is None):
        raise InvalidInput("log in with a password (and username) or an API token: one of them")
    session, secret = services.identity.login(body.username, password=body.password, token=body.token, channel="api")
    return session_response(request, session, secret, cookie=body.cookie)


def session_response(request: Request, session: TokenView, secret: str, *, cookie: bool) -> Doc:
    """A login's answer: the session's cookies (and its CSRF token) for a browser, its secret for a client."""
    csrf = csrf_token(secret)
    doc = {"user": session.username, "session": session.id, "expires_at": session.expires_at, "csrf_token": csrf}
    if not cookie:
        doc["secret"] = secret  # shown once: the client keeps it as its bearer credential
        return Doc(doc)
    response = Doc(doc)
    set_session_cookies(request, response, session, secret)
    return response


def set_session_cookies(request: Request, response: Response, session: TokenView, secret: str) -> None:
    """The session's cookie (HttpOnly) and its CSRF token's, for as long as the session lasts."""
    secure = request.app.state.options.secure_cookies
    max_age = int((session.expires_at - session.created_at).total_seconds()) if session.expires_at else None
    response.set_cookie(
        SESSION_COOKIE, secret, max_age=max_age, httponly=True, secure=secure, samesite="strict", path="/"
    )
    # readable by the page: it sends the value back in the X-CSRF-Token header with each change
    response.set_cookie(
        CSRF_COOKIE, csrf_token(secret), max_age=max_age, httponly=False, secure=secure, samesite="strict", path="/"
    )


def clear_session_cookies(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.delete_cookie(CSRF_COOKIE, path="/")


@router.post("/logout")
def logout(request: Request, services: Svc, caller: Acting) -> Doc:
    """End the session this request presents (its cookie or bearer secret); an API token is revoked instead."""
    credential = presented(request)
    assert credential is not None  # acting refused a request without one
    ended = services.identity.logout(credential[0])
    response = Doc({"user": ended.username, "session": ended.id, "state": "ended"})
    clear_session_cookies(response)
    return response


@router.get("/whoami")
def whoami(request: Request, services: Svc, caller: Acting) -> Doc:
    """The user and the credential this request presents."""
    credential = presented(request)
    assert credential is not None
    return Doc(services.identity.identify(credential[0]).to_json())


@router.post("/password")
def change_password(services: Svc, body: Annotated[PasswordChange, Body()]) -> Doc:
    """A user changes their own password: the old one is the proof (also after an admin's reset)."""
    user = services.identity.change_password(body.username, body.old_password, body.new_password)
    return Doc({"user": user.username, "password": "changed"})
