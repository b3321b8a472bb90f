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
from medops.errors import TooLarge
from medops.server.api.problems import PROBLEM, problem_body
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
        status, started = 500, False

        async def tracked(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status, started = int(message["status"]), True
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            too_large = self._declared_too_large(scope)
            if too_large:
                await _send_problem(tracked, 413, "body_too_large", too_large, request_id)
                return
            await self.app(scope, self._bounded(receive), tracked)
        except TooLarge:
            if not started:
                await _send_problem(tracked, 413, "body_too_large", self._limit_text(), request_id)
        except Exception:
            log.exception("request %s failed", request_id)  # the trace stays in the server's log
            if not started:
                await _send_problem(tracked, 500, "internal_error", "the server failed on this request", request_id)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"  # bounded labels: the template, not the path
            seconds = time.perf_counter() - began
            self.metrics.requests.labels(scope["method"], template, str(status)).inc()
            self.metrics.latency.labels(template).observe(seconds)
            caller = scope["state"].get("caller")
            line = {
                "time": to_iso(utc_now()),
                "request_id": request_id,
                "method": scope["method"],
                "route": template,  # never the path's values nor the query: no identifiers in the log
                "status": status,
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

    def _bounded(self, receive: Receive) -> Receive:
        """The body as it arrives, refused once it passes the limit (a body without Content-Length too)."""
        seen = 0

        async def bounded() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body_bytes:
                    raise TooLarge(self._limit_text())
            return message

        return bounded


async def _send_problem(send: Send, status: int, code: str, detail: str, request_id: str) -> None:
    body = problem_body(status, code, detail, request_id)
    headers = [(b"content-type", PROBLEM.encode()), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
