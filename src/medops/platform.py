"""What a workspace wires once per process: settings, metadata database, artifact store,
audit trail with its checkpoint store, identity services and the signing key.

Domain code takes a Platform and is told who acts; it never opens a workspace itself or reads
the acting user from the environment (that is the adapters' job: see medops.workspace and
medops.caller).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Protocol, Self, TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from medops.audit.anchoring import TrailCheck, verify_trail
from medops.audit.checkpoint_store import CheckpointStore
from medops.audit.publisher import CheckpointPublisher
from medops.audit.trail import AuditTrail
from medops.config import Settings
from medops.identity.keys import load_private_key, pinned_public_key
from medops.identity.signatures import SignatureService
from medops.identity.tokens import TokenService
from medops.identity.users import UserService
from medops.store import migrate
from medops.store.artifacts import ArtifactStore
from medops.store.database import Database

if TYPE_CHECKING:
    from medops.audit.timestamps import TimestampAuthority


class Closeable(Protocol):
    def close(self) -> None: ...


R = TypeVar("R", bound=Closeable)


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
    checkpoints: CheckpointStore
    timestamp_authority: TimestampAuthority | None = None
    _shared: dict[str, Closeable] = field(default_factory=dict, init=False, repr=False, compare=False)
    _shared_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False, compare=False)

    @classmethod
    def from_settings(cls, settings: Settings, *, check_schema: bool = True) -> Self:
        db = Database(settings.metadata_url, busy_timeout=settings.db_busy_timeout)
        if check_schema:
            try:
                migrate.require_current(db)
            except BaseException:
                db.dispose()
                raise

        @cache
        def private_key() -> Ed25519PrivateKey:
            return load_private_key(settings)

        def public_key() -> Ed25519PublicKey:
            return pinned_public_key(settings, private_key)

        checkpoints = CheckpointStore(settings.checkpoint_root)
        authority = None
        if settings.timestamp_authority:
            from medops.audit.timestamps import TimestampAuthority  # its X.509 and ASN.1 code only when used

            authority = TimestampAuthority(settings.timestamp_authority, settings.timestamp_authority_cert)
        publisher = CheckpointPublisher(
            checkpoints,
            settings.workspace_id,
            private_key,
            authority=authority,
            timestamp_interval=settings.timestamp_interval,
        )
        trail = AuditTrail(db, publisher, clock_tolerance=settings.clock_tolerance)
        users = UserService(db, trail)

        return cls(
            settings=settings,
            db=db,
            artifacts=ArtifactStore(settings.artifact_root, cache=settings.artifact_cache or None),
            trail=trail,
            users=users,
            tokens=TokenService(db, trail, users),
            signatures=SignatureService(db, trail, users, private_key, public_key),
            signing_key=private_key,
            checkpoints=checkpoints,
            timestamp_authority=authority,
        )

    def workspace_public_key(self) -> Ed25519PublicKey:
        """The key that verifies its signatures, checkpoints and keyring: pinned, never read from the database."""
        return pinned_public_key(self.settings, self.signing_key)

    def verify_audit(self, public_key: Ed25519PublicKey | None = None) -> TrailCheck:
        """Verify the chain against every checkpoint signed by ``public_key`` (default: the workspace's).

        Verification only reads: checkpoints are published when changes commit, never here.
        """
        s = self.settings
        return verify_trail(
            self.db,
            self.checkpoints,
            s.workspace_id,
            public_key or self.workspace_public_key(),
            grace=s.checkpoint_grace,
            tolerance=s.clock_tolerance,
            authority=self.timestamp_authority,
            timestamp_interval=s.timestamp_interval,
        )

    def shared(self, key: str, open_: Callable[[], R]) -> R:
        """One ``key`` resource per workspace (a DuckDB database, say), opened on first use and closed
        with the workspace: the layers above own what it is, the workspace owns how long it lives."""
        with self._shared_lock:
            resource = self._shared.get(key)
            if resource is None:
                resource = self._shared[key] = open_()
            return resource  # type: ignore[return-value]

    def close(self) -> None:
        with self._shared_lock:
            resources, self._shared = list(self._shared.values()), {}
        try:
            for resource in resources:
                resource.close()
        finally:
            self.checkpoints.close()
            self.db.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
