"""Users: the repository over their tables and the service that changes them, audited."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, delete, func, select, update
from sqlalchemy.orm import Session

from medops.audit.state import unexplained
from medops.audit.trail import AuditTrail, Change, NewEvent, append_events, guard
from medops.caller import ANONYMOUS
from medops.clock import utc_now
from medops.errors import AuthenticationFailed, Conflict, InvalidInput, NotFound, PermissionDenied
from medops.identity.passwords import check_policy, dummy_hash, hash_password, verify_password
from medops.identity.roles import READ_ROLES, Role
from medops.store.database import Database
from medops.store.schema import ApiToken, User, UserRole

USERNAME = re.compile(r"^[a-z][a-z0-9_.-]{1,63}$")
MAX_FAILED_LOGINS = 5
BOOTSTRAP_ACTOR = "system:init"
RESERVED = {ANONYMOUS}  # names that stand for no user: none can be made with them


@dataclass(frozen=True)
class UserView:
    id: int
    username: str
    full_name: str
    active: bool
    roles: tuple[str, ...]
    created_at: datetime
    must_change_password: bool = False  # an admin reset it: the user chooses a new one before acting

    def has(self, role: Role) -> bool:
        return role.value in self.roles

    def to_json(self) -> dict[str, object]:
        return {**self.audit_state(), "created_at": self.created_at.isoformat()}

    def audit_state(self) -> dict[str, object]:
        return {
            "username": self.username,
            "full_name": self.full_name,
            "active": self.active,
            "roles": list(self.roles),
            "must_change_password": self.must_change_password,
        }


class _Denied(Exception):
    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


# what every role check reads: built once (see audit.trail's statements)
_STANDING = (
    select(User.active, UserRole.role)
    .outerjoin(UserRole, UserRole.user_id == User.id)
    .where(User.username == bindparam("username"))
)


class UserRepository:
    """All SQL about users lives here."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def find(self, username: str) -> User | None:
        return self.session.execute(select(User).where(User.username == username)).scalar_one_or_none()

    def get(self, username: str) -> User:
        user = self.find(username)
        if user is None:
            raise NotFound(f"no user {username!r}", code="user_not_found")
        return user

    def standing(self, username: str) -> tuple[bool, set[str]] | None:
        """Whether the user is active and the roles they hold, in one query: every change checks it."""
        rows = self.session.connection().execute(_STANDING, {"username": username}).all()
        if not rows:
            return None
        return bool(rows[0][0]), {role for _, role in rows if role is not None}

    def roles(self, user_id: int) -> tuple[str, ...]:
        rows = self.session.execute(select(UserRole.role).where(UserRole.user_id == user_id)).scalars()
        return tuple(sorted(rows))

    def view(self, user: User) -> UserView:
        return UserView(
            user.id,
            user.username,
            user.full_name,
            user.active,
            self.roles(user.id),
            user.created_at,
            bool(user.must_change_password),
        )

    def all(self) -> list[UserView]:
        users = self.session.execute(select(User).order_by(User.username)).scalars().all()
        return [self.view(u) for u in users]

    def count(self) -> int:
        return int(self.session.scalar(select(func.count()).select_from(User)) or 0)

    def add(self, username: str, full_name: str, password_hash: str, roles: Iterable[Role]) -> User:
        if self.find(username) is not None:
            raise Conflict(f"user {username!r} exists already", hint="user names are never reused")
        user = User(
            username=username,
            full_name=full_name,
            password_hash=password_hash,
            active=True,
            failed_logins=0,
            created_at=utc_now(),
            must_change_password=False,
        )
        self.session.add(user)
        self.session.flush()
        for role in roles:
            self.session.add(UserRole(user_id=user.id, role=role.value))
        self.session.flush()
        return user

    def set_role(self, user: User, role: Role, present: bool) -> None:
        if present:
            self.session.add(UserRole(user_id=user.id, role=role.value))
        else:
            self.session.execute(delete(UserRole).where(UserRole.user_id == user.id, UserRole.role == role.value))
        self.session.flush()


def _validate_new(username: str, full_name: str, password: str) -> None:
    if not USERNAME.match(username):
        raise InvalidInput(
            f"user name {username!r} is not valid",
            hint="use 2-64 characters: lowercase letters, digits, '.', '_' or '-', starting with a letter",
        )
    if username in RESERVED:
        raise InvalidInput(f"user name {username!r} is reserved: it stands for a caller without a login")
    if not full_name.strip():
        raise InvalidInput("a user needs a full name: it is the printed name on e-signatures")
    check_policy(username, password)


