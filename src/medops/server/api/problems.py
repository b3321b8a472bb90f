"""Errors as RFC 9457 problem documents: one form for every refusal and failure the API gives.

A problem names its stable ``code`` (the error hierarchy's, medops.errors) in a ``type`` URN,
says what was wrong in ``detail`` without echoing a request's values, and carries the request id
a user quotes to the operator. A server-side failure says no more than that: its cause goes to
the server's log.
"""

from __future__ import annotations

import json
import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from medops.errors import MedopsError

PROBLEM = "application/problem+json"
log = logging.getLogger("medops.api")


def _documented(status: int, description: str) -> dict[str, Any]:
    return {"description": description, "content": {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}}}


# the refusals any operation may answer, documented on every router (the OpenAPI document then says them)
RESPONSES: dict[int | str, dict[str, Any]] = {
    401: _documented(401, "no credential, or one that is not valid"),
    403: _documented(403, "the caller's roles don't allow it, or a cookie session's change came without CSRF"),
    404: _documented(404, "no such resource"),
    409: _documented(409, "the resource's state does not allow it"),
    413: _documented(413, "the body is over the server's limit"),
    422: _documented(422, "the request or its values are not valid"),
}

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "title", "status", "detail", "code", "request_id"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "code": {"type": "string"},
        "request_id": {"type": "string"},
        "hint": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "object"}},
    },
}


def problem_body(status: int, code: str, detail: str, request_id: str, **extra: Any) -> bytes:
    """The problem document's bytes; ``extra`` members with a None value are left out."""
    doc = {
        "type": f"urn:medops:problem:{code}",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "instance": f"urn:medops:request:{request_id}",
        "code": code,
        "request_id": request_id,
        **{k: v for k, v in extra.items() if v is not None},
    }
    return json.dumps(doc).encode()


def problem(status: int, code: str, detail: str, request_id: str, **extra: Any) -> Response:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    body = problem_body(status, code, detail, request_id, **extra)
    return Response(body, status_code=status, media_type=PROBLEM, headers=headers)


def request_id(request: Request) -> str:
    return str(getattr(request.state, "request_id", "-"))


def install(app: FastAPI) -> None:
    """Every exception a route can raise, answered as a problem."""

    @app.exception_handler(MedopsError)
    async def medops_error(request: Request, exc: MedopsError) -> Response:
        status = exc.http_status if exc.http_status < 500 else 500
        if status == 500:  # the cause (a medops message: no request values) for the operator only
            log.error("request %s failed: %s (%s)", request_id(request), exc.code or type(exc).__name__, exc)
            return problem(500, "internal_error", "the server failed on this request", request_id(request))
        code = exc.code or _default_code(status)
        return problem(status, code, str(exc), request_id(request), hint=exc.hint)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        # FastAPI's own answer repeats the values sent; this one names the fields and what is wrong
        fields = [
            {"field": ".".join(str(p) for p in e.get("loc", ())), "problem": e.get("type", "invalid")}
            for e in exc.errors()
        ]
        names = ", ".join(f["field"] for f in fields) or "the request"
        return problem(422, "invalid_request", f"invalid: {names}", request_id(request), errors=fields)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        status = exc.status_code
        detail = "no such resource" if status == 404 else HTTPStatus(status).phrase.lower()
        return problem(status, _default_code(status), detail, request_id(request))

    @app.exception_handler(Exception)
    async def failure(request: Request, exc: Exception) -> Response:
        log.error("request %s failed", request_id(request), exc_info=exc)
        return problem(500, "internal_error", "the server failed on this request", request_id(request))


def _default_code(status: int) -> str:
    return {
        400: "bad_request",
        401: "login_required",
        403: "permission_denied",
        404: "not_found",
        405: "method_not_allowed",
        409: "conflict",
        413: "body_too_large",
        415: "unsupported_media_type",
        422: "invalid_input",
        503: "unavailable",
    }.get(status, "http_error")
