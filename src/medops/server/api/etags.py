"""Immutable content (a bundle, a report) is named by its SHA-256: that hash is its ETag, and a client
that already holds it gets 304 without the bytes being read again."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Request
from starlette.responses import Response


def immutable(request: Request, sha256: str, content: bytes | Callable[[], bytes], media_type: str) -> Response:
    tag = f'"{sha256}"'
    headers = {"ETag": tag, "Cache-Control": "private, max-age=31536000, immutable"}
    sent = request.headers.get("if-none-match", "")
    if tag in {t.strip() for t in sent.split(",")} or sent.strip() == "*":
        return Response(status_code=304, headers=headers)
    body = content() if callable(content) else content
    return Response(body, media_type=media_type, headers=headers)
