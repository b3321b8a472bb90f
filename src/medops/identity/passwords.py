"""Password hashing with argon2id, and the password rules medops enforces."""

from __future__ import annotations

import base64
import os

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from argon2.low_level import ARGON2_VERSION

from medops.errors import InvalidInput

MIN_LENGTH = 10
_hasher = PasswordHasher()


def check_policy(username: str, password: str) -> None:
    if len(password) < MIN_LENGTH:
        raise InvalidInput(f"a password needs at least {MIN_LENGTH} characters")
    if username.lower() in password.lower():
        raise InvalidInput("a password must not contain the username")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(stored_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def dummy_hash() -> str:
    """A hash no password matches, costing exactly what checking a real one costs.

    Verified for unknown and disabled users, so answering them takes as long as a wrong
    password for a real user and the time gives no name away. It is written from the
    hasher's own parameters (argon2 reads the cost from the hash) rather than hashed, so
    making it costs nothing: hashing here would make the first unknown name twice as slow.
    """
    h = _hasher

    def b64(n: int) -> str:
        return base64.b64encode(os.urandom(n)).decode("ascii").rstrip("=")

    cost = f"m={h.memory_cost},t={h.time_cost},p={h.parallelism}"
    return f"$argon2{h.type.name.lower()}$v={ARGON2_VERSION}${cost}${b64(h.salt_len)}${b64(h.hash_len)}"
