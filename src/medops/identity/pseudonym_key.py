"""The pseudonymization key: a secret outside the workspace that keyed pseudonyms are made with.

It lives here, apart from the de-identification engine, so that opening a workspace or
checking it (`medops doctor`) does not load the data stack.

Anyone holding the key can recompute every pseudonym from a list of record numbers, so a
key file others can read, and a key someone could guess, are refused when loaded.
"""

from __future__ import annotations

import base64
import math
import os
import secrets
from collections import Counter
from pathlib import Path

from medops.errors import ConfigError
from medops.identity.keys import write_private_file
from medops.private_files import chmod_hint, exposed

KEY_ENV = "MEDOPS_PSEUDONYM_KEY"
MIN_BYTES = 32
# A Shannon estimate of the key's entropy (bits per byte times its length). It can only
# underestimate a random key; the smallest random key medops accepts (32 hex characters,
# 128 bits) measures about 90 bits at worst, while repeated and patterned keys measure far less.
MIN_ESTIMATED_BITS = 64
GENERATE_HINT = 'generate one with: python -c "import secrets; print(secrets.token_urlsafe(48))"'
# Error codes, so callers can tell a missing key (needed only to ingest) from a bad one.
MISSING, UNSAFE = "pseudonym_key_missing", "pseudonym_key_unsafe"


def load_key(env: dict[str, str] | None = None, key_file: str | Path | None = None) -> bytes:
    """The pseudonymization secret (32+ bytes): MEDOPS_PSEUDONYM_KEY, else the workspace's key file.

    The key file lives outside the workspace (next to the signing key); it is never stored
    in the metadata database or the artifact store. A key file others may read, or a key
    that is short, repeated or patterned, is refused.
    """
    source = os.environ if env is None else env
    raw = source.get(KEY_ENV, "")
    where = KEY_ENV
    if not raw and key_file and Path(key_file).is_file():
        path = Path(key_file)
        if exposed(path):
            raise ConfigError(
                f"the pseudonymization key file {path} is readable by other users", hint=chmod_hint(path), code=UNSAFE
            )
        raw, where = path.read_text(encoding="utf-8").strip(), str(path)
    if not raw:
        raise ConfigError(
            f"{KEY_ENV} is not set and there is no key file: pseudonyms need a secret key",
            hint=GENERATE_HINT,
            code=MISSING,
        )
    key = _decode(raw)
    weakness = key_weakness(key)
    if weakness:
        raise ConfigError(
            f"the pseudonymization key in {where} is {weakness}", hint=f"use random data: {GENERATE_HINT}", code=UNSAFE
        )
    return key


def _decode(raw: str) -> bytes:
    """Text ending in '=' is base64; anything else is used as the key's bytes (as it always was)."""
    try:
        return base64.b64decode(raw, validate=True) if raw.endswith("=") else raw.encode("utf-8")
    except ValueError:
        return raw.encode("utf-8")


def key_weakness(key: bytes) -> str | None:
    """Why ``key`` can't be a random secret (None when nothing gives it away).

    These checks catch short, repeated and patterned keys ("aaaa...", "abab...",
    "0123..."); no test proves a key random, so keys should come from a random generator.
    """
    if len(key) < MIN_BYTES:
        return f"too short: {len(key)} bytes, at least {MIN_BYTES} are needed"
    counts = Counter(key)
    bits = sum(n * math.log2(len(key) / n) for n in counts.values())
    if bits < MIN_ESTIMATED_BITS:
        kinds = "1 character" if len(counts) == 1 else f"{len(counts)} distinct characters"
        return f"too predictable: {len(key)} bytes made of {kinds}, about {bits:.0f} bits of entropy"
    period = _period(key)
    if period is not None:
        return f"a pattern: the same {period} characters repeated"
    steps = sum(1 for a, b in zip(key, key[1:], strict=False) if abs(a - b) <= 1) / (len(key) - 1)
    if steps > 0.8:
        return "a pattern: mostly runs of consecutive or equal characters"
    return None


def _period(key: bytes) -> int | None:
    """The shortest p <= len/2 with key[i] == key[i + p] throughout, if any."""
    for p in range(1, len(key) // 2 + 1):
        if key[p:] == key[:-p]:
            return p
    return None


def create_key_file(path: Path) -> bool:
    """A new random pseudonymization key, readable by its owner only; never overwritten."""
    if path.exists():
        return False
    write_private_file(path, secrets.token_urlsafe(48) + "\n")
    return True
