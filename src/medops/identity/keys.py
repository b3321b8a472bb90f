"""The workspace signing key (Ed25519): private half outside the workspace, public half pinned.

The private key comes from MEDOPS_SIGNING_KEY (base64) or from the key file named by
``signing_key_file`` (by default under ~/.medops/keys/, created mode 0600). The public key is
pinned in medops.toml (``signing_public_key``) at init: that pin, not the metadata database,
says which key verifies, because anyone who can write to the database could insert a key of
their own there and sign with it.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from medops.errors import ConfigError, IntegrityError, MedopsError
from medops.private_files import PRIVATE_FILE, chmod_hint, exposed, make_private_dir
from medops.public_keys import decode_public, encode_public

if TYPE_CHECKING:
    from medops.config import Settings

ENV_KEY = "MEDOPS_SIGNING_KEY"


def _decode_private(text: str, where: str) -> Ed25519PrivateKey:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
        return Ed25519PrivateKey.from_private_bytes(raw)
    except (binascii.Error, ValueError) as exc:
        raise ConfigError(f"the signing key in {where} is not a base64 Ed25519 private key") from exc


def load_private_key(settings: Settings) -> Ed25519PrivateKey:
    if os.environ.get(ENV_KEY):
        return _decode_private(os.environ[ENV_KEY], f"${ENV_KEY}")
    path = Path(settings.signing_key_file)
    if not path.is_file():
        raise ConfigError(
            f"no signing key at {path}",
            hint=f"set {ENV_KEY}, or signing_key_file in medops.toml, to this workspace's key",
        )
    if exposed(path):
        raise ConfigError(f"signing key file {path} is readable by others", hint=chmod_hint(path))
    return _decode_private(path.read_text(encoding="ascii"), str(path))


def create_key_file(path: Path) -> Ed25519PrivateKey:
    """Write a new private key readable by its owner only; never overwrite an existing one."""
    if path.exists():
        raise ConfigError(f"a signing key exists already at {path}; refusing to overwrite it")
    key = Ed25519PrivateKey.generate()
    write_private_file(path, base64.b64encode(key.private_bytes_raw()).decode("ascii") + "\n")
    return key


def write_private_file(path: Path, text: str) -> None:
    """Write a secret atomically, readable by its owner only, in a folder only they can list.

    Folders made here are 0700; the file is 0600 whatever the umask.
    """
    make_private_dir(path.parent)
    tmp = path.with_name(f"{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE)
    os.fchmod(fd, PRIVATE_FILE)  # an existing temp file keeps its mode through O_TRUNC
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)


def pinned_public_key(settings: Settings, private: Callable[[], Ed25519PrivateKey]) -> Ed25519PublicKey:
    """The one public key this workspace trusts for its own signatures: the pin in medops.toml.

    When the private key is here too, the two must belong together: a key file swapped for
    another is refused rather than used to sign what nobody could verify. A workspace made
    before the pin existed trusts the key it holds (still never one from the database).
    """
    if settings.signing_public_key:
        try:
            pinned = decode_public(settings.signing_public_key.strip())
        except ValueError:
            raise ConfigError(
                f"{settings.config_path}: signing_public_key is not a base64 Ed25519 public key"
            ) from None
        try:
            key = private()
        except MedopsError:
            return pinned  # a verifier without the private key: the pin is enough
        if encode_public(key.public_key()) != encode_public(pinned):
            raise IntegrityError(
                "the signing key is not the one pinned in medops.toml (signing_public_key)",
                hint="point signing_key_file or MEDOPS_SIGNING_KEY at this workspace's own key",
                code="signing_key_mismatch",
            )
        return pinned
    try:
        return private().public_key()
    except MedopsError as exc:
        raise ConfigError(
            f"this workspace pins no public key in medops.toml and its signing key is not here: {exc.message}",
            hint="add signing_public_key (the workspace's public key, base64) to medops.toml, or give that key",
            code="verification_key_missing",
        ) from None
