"""Moving a version between workspaces: export its bundle, import one (verified), trust a key.

An import reads the file in memory and verifies everything (see ``bundles``) before a byte
is stored; the bundle is then kept content-addressed and registered as a new version whose
origin is the manifest. Nothing is ever extracted to disk, so a member with an absolute
path, ``..`` or a link can write nothing anywhere. A refused import is audited with why.

The keys that may sign an import are this workspace's pinned key and those in its signed
keyring (``keyring``); trusting and distrusting a key are audited changes of that keyring.
"""

from __future__ import annotations

import json
from pathlib import Path

from medops.atomic import write_atomic_bytes
from medops.audit.trail import NewEvent
from medops.clock import utc_now
from medops.errors import Conflict, IntegrityError, InvalidInput, NotFound
from medops.identity.roles import Role
from medops.platform import Platform
from medops.public_keys import decode_public, encode_public, key_id
from medops.registry import keyring
from medops.registry.bundles import SKOPS, Bundle, model_types, read
from medops.registry.versions import REGISTER_ROLES, VersionInfo, get, next_version, parse_ref, required_roles
from medops.store.schema import ModelVersion, TrustedBundleKey

TRUST_ROLES = {Role.ADMIN}


def trusted_keys(ws: Platform) -> dict[str, str]:
    """Key id -> public key: this workspace's pinned key and the keys its signed keyring holds.

    Never the trusted_bundle_keys table: a key inserted there in SQL is not trusted.
    """
    own = ws.workspace_public_key()
    keys = {kid: entry["public_key"] for kid, entry in keyring.load(ws).keys.items()}
    keys[key_id(own)] = encode_public(own)
    return keys


def public_key(ws: Platform) -> str:
    """This workspace's public key, to give to the workspaces that will import its bundles."""
    return encode_public(ws.workspace_public_key())


def trust_key(ws: Platform, public: str, *, note: str, actor: str) -> str:
    """Accept bundles signed by another workspace's key (admin only, with a note saying whose it is)."""
    try:
        kid = key_id(decode_public(public.strip()))
    except ValueError:
        raise InvalidInput("not an Ed25519 public key (base64 of 32 bytes)") from None
    if not note.strip():
        raise InvalidInput("say whose key this is", code="key_note_required")
    if kid == key_id(ws.workspace_public_key()):
        raise InvalidInput("that is this workspace's own key: it is always trusted")
    with ws.users.authorized(actor, "bundle_key.trust", "bundle_key", kid, TRUST_ROLES, reason=note) as ch:
        keyring.lock(ch.session)
        keys = dict(keyring.load(ws, ch.session).keys)
        if kid in keys:
            raise Conflict(f"key {kid} is trusted already ({keys[kid]['note']})", code="key_trusted_already")
        keys[kid] = keyring.entry(public.strip(), note, actor)
        written = keyring.write(ws, ch.session, keys)
        if ch.session.get(TrustedBundleKey, kid) is None:
            ch.session.add(
                TrustedBundleKey(
                    key_id=kid, public_key=public.strip(), note=note, trusted_by=actor, trusted_at=utc_now()
                )
            )
        ch.after = {"key_id": kid, "note": note, "keyring": written.to_event()}
    return kid


def distrust_key(ws: Platform, kid: str, *, reason: str, actor: str) -> None:
    """Stop accepting bundles signed by a key: versions imported with it stay, new imports are refused."""
    if not reason.strip():
        raise InvalidInput("say why the key is no longer trusted", code="distrust_reason_required")
    if kid == key_id(ws.workspace_public_key()):
        raise InvalidInput("that is this workspace's own key: it can't be distrusted here")
    with ws.users.authorized(actor, "bundle_key.distrust", "bundle_key", kid, TRUST_ROLES, reason=reason) as ch:
        keyring.lock(ch.session)
        keys = dict(keyring.load(ws, ch.session).keys)
        if kid not in keys:
            raise NotFound(f"key {kid} is not trusted here", code="key_not_trusted")
        gone = keys.pop(kid)
        written = keyring.write(ws, ch.session, keys)
        row = ch.session.get(TrustedBundleKey, kid)
        if row is not None:
            ch.session.delete(row)
        ch.before = {"key_id": kid, "note": gone["note"]}
        ch.after = {"key_id": kid, "trusted": False, "keyring": written.to_event()}


def _verified(ws: Platform, data: bytes, path: Path, name: str | None, actor: str) -> Bundle:
    """The bundle, verified; a refusal is recorded in the audit trail (who tried, which file, why)."""
    try:
        bundle = read(data, trusted_keys(ws))
        if SKOPS in bundle.raw:
            model_types(bundle)  # what loading it would build: refused now, not at the first prediction
        return bundle
    except IntegrityError as exc:
        ws.trail.record(
            NewEvent(
                actor,
                "model.import.refused",
                "model",
                name or "-",
                after={"file": path.name, "code": exc.code},
                reason=exc.message,
            )
        )
        raise


def export(ws: Platform, ref: str, path: Path, *, actor: str) -> VersionInfo:
    """Write a version's bundle to ``path`` (verified from the artifact store first; written atomically)."""
    name, version = parse_ref(ref)
    info = get(ws, name, version)
    data = ws.artifacts.read_bytes(info.artifact_sha256)
    read(data, trusted_keys(ws))  # a bundle that no longer verifies is not handed on
    with ws.users.authorized(actor, "model.export", "model", info.ref, REGISTER_ROLES) as ch:
        write_atomic_bytes(path, data)  # inside the change: written only if allowed, and audited if written
        ch.after = {"file": path.name, "bundle": info.artifact_sha256}
    return info


def import_bundle(
    ws: Platform,
    path: Path,
    *,
    name: str | None = None,
    actor: str,
    extra_approvals: list[str] | tuple[str, ...] = (),
) -> VersionInfo:
    """Verify a bundle file and register it here as a new version; a refused file changes nothing.

    The approvals production needs are this workspace's policy's, not the exporter's: the
    bundle's own list is kept in its origin. Nor does the exporter's "passed" count here:
    production needs a validator of this workspace to accept that evaluation, signed.
    """
    required_approvals = required_roles(ws, extra_approvals)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"{path}: can't be read ({exc.strerror})") from None
    bundle = _verified(ws, data, path, name, actor)
    target = name or str(bundle.manifest.get("model"))
    parse_ref(target)
    digest = ws.artifacts.put(data)
    meta = bundle.metadata
    now = utc_now()
    origin = {**{k: bundle.manifest[k] for k in ("model", "version", "created_at", "key_id")}, "metadata": meta}
    with ws.users.authorized(actor, "model.import", "model", target, REGISTER_ROLES) as ch:
        session = ch.session
        number = next_version(session, target, actor, now)
        session.add(
            ModelVersion(
                model=target,
                version=number,
                run_id=None,
                artifact_sha256=digest,
                evaluation_id=None,
                required_approvals=json.dumps(list(required_approvals)),
                stage="none",
                description=f"imported from {bundle.manifest.get('model')}:{bundle.manifest.get('version')}",
                origin=json.dumps(origin, sort_keys=True, default=str),
                tags="{}",
                created_by=actor,
                created_at=now,
            )
        )
        ch.entity_id = f"{target}:{number}"
        ch.after = {"bundle": digest, "origin": origin}
    return get(ws, target, number)
