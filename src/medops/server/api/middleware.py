"""What every API request passes around its route: a request id, the body size limit, metrics, one
JSON log line, and a generic 500 that never carries a stack trace to the client.

Plain ASGI around the FastAPI app, so a route added later is covered without saying so.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from medops.clock import to_iso, utc_now
from medops.server.api.problems import PROBLEM, problem_body
from medops.server.guard import Tracked, replay
from medops.server.metrics import LATENCY_BUCKETS

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

access = logging.getLogger("medops.api.access")
log = logging.getLogger("medops.api")


class ApiMetrics:
    """Prometheus metrics of one API process, in a registry of its own."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry = CollectorRegistry()
        labels = ["method", "route", "status"]
        self.requests = Counter("medops_api_requests", "API requests answered", labels, registry=self.registry)
        self.latency = Histogram(
            "medops_api_request_seconds", "Time to answer", ["route"], buckets=LATENCY_BUCKETS, registry=self.registry
        )

    def render(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)


class Envelope:
    def __init__(self, app: ASGIApp, metrics: ApiMetrics, max_body_bytes: int) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        began = time.perf_counter()
        tracked = Tracked(send, request_id)

        try:
            if _holds_nul(scope):  # no store keeps one (PostgreSQL refuses it in text): refused here, not at a 500
                detail = "the request's path or query holds a NUL character"
                await _send_problem(tracked, 422, "invalid_request", detail, request_id)
                return
            too_large = self._declared_too_large(scope)
            if too_large:
                await _send_problem(tracked, 413, "body_too_large", too_large, request_id)
                return
            body = await self._body(receive)
            if body is None:
                await _send_problem(tracked, 413, "body_too_large", self._limit_text(), request_id)
                return
            if b"\x00" in body or b"\\u0000" in body:  # raw, or escaped in JSON
                await _send_problem(
                    tracked, 422, "invalid_request", "the request body holds a NUL character", request_id
                )
                return
            await self.app(scope, replay(body, receive), tracked)
        except Exception:
            log.exception("request %s failed", request_id)  # the trace stays in the server's log
            if not tracked.started:
                await _send_problem(tracked, 500, "internal_error", "the server failed on this request", request_id)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"  # bounded labels: the template, not the path
            seconds = time.perf_counter() - began
            self.metrics.requests.labels(scope["method"], template, str(tracked.status)).inc()
            self.metrics.latency.labels(template).observe(seconds)
            caller = scope["state"].get("caller")
            line = {
                "time": to_iso(utc_now()),
                "request_id": request_id,
                "method": scope["method"],
                "route": template,  # never the path's values nor the query: no identifiers in the log
                "status": tracked.status,
                "ms": round(seconds * 1000, 2),
                "user": caller.user if caller is not None else None,
            }
            access.info(json.dumps(line))

    def _limit_text(self) -> str:
        return f"the request body is over {self.max_body_bytes:,} bytes"

    def _declared_too_large(self, scope: Scope) -> str | None:
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    return None  # the server's HTTP parser refuses it first
                if declared > self.max_body_bytes:
                    return self._limit_text()
        return None

    async def _body(self, receive: Receive) -> bytes | None:
        """The whole body (under the limit: the routes take JSON documents), or None past the limit."""
        chunks: list[bytes] = []
        seen = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > self.max_body_bytes:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)


def _holds_nul(scope: Scope) -> bool:
    return (
        "\x00" in scope.get("path", "")
        or b"%00" in scope.get("query_string", b"")
        or b"%00" in scope.get("raw_path", b"")
    )


async def _send_problem(send: Send, status: int, code: str, detail: str, request_id: str) -> None:
    body = problem_body(status, code, detail, request_id)
    headers = [(b"content-type", PROBLEM.encode()), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
