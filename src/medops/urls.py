"""URLs as users may see them: a password in a URL never reaches a message or a listing."""

from __future__ import annotations

import re

_URL_PASSWORD = re.compile(r"(?P<head>[a-z0-9+]+://[^:/@]+:)(?P<pw>[^@]*)(?P<tail>@)", re.I)


def redact_url(value: str) -> str:
    """The URL with its password (if any) replaced by ``***``."""
    return _URL_PASSWORD.sub(lambda m: f"{m['head']}***{m['tail']}", value)
