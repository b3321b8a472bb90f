"""What every request passes before a route sees it: a request id, the bearer token (default deny),
the body size limit, metrics, and a generic 500 that never carries a stack trace to the client.

Written as plain ASGI around the FastAPI app so that a route added later is guarded without
saying so: only the paths in OPEN (and /metrics when opened for a scraper) skip the token.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

import anyio.to_thread
from starlette.responses import Response

from medops.caller import Caller
from medops.errors import AuthenticationFailed, PermissionDenied, StoreError
from medops.server.deadlines import Deadlines
from medops.server.metrics import Metrics
from medops.services import Services

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Lane = Callable[[Scope, bytes, "Tracked"], Awaitable[bool]]  # answers a request (True) or leaves it to the app (False)
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

OPEN = frozenset({"/healthz", "/readyz"})
log = logging.getLogger("medops.server")


@dataclass(frozen=True)
class ServerOptions:
    max_body_bytes: int = 1_048_576  # larger request bodies get 413 before they are read whole
    max_rows: int = 1_000  # rows in one predict request
    metrics_public: bool = False  # /metrics without a token, for a scraper on a trusted network
    prediction_log: bool = True  # every answer kept in the spool before it is sent (off only to measure its cost)
    request_timeout: float = 30.0  # seconds; a request not answered by then gets 504
    follow_interval: float = 5.0  # seconds between registry checks of NAME and NAME@ALIAS models; 0: never


def error_body(code: str, message: str, request_id: str, **extra: Any) -> bytes:
    """The one error form every refusal takes: a stable code, a message without values, the request id."""
    return json.dumps({"error": {"code": code, "message": message, "request_id": request_id, **extra}}).encode()


def error_response(
    request_id: str, status: int, code: str, message: str, hint: str | None = None, **extra: Any
) -> Response:
    """``error_body`` as a route's response."""
    if hint:
        extra["hint"] = hint
    return Response(error_body(code, message, request_id, **extra), status_code=status, media_type="application/json")


class Tracked:
    """A send that adds the request id to the answer and remembers its status (500 until an answer starts)."""

    def __init__(self, send: Send, request_id: str) -> None:
        self.send = send
        self.request_id = request_id
        self.status = 500
        self.started = False

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status, self.started = int(message["status"]), True
            message["headers"] = [*message.get("headers", []), (b"x-request-id", self.request_id.encode())]
        await self.send(message)

    async def json(self, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
        """A whole JSON response, with the request id (every answer the Guard or the lane gives goes out here)."""
        self.status, self.started = status, True
        head = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            *headers,
            (b"x-request-id", self.request_id.encode()),
        ]
        await self.send({"type": "http.response.start", "status": status, "headers": head})
        await self.send({"type": "http.response.body", "body": body})


