"""Users, roles, API tokens and logins as an operator meets them; the caller's roles are checked inside each change.

Every adapter proves who acts the same way: a login (password or API token) gives a short-lived
session token, and each command or request presents a session or an API token, which
`authenticate` turns into the Caller. Nothing else makes a Caller for a user: a name alone
(MEDOPS_USER, a form field) grants nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cached_property

from medops.caller import Caller, Channel
from medops.credentials import Credential
from medops.errors import AuthenticationFailed, InvalidInput, NotFound
from medops.identity.admissions import Admissions
from medops.identity.roles import READ_ROLES, Role
from medops.identity.tokens import SESSION, TokenView
from medops.identity.users import UserView
from medops.platform import Platform


@dataclass(frozen=True)
class Identity:
    """Who a presented credential proves: the user, and the session or API token it is."""

    user: UserView
    credential: TokenView

    def to_json(self) -> dict[str, object]:
        return {
            "user": self.user.username,
            "full_name": self.user.full_name,
            "roles": list(self.user.roles),
            "via": self.credential.kind,
            "id": self.credential.id,
            "expires_at": self.credential.expires_at,
        }


class IdentityService:
    def __init__(self, platform: Platform) -> None:
        self.platform = platform

    # --- who acts ----------------------------------------------------------------------
    def login(
        self,
        username: str | None,
        *,
        password: str | None = None,
        token: str | None = None,
        channel: str = "cli",
    ) -> tuple[TokenView, str]:
        """A new session for the user a password (lockout applies) or an API token proves.

        Returns the session and its secret, shown once: the adapter keeps it for the user (the
        CLI in their session file, a server in a cookie). A user whose password an admin reset
        must change it first.
        """
        if (password is None) == (token is None):
            raise InvalidInput("a login needs a password or an API token (one of them)")
        if password is not None:
            if not username:
                raise InvalidInput("a password login needs the user name")
            user = self.platform.users.check_password(username, password, purpose="login")
            if user.must_change_password:
                raise AuthenticationFailed(
                    f"user {user.username!r} must change the password an admin reset before logging in",
                    code="password_change_required",
                    user=user.username,
                )
            method, via = "password", None
        else:
            assert token is not None
            user, api = self.platform.tokens.verify(token)  # refuses a reset user's token too
            if api.kind != "api":
                raise InvalidInput("log in with an API token, not a session", code="not_an_api_token")
            if username and username != user.username:
                raise AuthenticationFailed(f"the API token is not {username!r}'s", code="credential_invalid")
            method, via = "token", api.id
        return self.platform.tokens.open_session(
            user.username, hours=self.platform.settings.session_hours, channel=channel, method=method, via=via
        )

    def login_external(
        self, username: str, *, provider: str, subject: str, channel: str = "api"
    ) -> tuple[TokenView, str]:
        """A session for a user an identity provider vouched for (OpenID Connect): the user must exist here
        and be active, and holds this workspace's roles only. A refusal is audited as a failed login."""
        from medops.audit import NewEvent
        from medops.identity.provider_links import ProviderLinks

        try:
            user = self.platform.users.get(username)
        except NotFound:
            user = None
        why: str | None = None
        if user is None or not user.active:
            why = f"{provider} vouched for {username!r}, " + (
                "who is not a user here" if user is None else "who is disabled"
            )
        else:
            why = ProviderLinks(self.platform.users).admit(provider, subject, username)
        if why is not None or user is None:
            self.platform.trail.record(NewEvent(username, "auth.login.failed", "user", username, reason=why))
            raise AuthenticationFailed(
                f"the identity provider's user {username!r} can't log in here", code="credential_invalid"
            )
        return self.platform.tokens.open_session(
            user.username,
            hours=self.platform.settings.session_hours,
            channel=channel,
            method="oidc",
            via=f"{provider} {subject}"[:200],
        )

    def unlink_provider(self, caller: Caller, username: str, *, reason: str | None) -> UserView:
        """Remove the user's pinned identity-provider accounts (admin): their next provider login links anew."""
        from medops.identity.provider_links import ProviderLinks

        return ProviderLinks(self.platform.users).unlink(caller.user, username, reason=reason)

    def identify(self, secret: str) -> Identity:
        """The user and the session or API token a secret proves; refused if revoked, expired or disabled."""
        user, credential = self.platform.tokens.verify(secret)
        return Identity(user, credential)

    def authenticate(self, secret: str) -> Caller:
        """The Caller a session or API token secret proves: what every adapter acts as."""
        return self.authenticate_until(secret)[0]

    def authenticate_until(self, secret: str) -> tuple[Caller, datetime | None]:
        """``authenticate``, and until when the credential is valid (None: no expiry): how long an admission
        may be remembered at most."""
        found = self.identify(secret)
        channel: Channel = "session" if found.credential.kind == SESSION else "token"
        return Caller(found.user.username, channel=channel), found.credential.expires_at

    @cached_property
    def credentials(self) -> Admissions:
        """This service's memory of checked credentials (see ``remembering``): a server's requests share it."""
        return self.remembering()

    def authenticate_remembered(self, secret: str) -> Caller:
        """``authenticate``, remembered while no user or token event is newer than the check: what a server
        asks at every request."""
        return self.credentials.admit(secret)

    def close(self) -> None:
        """Give back the connection the memory of credentials reads the newest identity event on."""
        if "credentials" in self.__dict__:
            self.credentials.close()

    def remembering(self) -> Admissions:
        """Credentials checked in full once, then remembered while no user or token event is newer: what a
        process that acts many times as one credential (a script's runs) holds."""
        from medops.identity.admissions import NEWEST_IDENTITY_EVENT

        return Admissions(self.platform.db, self.authenticate_until, epoch=NEWEST_IDENTITY_EVENT)

    def caller(self, credential: Credential | None, *, writes: bool) -> Caller:
        """Who a command acts as: the verified credential's user; without one, a read runs anonymously
        unless the workspace asks for a login to read too (login_for_reads), and a change is refused."""
        if credential is not None:
            return self.authenticate(credential.secret)
        if writes:
            raise AuthenticationFailed("this changes the workspace: it needs you to log in", code="login_required")
        if self.platform.settings.login_for_reads:
            raise AuthenticationFailed("this workspace needs a login to read as well", code="login_required")
        return Caller.anonymous()

    def reader(self, caller: Caller, action: str) -> None:
        """A read over the shared server: the caller must hold a role that reads the workspace's records;
        a refusal is audited. (The CLI's anonymous reads, where a workspace allows them, don't pass here.)"""
        self.platform.users.require_role(caller.user, action, set(READ_ROLES))

    def roles_of(self, caller: Caller) -> tuple[str, ...]:
        """The roles the caller holds now: what a page offers them to do (the services still check each act)."""
        return self.platform.users.get(caller.user).roles

    def operator(self, caller: Caller, action: str) -> None:
        """What only an admin sees over the shared server (the workspace's settings and health); a refusal
        is audited."""
        self.platform.users.require_role(caller.user, action, {Role.ADMIN})

    def logout(self, secret: str) -> TokenView:
        """End a session: its secret is refused from now on."""
        return self.platform.tokens.close_session(secret)

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

    def change_password(self, username: str, old: str, new: str) -> UserView:
        """A user changes their own password; the old one is the proof, so no session is needed."""
        return self.platform.users.change_password(username, old, new)

    def reset_password(self, caller: Caller, username: str, temporary: str, *, reason: str | None = None) -> UserView:
        """An admin sets a temporary password that the user must change before anything else."""
        return self.platform.users.reset_password(caller.user, username, temporary, reason=reason)

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

    def tokens(self, caller: Caller, *, username: str | None = None, sessions: bool = False) -> list[TokenView]:
        return self.platform.tokens.list(caller.user, username=username, sessions=sessions)

    def revoke_token(self, caller: Caller, token_id: str, *, reason: str | None = None) -> TokenView:
        return self.platform.tokens.revoke(caller.user, token_id, reason=reason)
