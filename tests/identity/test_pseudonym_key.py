"""The pseudonymization key is refused when others can read it or someone could guess it."""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
from collections.abc import Callable
from pathlib import Path

import pytest

from medops.errors import ConfigError
from medops.identity.pseudonym_key import KEY_ENV, MISSING, UNSAFE, create_key_file, key_weakness, load_key
from tests.factories import PSEUDONYM_KEY, loose_umask, mode

WEAK = {
    "32 times a": "a" * 32,
    "two letters": "ab" * 20,
    "a counting run": "abcdefghijklmnopqrstuvwxyz0123456789",
    "a repeated block": "0123456789abcdef" * 2,
    "a repeated word": "password" * 5,
    "too short": secrets.token_hex(15),
}


@pytest.mark.parametrize("name", WEAK)
def test_weak_keys_are_refused_from_the_environment_and_from_a_file(name: str, tmp_path: Path) -> None:
    """32 times "a" was accepted: its pseudonyms are as good as none."""
    with pytest.raises(ConfigError) as exc:
        load_key({KEY_ENV: WEAK[name]})
    assert exc.value.code == UNSAFE and "token_urlsafe" in (exc.value.hint or "")
    assert WEAK[name] not in exc.value.message  # the key itself is never echoed
    key_file = tmp_path / "k.pseudonym"
    key_file.write_text(WEAK[name] + "\n")
    key_file.chmod(0o600)
    with pytest.raises(ConfigError, match=str(key_file)):
        load_key({}, key_file=key_file)


def test_a_key_file_others_can_read_is_refused_with_the_fix(tmp_path: Path) -> None:
    """A 0644 key was accepted: every local user could recompute every pseudonym."""
    key_file = tmp_path / "k.pseudonym"
    assert create_key_file(key_file)
    assert load_key({}, key_file=key_file)
    key_file.chmod(0o644)
    with pytest.raises(ConfigError, match="readable by other users") as exc:
        load_key({}, key_file=key_file)
    assert exc.value.hint == f"run: chmod 600 {key_file}"
    key_file.chmod(0o640)  # the group counts as others
    with pytest.raises(ConfigError, match="readable by other users"):
        load_key({}, key_file=key_file)


def test_a_new_key_file_is_private_whatever_the_umask(tmp_path: Path) -> None:
    with loose_umask(0o000):
        assert create_key_file(tmp_path / "keys" / "k.pseudonym")
    assert mode(tmp_path / "keys" / "k.pseudonym") == 0o600 and mode(tmp_path / "keys") == 0o700
    assert not create_key_file(tmp_path / "keys" / "k.pseudonym")  # never overwritten


GENERATORS: dict[str, Callable[[], str]] = {
    "token_urlsafe(48), what medops makes": lambda: secrets.token_urlsafe(48),
    "token_urlsafe(24)": lambda: secrets.token_urlsafe(24),
    "openssl rand -hex 16": lambda: secrets.token_hex(16),
    "openssl rand -hex 32": lambda: secrets.token_hex(32),
    "openssl rand -base64 32": lambda: base64.b64encode(os.urandom(32)).decode(),
    "32 random digits": lambda: "".join(secrets.choice("0123456789") for _ in range(32)),
}


@pytest.mark.parametrize("name", GENERATORS)
def test_random_keys_always_pass(name: str) -> None:
    for _ in range(3000):
        key = GENERATORS[name]()
        assert load_key({KEY_ENV: key}), key


def test_keys_in_use_keep_working_with_the_same_bytes() -> None:
    """Pseudonyms depend on the key's bytes: the formats read before are read the same way."""
    raw = os.urandom(32)
    assert load_key({KEY_ENV: base64.b64encode(raw).decode()}) == raw  # base64 (ends in '=')
    demo = hashlib.sha256(b"medops demo, seed 7").hexdigest()
    assert load_key({KEY_ENV: demo}) == demo.encode()  # anything else: its own bytes
    assert load_key({KEY_ENV: PSEUDONYM_KEY}) == PSEUDONYM_KEY.encode()


def test_a_missing_key_is_told_apart_from_a_bad_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        load_key({}, key_file=tmp_path / "absent")
    assert exc.value.code == MISSING


def test_the_weakness_is_named() -> None:
    assert key_weakness(b"a" * 32) == "too predictable: 32 bytes made of 1 character, about 0 bits of entropy"
    assert key_weakness(b"password" * 5) == "a pattern: the same 8 characters repeated"
    assert key_weakness(b"short") == "too short: 5 bytes, at least 32 are needed"
    assert key_weakness(PSEUDONYM_KEY.encode()) is None
