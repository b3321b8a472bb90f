"""API tokens and login sessions: random secrets shown once, stored as SHA-256, revocable, expiring.

Both read ``medops_<id>_<secret>``; the id finds the row, the secret is compared by hash.
SHA-256 (not argon2) is right here: the secret has 256 bits of entropy, so there is nothing
to brute-force, and every command or request checks one. An API token (kind 'api') is made
by `token create` for automation and lives until revoked or its optional expiry; a session
(kind 'session') is made by a login and lives for the workspace's session_hours.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import select

from medops.audit.state import unexplained
from medops.audit.trail import AuditTrail, Change, NewEvent, append_events
from medops.clock import utc_now
from medops.errors import AuthenticationFailed, InvalidInput, NotFound
from medops.identity.roles import Role
from medops.identity.users import UserRepository, UserService, UserView, _inactive
from medops.store.database import Database
from medops.store.schema import ApiToken, User

PREFIX = "medops"
Kind = Literal["api", "session"]
API: Kind = "api"
SESSION: Kind = "session"


@dataclass(frozen=True)
class TokenView:
    id: str
    username: str
    name: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    kind: Kind = API

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "user": self.username,
            "kind": self.kind,
            "name": self.name,
            "state": self.state,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "revoked_at": self.revoked_at,
        }

    @property
    def state(self) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= utc_now():
            return "expired"
        return "active"


def _session_event(ch: Change, event: NewEvent) -> None:
    """A session is a token row too: its own event keeps the row explained (audit.state)."""
    append_events(ch.session, [event], changes=True)


def _new_secret() -> tuple[str, str]:
    """A token's id (finds the row) and its secret (shown once, stored only as a hash)."""
    return secrets.token_hex(6), secrets.token_urlsafe(32)


def _row(
    token_id: str, secret: str, user_id: int, name: str, now: datetime, expires: datetime | None, kind: str
) -> ApiToken:
    return ApiToken(
        id=token_id,
        user_id=user_id,
        name=name,
        secret_hash=_digest(secret),
        created_at=now,
        expires_at=expires,
        revoked_at=None,
        kind=kind,
    )


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _view(row: ApiToken, username: str) -> TokenView:
    kind: Kind = SESSION if row.kind == SESSION else API
    return TokenView(row.id, username, row.name, row.created_at, row.expires_at, row.revoked_at, kind)