class UserService:
    """Every change to users goes through here: role-checked, then audited with its change."""

    def __init__(self, db: Database, trail: AuditTrail) -> None:
        self.db = db
        self.trail = trail

    # --- authorization -------------------------------------------------------------

    @contextmanager
    def authorized(
        self,
        actor: str,
        action: str,
        entity_type: str,
        entity_id: str,
        roles: set[Role],
        *,
        reason: str | None = None,
        allow_self: str | None = None,
        reason_required: bool = False,
    ) -> Iterator[Change]:
        """A state change by ``actor`` that holds one of ``roles`` (or is ``allow_self``).

        The role check runs inside the change's transaction; a denial is itself audited.
        Changes to existing records (modify, disable, revoke) must say why.
        """
        _refuse_anonymous(actor, action)
        try:
            with self.trail.change(actor, action, entity_type, entity_id, reason=reason) as ch:
                denial = self._why_denied(ch.session, actor, roles, allow_self)
                if denial is not None:
                    raise _Denied(denial)
                if reason_required and not (reason and reason.strip()):
                    raise InvalidInput(
                        f"{action} needs a reason", code="reason_required", hint="say why: it goes into the audit trail"
                    )
                yield ch
        except _Denied as exc:
            self.trail.record(
                NewEvent(
                    actor,
                    f"{action}.denied",
                    entity_type,
                    entity_id,
                    after={"required_roles": sorted(r.value for r in roles)},
                    reason=exc.why,
                )
            )
            raise PermissionDenied(f"{actor!r} may not {action.replace('.', ' ')}: {exc.why}") from None

    def _why_denied(self, session: Session, actor: str, roles: set[Role], allow_self: str | None) -> str | None:
        standing = UserRepository(session).standing(actor)
        if standing is None:
            return f"no user {actor!r} in this workspace"
        tampered = unexplained(session, "user", actor)  # a role granted in SQL grants nothing
        if tampered is not None:
            return tampered
        active, held = standing
        if not active:
            return _inactive(actor, UserRepository(session).get(actor).failed_logins)
        if allow_self is not None and actor == allow_self:
            return None
        if held & {r.value for r in roles}:
            return None
        needed = " or ".join(sorted(r.value for r in roles))
        return f"it needs the role {needed}"

    def require_role(self, actor: str, action: str, roles: set[Role]) -> UserView:
        """A read that needs a role (audit log, user list): denied reads are audited too."""
        _refuse_anonymous(actor, action)
        with self.db.read() as session:
            denial = self._why_denied(session, actor, roles, None)
            view = UserRepository(session).view(UserRepository(session).get(actor)) if denial is None else None
        if denial is not None or view is None:
            self.trail.record(NewEvent(actor, f"{action}.denied", "workspace", "-", reason=denial))
            raise PermissionDenied(f"{actor!r} may not {action.replace('.', ' ')}: {denial}")
        return view

    # --- changes -------------------------------------------------------------------

    def bootstrap_admin(self, username: str, full_name: str, password: str) -> UserView:
        """The first admin, made by `medops init` when the workspace has no users yet."""
        _validate_new(username, full_name, password)
        digest = hash_password(password)
        with self.trail.change(BOOTSTRAP_ACTOR, "user.add", "user", username, reason="workspace initialized") as ch:
            repo = UserRepository(ch.session)
            if repo.count():
                raise Conflict("the workspace has users already; an admin adds more with `medops user add`")
            view = repo.view(repo.add(username, full_name, digest, [Role.ADMIN]))
            ch.after = view.audit_state()
        return view

    def add(
        self, actor: str, username: str, full_name: str, password: str, roles: list[Role], *, reason: str | None = None
    ) -> UserView:
        _validate_new(username, full_name, password)
        digest = hash_password(password)
        with self.authorized(actor, "user.add", "user", username, {Role.ADMIN}, reason=reason) as ch:
            repo = UserRepository(ch.session)
            view = repo.view(repo.add(username, full_name, digest, roles))
            ch.after = view.audit_state()
        return view

    def _set_active(self, actor: str, username: str, active: bool, reason: str | None) -> UserView:
        action = "user.enable" if active else "user.disable"
        with self.authorized(actor, action, "user", username, {Role.ADMIN}, reason=reason, reason_required=True) as ch:
            repo = UserRepository(ch.session)
            user = repo.get(username)
            if not active and username == actor:
                raise InvalidInput("you can't disable yourself; another admin can")
            ch.before = repo.view(user).audit_state()
            user.active = active
            user.failed_logins = 0
            ch.session.flush()
            view = repo.view(user)
            ch.after = view.audit_state()
        return view

    def disable(self, actor: str, username: str, *, reason: str | None = None) -> UserView:
        """Users are never deleted (their ids stay unique forever); they are disabled."""
        return self._set_active(actor, username, False, reason)

    def enable(self, actor: str, username: str, *, reason: str | None = None) -> UserView:
        return self._set_active(actor, username, True, reason)

    def _set_role(self, actor: str, username: str, role: Role, present: bool, reason: str | None) -> UserView:
        action = "user.grant" if present else "user.revoke"
        with self.authorized(actor, action, "user", username, {Role.ADMIN}, reason=reason, reason_required=True) as ch:
            repo = UserRepository(ch.session)
            user = repo.get(username)
            before = repo.view(user)
            if before.has(role) == present:
                state = "holds" if present else "does not hold"
                raise Conflict(f"user {username!r} {state} the role {role.value} already")
            if not present and role is Role.ADMIN and username == actor:
                raise InvalidInput("you can't revoke your own admin role; another admin can")
            ch.before = before.audit_state()
            repo.set_role(user, role, present)
            view = repo.view(user)
            ch.after = view.audit_state()
        return view

    def grant(self, actor: str, username: str, role: Role, *, reason: str | None = None) -> UserView:
        return self._set_role(actor, username, role, True, reason)

    def revoke(self, actor: str, username: str, role: Role, *, reason: str | None = None) -> UserView:
        return self._set_role(actor, username, role, False, reason)

    def change_password(self, username: str, old: str, new: str) -> UserView:
        """A user changes their own password: the old one proves who they are, so no login is needed
        (the way out of an admin's reset, which allows no login until the password is changed)."""
        check_policy(username, new)
        if new == old:
            raise InvalidInput("the new password must differ from the old one")
        self.check_password(username, old, purpose="password change")  # audited; failures count toward the lock
        digest = hash_password(new)
        with self.trail.change(username, "user.password", "user", username, reason="changed by the user") as ch:
            user = UserRepository(ch.session).get(username)
            ch.before = {"must_change_password": bool(user.must_change_password)}
            user.password_hash = digest
            user.failed_logins = 0
            user.must_change_password = False
            ch.after = {"password": "changed", "must_change_password": False}
            view = UserRepository(ch.session).view(user)
        return view

    def reset_password(self, actor: str, username: str, temporary: str, *, reason: str | None = None) -> UserView:
        """An admin sets a temporary password for someone else: the user must change it before anything
        else, and their login sessions end now. Nobody resets their own password (that is a change)."""
        check_policy(username, temporary)
        digest = hash_password(temporary)
        with self.authorized(
            actor, "user.password_reset", "user", username, {Role.ADMIN}, reason=reason, reason_required=True
        ) as ch:
            if username == actor:
                raise InvalidInput(
                    "you can't reset your own password: change it, giving the old one", code="own_password_reset"
                )
            repo = UserRepository(ch.session)
            user = repo.get(username)
            user.password_hash = digest
            user.failed_logins = 0
            user.must_change_password = True
            live = (ApiToken.user_id == user.id, ApiToken.kind == "session", ApiToken.revoked_at.is_(None))
            ended = ch.session.scalars(select(ApiToken.id).where(*live)).all()
            ch.session.execute(update(ApiToken).where(*live).values(revoked_at=utc_now()))
            ended_events = [NewEvent(actor, "session.close", "token", tid, reason="password reset") for tid in ended]
            append_events(ch.session, ended_events, changes=True)
            ch.after = {"password": "reset", "must_change_password": True, "sessions_ended": len(ended)}
            view = repo.view(user)
        return view

    def list(self, actor: str) -> list[UserView]:
        self.require_role(actor, "user.list", set(READ_ROLES))
        with self.db.read() as session:
            return UserRepository(session).all()

    def get(self, username: str) -> UserView:
        with self.db.read() as session:
            repo = UserRepository(session)
            return repo.view(repo.get(username))

    # --- authentication ------------------------------------------------------------

    def check_password(self, username: str, password: str, *, purpose: str) -> UserView:
        """Authenticate; failures are audited, and repeated ones lock the account.

        Every answer costs one argon2 verification, except a locked account's: an unknown or
        disabled user is checked against a dummy hash with the same cost as a real one, so the
        time taken tells no user names apart. A locked account is refused before any check:
        guessing on gains nothing. The answer to an unknown name and to a wrong password is
        the same.
        """
        with self.db.read() as session:
            repo = UserRepository(session)
            user = repo.find(username)
            view = repo.view(user) if user is not None else None
            failures = user.failed_logins if user is not None else 0
            stored = user.password_hash if user is not None and user.active else None
        if view is not None and not view.active and failures >= MAX_FAILED_LOGINS:
            self._record_failure(username, purpose)  # audited like any failure, but no password is checked
            raise _locked(username)
        matches = verify_password(stored if stored is not None else dummy_hash(), password)
        if matches and stored is not None:
            accepted = self._accept(username, purpose)
            if accepted is not None:
                return accepted
            self._record_failure(username, purpose)  # locked by parallel guesses while this one was checked
            raise _locked(username)
        if self._record_failure(username, purpose) >= MAX_FAILED_LOGINS:
            raise _locked(username)
        raise AuthenticationFailed(
            f"authentication failed for {username!r}",
            hint="check the user name and password; repeated failures lock the account",
        )

    def _accept(self, username: str, purpose: str) -> UserView | None:
        """The user, if still active now that the password matched; a run of failures ends, on the record.

        A lock may have landed while the password was checked (parallel guesses): then None.
        """
        with self.db.read() as session:
            repo = UserRepository(session)
            user = repo.get(username)
            view, failures = repo.view(user), user.failed_logins
        if not view.active:
            return None
        if not failures:
            return view
        try:
            with self.trail.change(username, "auth.failures_reset", "user", username, reason=purpose) as ch:
                # the row lock (PostgreSQL; SQLite's write lock is taken at BEGIN) orders this
                # after any failure being counted, so no count is lost and no lock undone
                user = ch.session.execute(select(User).where(User.username == username).with_for_update()).scalar_one()
                if not user.active:
                    raise _LockedMeanwhile()
                ch.before, ch.after = {"failed_logins": user.failed_logins}, {"failed_logins": 0}
                user.failed_logins = 0
        except _LockedMeanwhile:
            return None
        return view

    def _record_failure(self, username: str, purpose: str) -> int:
        """Count and audit a failed authentication; the user's failures in a row (0 for an unknown name).

        The count is one UPDATE ... RETURNING, so parallel failures each get their own number,
        and the one that reaches the limit on an active account locks it in the same
        transaction: exactly one `user.locked` event however many guesses arrive at once.
        """
        with self.trail.write() as session:
            guard(session, "user", username)
            counted = session.execute(
                update(User)
                .where(User.username == username)
                .values(failed_logins=User.failed_logins + 1)
                .returning(User.failed_logins, User.active)
            ).one_or_none()
            if counted is None:
                append_events(session, [self._failure_event(username, purpose, {"known_user": False})], changes=True)
                return 0
            failures, active = int(counted[0]), bool(counted[1])
            lock = active and failures >= MAX_FAILED_LOGINS
            events = [self._failure_event(username, purpose, {"failed_logins": failures, "active": active})]
            if lock:
                session.execute(update(User).where(User.username == username).values(active=False))
                reason = f"{MAX_FAILED_LOGINS} failed authentications in a row"
                events.append(
                    NewEvent(username, "user.locked", "user", username, {"active": True}, {"active": False}, reason)
                )
            append_events(session, events, changes=True)
        return failures

    @staticmethod
    def _failure_event(username: str, purpose: str, after: dict[str, object]) -> NewEvent:
        return NewEvent(username, "auth.failed", "user", username, after=after, reason=purpose)


class _LockedMeanwhile(Exception):
    """Rolls back a failure-count reset when the account was locked while its password was checked."""


def _locked(username: str) -> AuthenticationFailed:
    """The right password can't help a locked account until an admin acts."""
    hint = f"an admin unlocks it with: medops user enable {username}"
    return AuthenticationFailed(_inactive(username, MAX_FAILED_LOGINS), hint=hint)


def _refuse_anonymous(actor: str, action: str) -> None:
    """A caller without a login reads only what needs no role: anything else asks who they are."""
    if actor == ANONYMOUS:
        raise AuthenticationFailed(f"{action.replace('.', ' ')} needs you to log in", code="login_required")


def _inactive(username: str, failures: int) -> str:
    """Why an inactive user can't act, and who can change that: an admin, always."""
    if failures >= MAX_FAILED_LOGINS:
        return (
            f"user {username!r} is locked after {MAX_FAILED_LOGINS} failed authentications in a row; "
            "an admin can unlock it (enable the user)"
        )
    return f"user {username!r} is disabled; an admin can enable it"
