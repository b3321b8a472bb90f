"""Which other workspaces' keys may sign the bundles imported here: a keyring signed by this
workspace's own key, so that no database writer can add one.

The keyring is kept in the artifact store as write-once versions (``keyring/000003.json``),
each signed with the workspace key and verified with the key pinned in medops.toml. Every
trust change records the new version's number and SHA-256 in the audit trail, and the trail
decides which version is current: a version edited, deleted or rolled back (an older one that
still trusted a withdrawn key) is refused. The trusted_bundle_keys table only lists the keys
for people; a key found there alone is never trusted.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from medops.audit.chain import canonical_json
from medops.clock import to_iso, utc_now
from medops.errors import IntegrityError, NotFound
from medops.platform import Platform
from medops.public_keys import key_id
from medops.store.schema import AuditEvent

NAMESPACE = "keyring"
FORMAT = 1
CHANGES = ("bundle_key.trust", "bundle_key.distrust")  # the events that name the current version
_LOCK_ID = 0x6B657972696E67  # "keyring": one trust change at a time on PostgreSQL


@dataclass(frozen=True)
class Keyring:
    version: int
    keys: dict[str, dict[str, str]] = field(default_factory=dict)  # key id -> public_key, note, trusted_by, at

    def body(self, workspace: str) -> dict[str, Any]:
        return {"format": FORMAT, "workspace": workspace, "version": self.version, "keys": self.keys}


@dataclass(frozen=True)
class Written:
    keyring: Keyring
    sha256: str

    def to_event(self) -> dict[str, object]:
        return {"version": self.keyring.version, "sha256": self.sha256}


def _name(version: int) -> str:
    return f"{version:06d}.json"


def _current_on_record(session: Session) -> tuple[int, str | None]:
    """The keyring version (and digest) the audit trail's latest trust change names; 0 if none."""
    after = session.execute(
        select(AuditEvent.after).where(AuditEvent.action.in_(CHANGES)).order_by(AuditEvent.seq.desc()).limit(1)
    ).scalar()
    stated = (json.loads(after) or {}).get("keyring") if after else None
    if not stated:
        return 0, None
    return int(stated["version"]), str(stated["sha256"])


def load(ws: Platform, session: Session | None = None) -> Keyring:
    """The current keyring, verified: the version the trail names, signed by this workspace's key."""
    if session is None:
        with ws.db.read() as reading:
            version, digest = _current_on_record(reading)
    else:
        version, digest = _current_on_record(session)
    if version == 0:
        return Keyring(0)
    try:
        data = ws.artifacts.read_named(NAMESPACE, _name(version))
    except NotFound:
        raise IntegrityError(
            f"bundle keyring version {version}, which the audit trail names as current, is missing from the "
            "artifact store: no other workspace's key is trusted until it is restored",
            code="keyring_missing",
        ) from None
    if hashlib.sha256(data).hexdigest() != digest:
        raise IntegrityError(
            f"bundle keyring version {version} differs from the one the audit trail recorded: it was replaced",
            code="keyring_altered",
        )
    doc = json.loads(data)
    signature = base64.b64decode(doc.pop("signature"))
    try:
        ws.workspace_public_key().verify(signature, canonical_json(doc).encode("utf-8"))
    except (InvalidSignature, ValueError):
        raise IntegrityError(
            f"bundle keyring version {version} is not signed by this workspace's key", code="keyring_forged"
        ) from None
    if doc.get("workspace") != ws.settings.workspace_id or doc.get("version") != version:
        raise IntegrityError(f"bundle keyring version {version} belongs to another workspace or version")
    return Keyring(version, dict(doc["keys"]))


def lock(session: Session) -> None:
    """Serialize trust changes: on SQLite the write transaction does it already."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _LOCK_ID})


def write(ws: Platform, session: Session, keys: dict[str, dict[str, str]]) -> Written:
    """Sign and store the next version inside the caller's trust-change transaction (after ``lock``)."""
    version = load(ws, session).version + 1
    taken = set(ws.artifacts.list_named(NAMESPACE))
    while _name(version) in taken:  # left by a change that failed before its commit: the trail never named it
        version += 1
    keyring = Keyring(version, keys)
    doc = keyring.body(ws.settings.workspace_id)
    private = ws.signing_key()
    if key_id(private.public_key()) != key_id(ws.workspace_public_key()):
        raise IntegrityError("the signing key is not the workspace's pinned key", code="signing_key_mismatch")
    doc["signature"] = base64.b64encode(private.sign(canonical_json(doc).encode("utf-8"))).decode("ascii")
    data = (canonical_json(doc) + "\n").encode("utf-8")
    ws.artifacts.put_named(NAMESPACE, _name(version), data)
    return Written(keyring, hashlib.sha256(data).hexdigest())


def entry(public: str, note: str, actor: str) -> dict[str, str]:
    return {"public_key": public, "note": note, "trusted_by": actor, "trusted_at": to_iso(utc_now())}
