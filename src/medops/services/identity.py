"""Users, roles and API tokens as an operator meets them; the caller's roles are checked inside each change."""

from __future__ import annotations

from medops.caller import Caller
from medops.identity.roles import Role
from medops.identity.tokens import TokenView
from medops.identity.users import UserView
from medops.platform import Platform


class IdentityService:
    def __init__(self, platform: Platform) -> None:
        self.platform = platform

    # --- users -----------------------------------------------------------------------
    def add_user(
        self,
        caller: Caller,
        username: str,
        full_name: str,
        password: str,
        roles: list[Role],
        *,
        reason: str | None = None,
    ) -> UserView:
        return self.platform.users.add(caller.user, username, full_name, password, roles, reason=reason)

    def users(self, caller: Caller) -> list[UserView]:
        return self.platform.users.list(caller.user)

    def disable(self, caller: Caller, username: str, *, reason: str | None = None) -> UserView:
        return self.platform.users.disable(caller.user, username, reason=reason)

    def enable(self, caller: Caller, username: str, *, reason: str | None = None) -> UserView:
        return self.platform.users.enable(caller.user, username, reason=reason)

    def grant(self, caller: Caller, username: str, role: Role, *, reason: str | None = None) -> UserView:
        return self.platform.users.grant(caller.user, username, role, reason=reason)

    def revoke_role(self, caller: Caller, username: str, role: Role, *, reason: str | None = None) -> UserView:
        return self.platform.users.revoke(caller.user, username, role, reason=reason)

    def set_password(self, caller: Caller, username: str, password: str, *, reason: str | None = None) -> None:
        self.platform.users.set_password(caller.user, username, password, reason=reason)

    # --- API tokens ----------------------------------------------------------------
    def create_token(
        self,
        caller: Caller,
        name: str,
        *,
        username: str | None = None,
        expires_in_days: float | None = None,
        reason: str | None = None,
    ) -> tuple[TokenView, str]:
        """The token and its secret, which is shown once and never stored."""
        return self.platform.tokens.create(
            caller.user, name, username=username, expires_in_days=expires_in_days, reason=reason
        )

    def tokens(self, caller: Caller, *, username: str | None = None) -> list[TokenView]:
        return self.platform.tokens.list(caller.user, username=username)

    def revoke_token(self, caller: Caller, token_id: str, *, reason: str | None = None) -> TokenView:
        return self.platform.tokens.revoke(caller.user, token_id, reason=reason)
