"""What a workspace wires once per process: settings, metadata database, artifact store,
audit trail, identity services and the signing key.

Domain code takes a Platform and is told who acts; it never opens a workspace itself or reads
the acting user from the environment (that is the adapters' job: see medops.workspace and
medops.caller).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Self

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from medops.audit.checkpoint import TrailCheck, verify_trail
from medops.audit.trail import AuditTrail
from medops.config import Settings
from medops.errors import MedopsError
from medops.identity.keys import load_private_key, pinned_public_key
from medops.identity.signatures import SignatureService
from medops.identity.tokens import TokenService
from medops.identity.users import UserService
from medops.store import migrate
from medops.store.artifacts import ArtifactStore
from medops.store.database import Database


@dataclass
class Platform:
    settings: Settings
    db: Database
    artifacts: ArtifactStore
    trail: AuditTrail
    users: UserService
    tokens: TokenService
    signatures: SignatureService
    signing_key: Callable[[], Ed25519PrivateKey]

    @classmethod
    def from_settings(cls, settings: Settings, *, check_schema: bool = True) -> Self:
        db = Database(settings.metadata_url, busy_timeout=settings.db_busy_timeout)
        if check_schema:
            try:
                migrate.require_current(db)
            except BaseException:
                db.dispose()
                raise
        trail = AuditTrail(db)
        users = UserService(db, trail)

        @cache
        def private_key() -> Ed25519PrivateKey:
            return load_private_key(settings)

        def public_key() -> Ed25519PublicKey:
            return pinned_public_key(settings, private_key)

        return cls(
            settings=settings,
            db=db,
            artifacts=ArtifactStore(settings.artifact_root, cache=settings.artifact_cache or None),
            trail=trail,
            users=users,
            tokens=TokenService(db, trail, users),
            signatures=SignatureService(db, trail, users, private_key, public_key),
            signing_key=private_key,
        )

    def workspace_public_key(self) -> Ed25519PublicKey:
        """The key that verifies its signatures, checkpoints and keyring: pinned, never read from the database."""
        return pinned_public_key(self.settings, self.signing_key)

    def verify_audit(self, *, write_checkpoint: bool = True) -> TrailCheck:
        """Verify the chain and the latest checkpoint; anchor the new head when the key is here."""
        try:
            key: Ed25519PrivateKey | None = self.signing_key()
        except MedopsError:
            key = None  # an auditor without the key can still verify, just not anchor
        return verify_trail(self.db, self.artifacts, self.settings.workspace_id, key, write=write_checkpoint)

    def close(self) -> None:
        self.db.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
