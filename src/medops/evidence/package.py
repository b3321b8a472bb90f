"""An evidence package: the documents and the raw records behind them, in one folder, with a manifest
of every file's SHA-256 signed by the workspace key.

Whoever holds the workspace's public key checks a package offline (`medops evidence verify`): no
database, no server, no medops workspace. A changed byte in any file, a file added or taken away,
or a manifest signed by another key is named. The folder is written under a temporary name and
renamed into place, so a crash never leaves a half package where the real one should be.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from medops.atomic import fsync_dir
from medops.errors import Conflict, InvalidInput
from medops.public_keys import key_id

FORMAT = "medops-evidence/1"
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"


@dataclass(frozen=True)
class Written:
    folder: Path
    manifest_sha256: str
    files: int
    size: int

    def to_json(self) -> dict[str, Any]:
        return {
            "folder": str(self.folder),
            "manifest_sha256": self.manifest_sha256,
            "files": self.files,
            "bytes": self.size,
        }


def write(folder: Path, files: Mapping[str, bytes], header: Mapping[str, Any], key: Ed25519PrivateKey) -> Written:
    """``files`` (relative path -> bytes) and their signed manifest into ``folder``, which must not exist
    yet or be empty: evidence once handed out is never overwritten."""
    check_target(folder)
    for name in files:
        _check_name(name)
    listed: list[dict[str, Any]] = [
        {"path": name, "sha256": _sha256(data), "bytes": len(data)} for name, data in sorted(files.items())
    ]
    manifest = {
        "format": FORMAT,
        **header,
        "key_id": key_id(key.public_key()),
        "files": listed,
    }
    text = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
    signature = base64.b64encode(key.sign(text)) + b"\n"
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = folder.parent / f".{folder.name}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        for name, data in {**files, MANIFEST: text, SIGNATURE: signature}.items():
            target = staging / name
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
        if folder.exists():
            folder.rmdir()  # empty, checked above
        os.replace(staging, folder)
        fsync_dir(folder.parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    size = sum(len(data) for data in files.values()) + len(text)
    return Written(folder, _sha256(text), len(listed) + 2, size)


def check_target(folder: Path) -> None:
    """Refused before any work: evidence once handed out is never overwritten."""
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise Conflict(f"{folder} already exists and is not empty", hint="give a new folder for the package")


@dataclass
class PackageCheck:
    """What a verifier found: ``problems`` names each file that does not hold; empty means intact."""

    folder: Path
    manifest: dict[str, Any] = field(default_factory=dict)
    problems: list[dict[str, str]] = field(default_factory=list)
    checked: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    def fail(self, path: str, what: str) -> None:
        self.problems.append({"file": path, "problem": what})

    def to_json(self) -> dict[str, Any]:
        header = {k: v for k, v in self.manifest.items() if k != "files"}
        return {"folder": str(self.folder), "ok": self.ok, "checked": self.checked, **header, "problems": self.problems}


def verify(folder: Path, public: Ed25519PublicKey) -> PackageCheck:
    """Check the manifest's signature with ``public``, then every file against the manifest."""
    check = PackageCheck(folder)
    if not folder.is_dir():
        raise InvalidInput(f"{folder} is not a folder", hint="give the folder the evidence package was written to")
    manifest_path, signature_path = folder / MANIFEST, folder / SIGNATURE
    if not manifest_path.is_file() or not signature_path.is_file():
        missing = MANIFEST if not manifest_path.is_file() else SIGNATURE
        check.fail(missing, "missing: without the signed manifest nothing in the folder can be trusted")
        return check
    text = manifest_path.read_bytes()
    try:
        public.verify(base64.b64decode(signature_path.read_bytes().strip(), validate=True), text)
    except (InvalidSignature, ValueError):
        check.fail(MANIFEST, f"its signature does not verify with the key {key_id(public)}: the manifest was "
                             "changed, or another workspace signed it")  # fmt: skip
        return check
    check.manifest = json.loads(text)
    if check.manifest.get("format") != FORMAT:
        check.fail(MANIFEST, f"format {check.manifest.get('format')!r}, not {FORMAT}")
        return check
    listed = {f["path"]: f for f in check.manifest["files"]}
    for name, entry in listed.items():
        path = folder / name
        if not path.is_file():
            check.fail(name, "missing: the manifest lists it")
            continue
        data = path.read_bytes()
        check.checked += 1
        if _sha256(data) != entry["sha256"]:
            check.fail(name, f"changed after the package was signed ({len(data)} bytes, {entry['bytes']} signed)")
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        name = path.relative_to(folder).as_posix()
        if name not in listed and name not in (MANIFEST, SIGNATURE):
            check.fail(name, "not in the signed manifest: added after signing")
    return check


def _check_name(name: str) -> None:
    parts = Path(name).parts
    if not parts or name.startswith("/") or ".." in parts or name in (MANIFEST, SIGNATURE):
        raise InvalidInput(f"{name!r} can't be a file of an evidence package")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
