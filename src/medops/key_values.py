"""Repeated NAME=VALUE arguments (tags, entities, request values), as every adapter takes them."""

from __future__ import annotations

from medops.errors import InvalidInput


def key_values(values: list[str], option: str, example: str) -> dict[str, list[str]]:
    """Repeated ``NAME=VALUE`` arguments, grouped by name in the order given."""
    out: dict[str, list[str]] = {}
    for value in values:
        key, sep, item = value.partition("=")
        if not sep or not key:
            raise InvalidInput(f"{option} {value!r} is not NAME=VALUE", hint=f"for example {option} {example}")
        out.setdefault(key, []).append(item)
    return out
