"""Ed25519 public keys as text and as short ids: shared by signatures, checkpoints and bundles.

Kept below identity and audit so that checking a signed checkpoint needs no identity code.
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


def key_id(public: Ed25519PublicKey) -> str:
    return hashlib.sha256(public.public_bytes_raw()).hexdigest()[:16]


def encode_public(public: Ed25519PublicKey) -> str:
    return base64.b64encode(public.public_bytes_raw()).decode("ascii")


def decode_public(text: str) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(base64.b64decode(text))
