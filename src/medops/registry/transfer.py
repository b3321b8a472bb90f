"""Moving a version between workspaces: export its bundle, import one (verified), trust a key.

An import copies the file, at most ``MAX_BUNDLE_BYTES``, into the artifact store's temp
folder (so it can't change between its check and its storing), verifies the copy as a stream
within the limits of ``bundle_archive`` (see ``bundles``), and only then stores it
content-addressed and registers a new version whose origin is the manifest; a refused copy is
deleted. Nothing is ever extracted to disk, so a member with an absolute path, ``..`` or a
link can write nothing anywhere. A refused import is audited with why.

The keys that may sign an import are this workspace's pinned key and those in its signed
keyring (``keyring``); trusting and distrusting a key are audited changes of that keyring.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from medops.audit.trail import Change, NewEvent
from medops.clock import utc_now
from medops.errors import Conflict, IntegrityError, InvalidInput, NotFound
from medops.identity.roles import Role
from medops.platform import Platform
from medops.public_keys import decode_public, encode_public, key_id
from medops.registry import keyring
from medops.registry.bundle_archive import CHUNK, MAX_BUNDLE_BYTES, too_large
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


@contextmanager
def _keyring_change(
    ws: Platform, action: str, kid: str, why: str, actor: str
) -> Iterator[tuple[Change, dict[str, Any]]]:
    """A trust change: admin only, never the workspace's own key, one at a time, on the current keyring."""
    own = key_id(ws.workspace_public_key())
    with ws.users.authorized(actor, action, "bundle_key", kid, TRUST_ROLES, reason=why) as ch:
        if kid == own:
            raise InvalidInput("that is this workspace's own key: it is always trusted, and only it")
        keyring.lock(ch.session)
        yield ch, dict(keyring.load(ws, ch.session).keys)


def trust_key(ws: Platform, public: str, *, note: str, actor: str) -> str:
    """Accept bundles signed by another workspace's key (admin only, with a note saying whose it is)."""
    try:
        kid = key_id(decode_public(public.strip()))
    except ValueError:
        raise InvalidInput("not an Ed25519 public key (base64 of 32 bytes)") from None
    if not note.strip():
        raise InvalidInput("say whose key this is", code="key_note_required")
    with _keyring_change(ws, "bundle_key.trust", kid, note, actor) as (ch, keys):
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
    with _keyring_change(ws, "bundle_key.distrust", kid, reason, actor) as (ch, keys):
        if kid not in keys:
            raise NotFound(f"key {kid} is not trusted here", code="key_not_trusted")
        gone = keys.pop(kid)
        written = keyring.write(ws, ch.session, keys)
        row = ch.session.get(TrustedBundleKey, kid)
        if row is not None:
            ch.session.delete(row)
        ch.before = {"key_id": kid, "note": gone["note"]}
        ch.after = {"key_id": kid, "trusted": False, "keyring": written.to_event()}


def _verified(ws: Platform, staged: Path, path: Path, name: str | None, actor: str) -> Bundle:
    """The staged bundle, verified; a refusal is recorded in the audit trail."""
    try:
        bundle = read(staged, trusted_keys(ws))
        if SKOPS in bundle.raw:
            model_types(bundle)  # what loading it would build: refused now, not at the first prediction
        return bundle
    except IntegrityError as exc:
        _refused(ws, exc, path, name, actor)
        raise


def _refused(ws: Platform, exc: IntegrityError, path: Path, name: str | None, actor: str) -> None:
    """Who tried to import which file, and why it was refused."""
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


def export(ws: Platform, ref: str, path: Path, *, actor: str) -> VersionInfo:
    """Write a version's bundle to ``path`` (verified from the artifact store first; written atomically)."""
    name, version = parse_ref(ref)
    info = get(ws, name, version)
    stored = ws.artifacts.local_path(info.artifact_sha256)  # hashed against its digest on the way
    read(stored, trusted_keys(ws))  # a bundle that no longer verifies is not handed on
    with ws.users.authorized(actor, "model.export", "model", info.ref, REGISTER_ROLES) as ch:
        _copy_atomic(stored, path)  # inside the change: written only if allowed, and audited if written
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
        staged = _stage(ws, path)
    except IntegrityError as exc:
        _refused(ws, exc, path, name, actor)
        raise
    try:
        bundle = _verified(ws, staged, path, name, actor)
        target = name or str(bundle.manifest.get("model"))
        parse_ref(target)
    except BaseException:
        staged.unlink(missing_ok=True)  # a refused file leaves nothing behind
        raise
    digest = ws.artifacts.adopt(staged)  # the very bytes just verified
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


def _stage(ws: Platform, path: Path) -> Path:
    """A private copy of the file in the artifact store's temp folder, refused past ``MAX_BUNDLE_BYTES``."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise InvalidInput(f"{path}: can't be read ({exc.strerror})") from None
    if size > MAX_BUNDLE_BYTES:  # refused before a byte is copied
        raise too_large("the bundle file holds", size, "MAX_BUNDLE_BYTES")
    staged = ws.artifacts.staging_path()
    copied = 0
    try:
        with path.open("rb") as source, open(staged, "wb") as out:
            while block := source.read(CHUNK):
                copied += len(block)
                if copied > MAX_BUNDLE_BYTES:  # it grew while being copied
                    raise too_large("the bundle file holds more than", MAX_BUNDLE_BYTES, "MAX_BUNDLE_BYTES")
                out.write(block)
    except OSError as exc:
        staged.unlink(missing_ok=True)
        raise InvalidInput(f"{path}: can't be read ({exc.strerror})") from None
    except BaseException:
        staged.unlink(missing_ok=True)
        raise
    return staged


def _copy_atomic(source: Path, path: Path) -> None:
    """Copy a file whole or not at all: a crash mid-copy leaves no partial bundle under ``path``."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        shutil.copyfile(source, tmp)
        with open(tmp, "rb+") as out:
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
