"""API tokens: random secrets shown once, stored as SHA-256, revocable, optionally expiring.

A token reads ``medops_<id>_<secret>``; the id finds the row, the secret is compared by
hash. SHA-256 (not argon2) is right here: the secret has 256 bits of entropy, so there is
nothing to brute-force, and the REST API checks a token on every request.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from medops.audit.trail import AuditTrail
from medops.clock import utc_now
from medops.errors import AuthenticationFailed, InvalidInput, NotFound
from medops.identity.roles import Role
from medops.identity.users import UserRepository, UserService, UserView
from medops.store.database import Database
from medops.store.schema import ApiToken, User

PREFIX = "medops"


@dataclass(frozen=True)
class TokenView:
    id: str
    username: str
    name: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "user": self.username,
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


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


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
        token_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        now = utc_now()
        expires = now + timedelta(days=expires_in_days) if expires_in_days else None
        with self.users.authorized(
            actor, "token.create", "token", token_id, {Role.ADMIN}, reason=reason, allow_self=owner
        ) as ch:
            user = UserRepository(ch.session).get(owner)
            if not user.active:
                raise InvalidInput(f"user {owner!r} is disabled; enable them before giving them a token")
            row = ApiToken(
                id=token_id,
                user_id=user.id,
                name=name,
                secret_hash=_digest(secret),
                created_at=now,
                expires_at=expires,
                revoked_at=None,
            )
            ch.session.add(row)
            view = TokenView(token_id, owner, name, now, expires, None)
            ch.after = {"owner": owner, "name": name, "expires_at": expires}
        return view, f"{PREFIX}_{token_id}_{secret}"

    def list(self, actor: str, *, username: str | None = None) -> list[TokenView]:
        """Admins see every token; others see their own."""
        me = self.users.require_role(actor, "token.list", set(Role))
        query = select(ApiToken, User.username).join(User, User.id == ApiToken.user_id).order_by(ApiToken.created_at)
        if not me.has(Role.ADMIN):
            query = query.where(User.username == actor)
        elif username:
            query = query.where(User.username == username)
        with self.db.read() as session:
            rows = session.execute(query).all()
        return [TokenView(t.id, u, t.name, t.created_at, t.expires_at, t.revoked_at) for t, u in rows]

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
            view = TokenView(token.id, found, token.name, token.created_at, token.expires_at, token.revoked_at)
        return view

    def authenticate(self, token: str) -> UserView:
        """The user a presented token belongs to; any failure is the same vague error."""
        failure = AuthenticationFailed("invalid, expired or revoked API token")
        parts = token.strip().split("_", 2)
        if len(parts) != 3 or parts[0] != PREFIX:
            raise failure
        _, token_id, secret = parts
        with self.db.read() as session:
            row = session.get(ApiToken, token_id)
            if row is None or not hmac.compare_digest(row.secret_hash, _digest(secret)):
                raise failure
            if row.revoked_at is not None or (row.expires_at is not None and row.expires_at <= utc_now()):
                raise failure
            user = session.get(User, row.user_id)
            if user is None or not user.active:
                raise failure
            return UserRepository(session).view(user)