def _when(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC"


class TokenService:
    def __init__(self, db: Database, trail: AuditTrail, users: UserService) -> None:
        self.db = db
        self.trail = trail
        self.users = users

    def create(
        self,
        actor: str,
        name: str,
        *,
        username: str | None = None,
        expires_in_days: float | None = None,
        reason: str | None = None,
    ) -> tuple[TokenView, str]:
        """Make a token for ``username`` (default: the actor); returns the only copy of the secret."""
        owner = username or actor
        if not name.strip():
            raise InvalidInput("a token needs a name that says what it is for, e.g. 'ehr-integration'")
        if expires_in_days is not None and expires_in_days <= 0:
            raise InvalidInput("a token's lifetime must be positive", code="token_expiry_invalid")
        token_id, secret = _new_secret()
        now = utc_now()
        expires = now + timedelta(days=expires_in_days) if expires_in_days else None
        with self.users.authorized(
            actor, "token.create", "token", token_id, {Role.ADMIN}, reason=reason, allow_self=owner
        ) as ch:
            user = UserRepository(ch.session).get(owner)
            if not user.active:
                raise InvalidInput(f"user {owner!r} is disabled; enable them before giving them a token")
            ch.session.add(_row(token_id, secret, user.id, name, now, expires, API))
            view = TokenView(token_id, owner, name, now, expires, None, API)
            ch.after = {"owner": owner, "name": name, "expires_at": expires}
        return view, f"{PREFIX}_{token_id}_{secret}"

    def list(self, actor: str, *, username: str | None = None, sessions: bool = False) -> list[TokenView]:
        """Admins see every token; others see their own. Login sessions only when asked for."""
        me = self.users.require_role(actor, "token.list", set(Role))
        query = select(ApiToken, User.username).join(User, User.id == ApiToken.user_id).order_by(ApiToken.created_at)
        if not sessions:
            query = query.where(ApiToken.kind == API)
        if not me.has(Role.ADMIN):
            query = query.where(User.username == actor)
        elif username:
            query = query.where(User.username == username)
        with self.db.read() as session:
            rows = session.execute(query).all()
        return [_view(t, u) for t, u in rows]

    def revoke(self, actor: str, token_id: str, *, reason: str | None = None) -> TokenView:
        with self.db.read() as session:
            found = session.execute(
                select(User.username).join(ApiToken, User.id == ApiToken.user_id).where(ApiToken.id == token_id)
            ).scalar_one_or_none()
        if found is None:
            raise NotFound(f"no token {token_id!r}", code="token_not_found")
        with self.users.authorized(
            actor,
            "token.revoke",
            "token",
            token_id,
            {Role.ADMIN},
            reason=reason,
            allow_self=found,
            reason_required=True,
        ) as ch:
            token = ch.session.get(ApiToken, token_id)
            assert token is not None
            if token.revoked_at is not None:
                raise InvalidInput(f"token {token_id} was revoked already")
            token.revoked_at = utc_now()
            ch.before, ch.after = {"state": "active"}, {"state": "revoked"}
            view = _view(token, found)
        return view

    def authenticate(self, token: str) -> UserView:
        """The user a presented token or session belongs to (see verify)."""
        return self.verify(token)[0]

    def verify(self, secret: str) -> tuple[UserView, TokenView]:
        """The user a presented secret belongs to, and the token or session it is.

        A secret that matches no row is refused vaguely; once it matches, its holder has the
        real secret, so the refusal says what is wrong (expired when, ended, user disabled).
        """
        parts = secret.strip().split("_", 2)
        if len(parts) != 3 or parts[0] != PREFIX:
            raise AuthenticationFailed("not a medops token or session", code="credential_invalid")
        _, token_id, raw = parts
        with self.db.read() as session:
            row = session.get(ApiToken, token_id)
            if row is None or not hmac.compare_digest(row.secret_hash, _digest(raw)):
                raise AuthenticationFailed("invalid token or session: it matches none here", code="credential_invalid")
            user = session.get(User, row.user_id)
            assert user is not None  # a foreign key
            # a token or session row written (or revived) in SQL proves nothing: the trail must explain it
            if unexplained(session, "token", token_id) or unexplained(session, "user", user.username):
                raise AuthenticationFailed("invalid token or session: it matches none here", code="credential_invalid")
            view = _view(row, user.username)
            owner = UserRepository(session).view(user)
            failures = user.failed_logins
        what = "session" if view.kind == SESSION else f"API token {view.id}"
        kind = "session" if view.kind == SESSION else "token"
        if view.revoked_at is not None:
            ended = "ended (logged out or revoked)" if view.kind == SESSION else "revoked"
            raise AuthenticationFailed(f"your {what} was {ended} at {_when(view.revoked_at)}", code=f"{kind}_ended")
        if view.expires_at is not None and view.expires_at <= utc_now():
            raise AuthenticationFailed(f"your {what} expired at {_when(view.expires_at)}", code=f"{kind}_expired")
        if not owner.active:
            raise AuthenticationFailed(_inactive(owner.username, failures), code="account_disabled")
        if owner.must_change_password:
            raise AuthenticationFailed(
                f"user {owner.username!r} must change the password an admin reset before acting",
                code="password_change_required",
                user=owner.username,
            )
        return owner, view

    def open_session(
        self, username: str, *, hours: float, channel: str, method: str, via: str | None = None
    ) -> tuple[TokenView, str]:
        """A session for a user whose password or API token was just verified; audited as auth.login.

        Its secret is returned once (the adapter keeps it: the CLI in the user's session file);
        only its hash is stored.
        """
        if hours <= 0:
            raise InvalidInput("a session's lifetime must be positive")
        token_id, raw = _new_secret()
        now = utc_now()
        expires = now + timedelta(hours=hours)
        name = f"login ({method}, {channel})"
        with self.trail.change(username, "auth.login", "user", username, reason=f"login with {method}") as ch:
            user = UserRepository(ch.session).get(username)
            ch.session.add(_row(token_id, raw, user.id, name, now, expires, SESSION))
            ch.session.flush()
            _session_event(ch, NewEvent(username, "session.open", "token", token_id, after={"expires_at": expires}))
            ch.after = {
                "session": token_id,
                "channel": channel,
                "method": method,
                **({"token": via} if via else {}),
                "expires_at": expires,
            }
        return TokenView(token_id, username, name, now, expires, None, SESSION), f"{PREFIX}_{token_id}_{raw}"

    def close_session(self, secret: str) -> TokenView:
        """End the session this secret opened (logout): it can't be used again. Audited as auth.logout."""
        _, view = self.verify(secret)
        if view.kind != SESSION:
            raise InvalidInput("an API token is not a login session: revoke it instead", code="not_a_session")
        with self.trail.change(view.username, "auth.logout", "user", view.username, reason="logout") as ch:
            row = ch.session.get(ApiToken, view.id)
            assert row is not None
            row.revoked_at = utc_now()
            ch.session.flush()
            _session_event(ch, NewEvent(view.username, "session.close", "token", view.id, reason="logout"))
            ch.after = {"session": view.id}
            view = _view(row, view.username)
        return view
