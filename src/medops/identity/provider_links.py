"""Identity-provider accounts pinned to medops users.

A provider names its user by a claim (``preferred_username``, say) that some providers let people
edit. The first login of a medops user through a provider links that provider's subject (``sub``,
which never changes or moves to another person) to the user; from then on only that subject logs
in as the user, and that subject logs in as no one else. The link is part of the user's audited
state, so a link written into the database by hand is caught by `medops audit verify --state`.
An admin removes a link (a person's provider account was re-created) with a reason.
"""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from medops.clock import utc_now
from medops.errors import Conflict
from medops.identity.roles import Role
from medops.identity.users import UserRepository, UserService, UserView
from medops.store.schema import ExternalIdentity, User


class ProviderLinks:
    def __init__(self, users: UserService) -> None:
        self.users = users

    def admit(self, issuer: str, subject: str, username: str) -> str | None:
        """None when ``subject`` at ``issuer`` may log in as ``username`` (linking them at the user's first
        login through this provider); otherwise why not, for the caller to audit and refuse."""
        with self.users.db.read() as session:
            linked = session.execute(
                select(User.username)
                .join(ExternalIdentity, ExternalIdentity.user_id == User.id)
                .where(ExternalIdentity.issuer == issuer, ExternalIdentity.subject == subject)
            ).scalar_one_or_none()
            pinned = session.execute(
                select(ExternalIdentity.subject)
                .join(User, ExternalIdentity.user_id == User.id)
                .where(ExternalIdentity.issuer == issuer, User.username == username)
            ).scalar_one_or_none()
        if linked == username:
            return None
        if linked is not None:
            return (
                f"the provider's account is linked to the medops user {linked!r}; its name claim now says {username!r}"
            )
        if pinned is not None:
            return f"{username!r} is linked to another account at {issuer}; an admin can remove that link"
        try:
            with self.users.trail.change(
                username, "user.sso.link", "user", username, reason=f"first login through {issuer}"
            ) as ch:
                user = UserRepository(ch.session).get(username)
                ch.session.add(ExternalIdentity(issuer=issuer, subject=subject, user_id=user.id, linked_at=utc_now()))
                ch.after = {"issuer": issuer, "subject": subject}
        except IntegrityError:  # a second first login at the same moment: the other one linked
            return f"{username!r} was being linked to an account at {issuer} at the same moment; log in again"
        return None

    def unlink(self, actor: str, username: str, *, reason: str | None) -> UserView:
        """Remove the user's links to every provider (admin, with a reason); their next login links anew."""
        with self.users.authorized(
            actor, "user.sso.unlink", "user", username, {Role.ADMIN}, reason=reason, reason_required=True
        ) as ch:
            repo = UserRepository(ch.session)
            user = repo.get(username)
            removed = ch.session.execute(
                select(ExternalIdentity.issuer, ExternalIdentity.subject).where(ExternalIdentity.user_id == user.id)
            ).all()
            if not removed:
                raise Conflict(f"user {username!r} is linked to no identity provider's account")
            ch.session.execute(delete(ExternalIdentity).where(ExternalIdentity.user_id == user.id))
            ch.before = [{"issuer": i, "subject": s} for i, s in removed]
            ch.after = []
            return repo.view(user)
