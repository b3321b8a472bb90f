"""The pseudonymization key: a secret outside the workspace that keyed pseudonyms are made with.

It lives here, apart from the de-identification engine, so that opening a workspace or
checking it (`medops doctor`) does not load the data stack.
"""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path

from medops.errors import ConfigError
from medops.identity.keys import write_private_file

KEY_ENV = "MEDOPS_PSEUDONYM_KEY"


def load_key(env: dict[str, str] | None = None, key_file: str | Path | None = None) -> bytes:
    """The pseudonymization secret (32+ bytes): MEDOPS_PSEUDONYM_KEY, else the workspace's key file.

    The key file lives outside the workspace (next to the signing key); it is never stored
    in the metadata database or the artifact store.
    """
    source = os.environ if env is None else env
    raw = source.get(KEY_ENV, "")
    where = KEY_ENV
    if not raw and key_file and Path(key_file).is_file():
        raw, where = Path(key_file).read_text(encoding="utf-8").strip(), str(key_file)
    if not raw:
        raise ConfigError(
            f"{KEY_ENV} is not set and there is no key file: pseudonyms need a secret key",
            hint='generate one with: python -c "import secrets; print(secrets.token_urlsafe(48))"',
        )
    try:
        key = base64.b64decode(raw, validate=True) if raw.endswith("=") else raw.encode("utf-8")
    except ValueError:
        key = raw.encode("utf-8")
    if len(key) < 32:
        raise ConfigError(f"the pseudonymization key in {where} is too short: use at least 32 bytes of random data")
    return key


def create_key_file(path: Path) -> bool:
    """A new random pseudonymization key, readable by its owner only; never overwritten."""
    if path.exists():
        return False
    write_private_file(path, secrets.token_urlsafe(48) + "\n")
    return True
