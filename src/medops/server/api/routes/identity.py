"""Users, roles and API tokens (admin changes; each user sees their own tokens)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query
from pydantic import BaseModel, Field

from medops.identity.roles import parse_role, parse_roles
from medops.server.api.auth import Acting, Svc
from medops.server.api.documents import Doc

router = APIRouter(prefix="/v1", tags=["users and tokens"])
Reason = Field(None, max_length=2000, description="why: recorded in the audit trail with the change")


class NewUser(BaseModel):
    username: str = Field(..., max_length=64)
    full_name: str = Field(..., max_length=200)
    password: str = Field(..., max_length=1024, description="a first password the user changes")
    roles: list[str] = Field(..., max_length=10)
    reason: str | None = Reason


class Change(BaseModel):
    reason: str | None = Reason


class Reset(BaseModel):
    temporary_password: str = Field(..., max_length=1024)
    reason: str | None = Reason


class NewToken(BaseModel):
    name: str = Field(..., max_length=100)
    username: str | None = Field(None, max_length=64, description="an admin makes one for another user")
    expires_in_days: float | None = Field(None, gt=0, le=3650)
    reason: str | None = Reason


@router.get("/users")
def list_users(services: Svc, caller: Acting) -> Doc:
    """Every user with their roles and standing (admin)."""
    return Doc([u.to_json() for u in services.identity.users(caller)])


@router.post("/users", status_code=201)
def add_user(services: Svc, caller: Acting, body: Annotated[NewUser, Body()]) -> Doc:
    """Add a user with roles (admin); audited."""
    user = services.identity.add_user(
        caller, body.username, body.full_name, body.password, parse_roles(body.roles), reason=body.reason
    )
    return Doc(user.to_json(), status_code=201)


@router.post("/users/{username}/roles/{role}")
def grant_role(services: Svc, caller: Acting, username: str, role: str, body: Annotated[Change, Body()]) -> Doc:
    """Grant a role (admin); audited."""
    return Doc(services.identity.grant(caller, username, parse_role(role), reason=body.reason).to_json())


@router.delete("/users/{username}/roles/{role}")
def revoke_role(
    services: Svc,
    caller: Acting,
    username: str,
    role: str,
    reason: Annotated[str | None, Query(max_length=2000)] = None,
) -> Doc:
    """Revoke a role (admin); audited with the reason."""
    return Doc(services.identity.revoke_role(caller, username, parse_role(role), reason=reason).to_json())


@router.post("/users/{username}/disable")
def disable_user(services: Svc, caller: Acting, username: str, body: Annotated[Change, Body()]) -> Doc:
    """Disable a user: their sessions and tokens stop working (admin); audited."""
    return Doc(services.identity.disable(caller, username, reason=body.reason).to_json())


@router.post("/users/{username}/enable")
def enable_user(services: Svc, caller: Acting, username: str, body: Annotated[Change, Body()]) -> Doc:
    """Enable a disabled or locked user (admin); audited."""
    return Doc(services.identity.enable(caller, username, reason=body.reason).to_json())


@router.delete("/users/{username}/provider-links")
def unlink_provider(
    services: Svc,
    caller: Acting,
    username: str,
    reason: Annotated[str | None, Query(max_length=2000)] = None,
) -> Doc:
    """Remove the identity-provider accounts pinned to a user (admin, with a reason): their next login through
    the provider pins the account it comes from; audited."""
    return Doc(services.identity.unlink_provider(caller, username, reason=reason).to_json())


@router.post("/users/{username}/password-reset")
def reset_password(services: Svc, caller: Acting, username: str, body: Annotated[Reset, Body()]) -> Doc:
    """Set a temporary password the user must change before anything else (admin); audited."""
    user = services.identity.reset_password(caller, username, body.temporary_password, reason=body.reason)
    return Doc(user.to_json())


@router.get("/tokens")
def list_tokens(
    services: Svc,
    caller: Acting,
    username: Annotated[str | None, Query(max_length=64, description="another user's (admin)")] = None,
    sessions: bool = False,
) -> Doc:
    """API tokens (and login sessions with sessions=true): your own, or a user's for an admin."""
    return Doc([t.to_json() for t in services.identity.tokens(caller, username=username, sessions=sessions)])


@router.post("/tokens", status_code=201)
def create_token(services: Svc, caller: Acting, body: Annotated[NewToken, Body()]) -> Doc:
    """A new API token; its secret is in this answer only, never stored."""
    view, secret = services.identity.create_token(
        caller, body.name, username=body.username, expires_in_days=body.expires_in_days, reason=body.reason
    )
    return Doc({**view.to_json(), "secret": secret}, status_code=201)


@router.delete("/tokens/{token_id}")
def revoke_token(
    services: Svc,
    caller: Acting,
    token_id: str,
    reason: Annotated[str | None, Query(max_length=2000)] = None,
) -> Doc:
    """Revoke an API token: refused from now on; audited."""
    return Doc(services.identity.revoke_token(caller, token_id, reason=reason).to_json())
