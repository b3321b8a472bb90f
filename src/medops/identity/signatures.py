"""Electronic signatures in the manner of 21 CFR Part 11 (11.50, 11.70, 11.200).

A signature re-checks the signer's password at the moment of signing, records the
printed name, UTC time and meaning, and binds to the SHA-256 of the signed record. The
manifest of those fields is signed with the workspace's Ed25519 key, so moving a
signature to another record, editing any of its fields, or changing the record after
signing all make verification fail. Verification uses the public key pinned outside the
database (identity.keys): a signature made with any other key, such as one a database
writer inserted into signing_keys, is void.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import select

from medops.audit.chain import canonical_json
from medops.audit.trail import AuditTrail
from medops.clock import to_iso, utc_now
from medops.errors import AuthenticationFailed, InvalidInput, MedopsError, NotFound
from medops.identity.users import UserService
from medops.public_keys import encode_public, key_id
from medops.store.database import Database
from medops.store.schema import Signature, SigningKey

MANIFEST_FIELDS = (
    "id",
    "username",
    "printed_name",
    "meaning",
    "record_type",
    "record_id",
    "record_hash",
    "signed_at",
    "key_id",
)


def record_hash(record: Any) -> str:
    """SHA-256 of raw bytes, or of the canonical JSON of a structured record."""
    data = bytes(record) if isinstance(record, (bytes, bytearray)) else canonical_json(record).encode("utf-8")
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class SignatureView:
    id: str
    username: str
    printed_name: str
    meaning: str
    record_type: str
    record_id: str
    record_hash: str
    signed_at: str
    key_id: str
    value: str

    def manifest(self) -> bytes:
        return canonical_json({f: getattr(self, f) for f in MANIFEST_FIELDS}).encode("utf-8")

    def display(self) -> str:
        """The Part 11 11.50 line every human-readable view shows."""
        return f"{self.printed_name} ({self.username}), {self.signed_at}, {self.meaning}"


@dataclass(frozen=True)
class SignatureCheck:
    signature: SignatureView
    problems: list[str] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not self.problems


def _view(row: Signature) -> SignatureView:
    return SignatureView(
        row.id,
        row.username,
        row.printed_name,
        row.meaning,
        row.record_type,
        row.record_id,
        row.record_hash,
        row.signed_at,
        row.key_id,
        row.value,
    )


class SignatureService:
    def __init__(
        self,
        db: Database,
        trail: AuditTrail,
        users: UserService,
        private_key: Callable[[], Ed25519PrivateKey],
        public_key: Callable[[], Ed25519PublicKey],
    ) -> None:
        self.db = db
        self.trail = trail
        self.users = users
        self._private_key = private_key
        self._public_key = public_key

    def register_key(self, actor: str) -> str:
        """Record the public half of the workspace key (done once by init; audited)."""
        public = self._private_key().public_key()
        kid = key_id(public)
        with self.trail.change(actor, "signing_key.register", "signing_key", kid) as ch:
            if ch.session.get(SigningKey, kid) is None:
                ch.session.add(SigningKey(key_id=kid, public_key=encode_public(public), created_at=utc_now()))
            ch.after = {"key_id": kid, "public_key": encode_public(public)}
        return kid

    def sign(
        self,
        username: str,
        password: str,
        *,
        record_type: str,
        record_id: str,
        record: Any,
        meaning: str,
    ) -> SignatureView:
        """Sign ``record`` as ``username``; the password is checked now, every time."""
        if not meaning.strip():
            raise InvalidInput("a signature needs a meaning, e.g. 'approved for production'")
        if not record_type or not record_id:
            raise InvalidInput("a signature needs the type and id of the record it signs")
        signer = self.users.check_password(username, password, purpose=f"sign {record_type}:{record_id}")
        if signer.must_change_password:  # a password an admin set is not the signer's own: it can't sign
            raise AuthenticationFailed(
                f"user {username!r} must change the password an admin reset before signing",
                code="password_change_required",
                user=username,
            )
        private = self._private_key()
        kid = key_id(self._public_key())  # the pinned key, which the private one must match
        with self.trail.change(username, "signature.sign", record_type, record_id, reason=meaning) as ch:
            unsigned = SignatureView(
                id=uuid.uuid4().hex,
                username=signer.username,
                printed_name=signer.full_name,
                meaning=meaning,
                record_type=record_type,
                record_id=record_id,
                record_hash=record_hash(record),
                signed_at=to_iso(utc_now()),
                key_id=kid,
                value="",
            )
            value = base64.b64encode(private.sign(unsigned.manifest())).decode("ascii")
            row = Signature(user_id=signer.id, value=value, **{f: getattr(unsigned, f) for f in MANIFEST_FIELDS})
            ch.session.add(row)
            ch.after = {
                "signature_id": unsigned.id,
                "record_hash": unsigned.record_hash,
                "printed_name": signer.full_name,
            }
        return _view(row)

    def get(self, signature_id: str) -> SignatureView:
        with self.db.read() as session:
            row = session.get(Signature, signature_id)
            if row is None:
                raise NotFound(f"no signature {signature_id!r}")
            return _view(row)

    def for_record(self, record_type: str, record_id: str) -> list[SignatureView]:
        with self.db.read() as session:
            rows = session.execute(
                select(Signature)
                .where(Signature.record_type == record_type, Signature.record_id == record_id)
                .order_by(Signature.signed_at)
            ).scalars()
            return [_view(r) for r in rows]

    def verify(
        self, signature_id: str, record: Any, *, record_type: str | None = None, record_id: str | None = None
    ) -> SignatureCheck:
        """Does this signature hold for this record, as it is now?"""
        sig = self.get(signature_id)
        problems = []
        try:
            trusted = self._public_key()
        except MedopsError as exc:
            problems.append(f"can't be verified: {exc.message}")
        else:
            if sig.key_id != key_id(trusted):
                problems.append(
                    f"made with key {sig.key_id}, not this workspace's pinned key {key_id(trusted)}: "
                    "a key known only to the database is never trusted"
                )
            else:
                try:
                    trusted.verify(base64.b64decode(sig.value), sig.manifest())
                except (InvalidSignature, ValueError):
                    problems.append("the signature's stored fields were altered after signing (or it was moved)")
        if (record_type, record_id) != (None, None) and (record_type, record_id) != (sig.record_type, sig.record_id):
            problems.append(
                f"the signature belongs to {sig.record_type}:{sig.record_id}, not {record_type}:{record_id}"
            )
        if record_hash(record) != sig.record_hash:
            problems.append(
                "the record does not match what was signed: it changed after signing, or it is another record"
            )
        return SignatureCheck(sig, problems)
