"""Password hashing with argon2id, and the password rules medops enforces."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

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