class Guard:
    def __init__(
        self,
        app: ASGIApp,
        services: Services,
        metrics: Metrics,
        options: ServerOptions,
        routes: frozenset[str],
        lanes: dict[str, Lane] | None = None,
    ) -> None:
        self.app = app
        self.lanes = lanes or {}  # by path: the handlers that may answer a request before FastAPI sees it
        self._turn_epoch: int | None = None  # see _epoch
        self.services = services
        self.metrics = metrics
        self.options = options
        self.routes = routes  # the paths metrics name; anything else counts as "unmatched" (bounded labels)
        self.deadlines = Deadlines(options.request_timeout)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = os.urandom(16).hex()
        scope.setdefault("state", {})["request_id"] = request_id
        route = scope["path"] if scope["path"] in self.routes else "unmatched"
        began = time.perf_counter()
        tracked = Tracked(send, request_id)
        late = False

        try:
            refused = await self._refusal(scope, request_id)
            if refused is not None:
                code, body, headers = refused
                await tracked.json(code, body, headers)
                return
            body_or_refusal = await self._bounded_body(scope, receive, request_id)
            if isinstance(body_or_refusal, tuple):
                await tracked.json(*body_or_refusal, [])
                return
            task = self.deadlines.start()  # a stalled disk under the log, too
            try:
                lane = self.lanes.get(scope["path"])
                if lane is None or not await lane(scope, body_or_refusal, tracked):  # medops.server.predict
                    await self.app(scope, replay(body_or_refusal, receive), tracked)
            finally:
                late = self.deadlines.stop(task)
        except (TimeoutError, asyncio.CancelledError) as exc:
            if isinstance(exc, asyncio.CancelledError) and not late:
                raise  # the server stopping, not this request's deadline
            # the scoring thread may still finish; its answer is dropped (logged, if it was, but never sent)
            log.warning("request %s on %s timed out after %gs", request_id, route, self.options.request_timeout)
            if not tracked.started:
                message = f"no answer within {self.options.request_timeout:g} s; try again"
                body = error_body("timeout", message, request_id)
                await tracked.json(504, body, [])
        except Exception:
            # the trace goes to the server's log only; the client gets the request id to quote
            log.exception("request %s on %s failed", request_id, route)
            if not tracked.started:
                body = error_body("internal_error", "the server failed on this request", request_id)
                await tracked.json(500, body, [])
        finally:
            metrics = self.metrics
            metrics.child(metrics.requests, scope["method"], route, str(tracked.status)).inc()
            metrics.child(metrics.latency, route).observe(time.perf_counter() - began)
            if tracked.status >= 500:
                metrics.child(metrics.errors, route).inc()

    async def _refusal(self, scope: Scope, request_id: str) -> tuple[int, bytes, list[tuple[bytes, bytes]]] | None:
        """401 without a valid token, 403 without the role; None lets the request through."""
        path = scope["path"]
        if path in OPEN or (path == "/metrics" and self.options.metrics_public):
            return None
        challenge = [(b"www-authenticate", b"Bearer")]
        secret = _bearer(scope)
        if secret is None:
            message = "this endpoint needs Authorization: Bearer <API token or session>"
            return 401, error_body("login_required", message, request_id), challenge
        try:
            # a remembered admission costs one primary-key read, made here (less than a hop to a worker
            # thread) and shared by the requests of this turn of the event loop
            caller = self.services.serving.remembered(secret, self._epoch())
            if caller is None:  # the full check: several reads, on a worker thread
                caller = await anyio.to_thread.run_sync(self._caller, secret)
        except AuthenticationFailed:
            # one answer for every bad credential: unknown, revoked, expired or disabled are not told apart
            return 401, error_body("credential_invalid", "the token is not valid", request_id), challenge
        except PermissionDenied as exc:
            return 403, error_body(exc.code or "permission_denied", str(exc), request_id), []
        except StoreError:  # the metadata database is down or busy: try again, nothing was refused
            log.warning("request %s: the metadata database did not answer the token check", request_id)
            message = "the server can't check tokens right now; try again"
            return 503, error_body("unavailable", message, request_id), [(b"retry-after", b"1")]
        scope["state"]["caller"] = caller
        return None

    def _epoch(self) -> int:
        """The audit trail's newest id, read at most once per turn of the event loop.

        Shared only by requests that had arrived when it was read: the read schedules its own
        forgetting, and the event loop runs callbacks in order, so a request whose bytes come
        in later is handled after the forgetting and reads again. A revocation committed
        before a request arrives is therefore seen by that request, as with a read of its own.
        """
        if self._turn_epoch is None:
            self._turn_epoch = self.services.serving.epoch()
            asyncio.get_running_loop().call_soon(self._forget_epoch)
        return self._turn_epoch

    def _forget_epoch(self) -> None:
        self._turn_epoch = None

    def _caller(self, secret: str) -> Caller:
        return self.services.serving.admit(secret)

    async def _bounded_body(self, scope: Scope, receive: Receive, request_id: str) -> bytes | tuple[int, bytes]:
        """The whole body, or 413 once it passes the limit (told by Content-Length, or counted as it arrives)."""
        limit = self.options.max_body_bytes
        too_large = "body_too_large", f"the request body is over {limit:,} bytes"
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    if int(value) > limit:
                        return 413, error_body(*too_large, request_id)
                except ValueError:
                    return 400, error_body("bad_request", "Content-Length is not a number", request_id)
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return 413, error_body(*too_large, request_id)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)


def _bearer(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            header: str = bytes(value).decode("latin-1")
            scheme, _, secret = header.partition(" ")
            if scheme.lower() == "bearer" and secret.strip():
                return secret.strip()
    return None


def replay(body: bytes, receive: Receive) -> Receive:
    """A receive that hands the app the body already read, then what the client sends next (its disconnect)."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed
