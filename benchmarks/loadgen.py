"""A bounded HTTP/1.1 load generator for loopback servers, and a trivial server to measure it against.

Run as its own process so it never shares the GIL with the server it drives:

    python -m benchmarks.loadgen run CONFIG.json     # prints one JSON line of results
    python -m benchmarks.loadgen trivial PORT        # answers every request with a fixed 200

The client keeps ``concurrency`` keep-alive connections, each sending the same request as soon
as the previous answer is read (a closed loop), and counts only the answers that complete in
the measured window after a warm-up. It speaks raw HTTP/1.1 on asyncio protocols (uvloop when
installed): a general client such as httpx costs more per request than the fastest server it
measures here. Only loopback addresses are accepted, and the run stops by itself after the
warm-up plus ``seconds`` plus a grace period, whatever the server does.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import sys
import time
from typing import Any

GRACE_S = 10.0  # after the window: answers still owed are abandoned and counted as errors


def _loop_policy() -> None:
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:  # plain asyncio still works, with a lower ceiling
        pass


def _loopback(host: str) -> str:
    if host == "localhost":
        return "127.0.0.1"
    if not ipaddress.ip_address(host).is_loopback:
        raise SystemExit(f"refusing to send load to {host}: loopback addresses only")
    return host


def build_request(host: str, port: int, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    """One POST (GET when there is no body) as raw bytes, with Content-Length and keep-alive."""
    method = "POST" if body else "GET"
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}", "Connection: keep-alive"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class _Connection(asyncio.Protocol):
    """One keep-alive connection: parses each response (Content-Length or chunked) and wakes its waiter."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[int] | None = None
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(-1)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        status = self._complete()
        if status is not None and self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(status)

    def _complete(self) -> int | None:
        """The status of a whole response at the buffer's start (removed from it), or None while it is partial."""
        buf = self.buffer
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            return None
        head = bytes(buf[:end]).decode("latin-1").split("\r\n")
        status = int(head[0].split(" ", 2)[1])
        length, chunked = 0, False
        for line in head[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding" and "chunked" in value.lower():
                chunked = True
        start = end + 4
        if not chunked:
            if len(buf) < start + length:
                return None
            del buf[: start + length]
            return status
        pos = start
        while True:  # chunk-size CRLF data CRLF ... 0 CRLF CRLF
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                return None
            size = int(bytes(buf[pos:eol]).split(b";")[0], 16)
            if size == 0:
                if len(buf) < eol + 4:
                    return None
                del buf[: eol + 4]
                return status
            pos = eol + 2 + size + 2
            if len(buf) < pos:
                return None


async def _drive(cfg: dict[str, Any]) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    host, port = _loopback(cfg["host"]), int(cfg["port"])
    request = build_request(host, port, cfg["path"], cfg["body"].encode(), cfg.get("headers", {}))
    concurrency, seconds, warmup = int(cfg["concurrency"]), float(cfg["seconds"]), float(cfg.get("warmup", 1.0))
    clock = time.perf_counter
    began = clock()
    window_start, window_end = began + warmup, began + warmup + seconds
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    errors = 0

    async def connect() -> _Connection:
        _, proto = await loop.create_connection(_Connection, host, port)
        return proto

    async def worker() -> None:
        nonlocal errors
        conn = await connect()
        while True:
            sent = clock()
            if sent >= window_end:
                break
            if conn.lost:
                conn = await connect()
            conn.waiter = loop.create_future()
            assert conn.transport is not None
            conn.transport.write(request)
            status = await conn.waiter
            done = clock()
            if done < window_start or done > window_end:
                continue
            if status == -1:
                errors += 1
                continue
            statuses[status] = statuses.get(status, 0) + 1
            latencies.append(done - sent)
        if conn.transport is not None:
            conn.transport.close()

    tasks = [asyncio.ensure_future(worker()) for _ in range(concurrency)]
    _, pending = await asyncio.wait(tasks, timeout=warmup + seconds + GRACE_S)
    for task in pending:  # an answer that never came: the run still ends on time
        task.cancel()
        errors += 1
    for task in tasks:
        if task.done() and not task.cancelled() and task.exception() is not None:
            errors += 1
    latencies.sort()
    n = len(latencies)

    def pct(q: float) -> float:
        return latencies[min(n - 1, int(n * q))] * 1e3 if n else float("nan")

    ok = statuses.get(200, 0)
    return {
        "requests": n,
        "ok": ok,
        "statuses": {str(k): v for k, v in statuses.items()},
        "errors": errors,
        "seconds": seconds,
        "rps": ok / seconds,
        "p50_ms": pct(0.50),
        "p90_ms": pct(0.90),
        "p99_ms": pct(0.99),
        "max_ms": latencies[-1] * 1e3 if n else float("nan"),
    }


class _Trivial(asyncio.Protocol):
    """Answers every complete request with a fixed 200: the generator's ceiling, not a server to compare."""

    ANSWER = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n{"status":"ok"}'

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            length = 0
            for line in bytes(self.buffer[:end]).split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if len(self.buffer) < end + 4 + length:
                return
            del self.buffer[: end + 4 + length]
            assert self.transport is not None
            self.transport.write(self.ANSWER)


async def _trivial(port: int, lifetime: float) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Trivial, "127.0.0.1", port)
    async with server:
        await asyncio.sleep(lifetime)  # bounded: it stops by itself even if nobody stops it


def main(argv: list[str]) -> None:
    _loop_policy()
    if argv[:1] == ["run"] and len(argv) == 2:
        with open(argv[1]) as f:
            cfg = json.load(f)
        print(json.dumps(asyncio.run(_drive(cfg))), flush=True)
    elif argv[:1] == ["trivial"] and len(argv) in (2, 3):
        asyncio.run(_trivial(int(argv[1]), float(argv[2]) if len(argv) == 3 else 3600.0))
    else:
        raise SystemExit("usage: python -m benchmarks.loadgen run CONFIG.json | trivial PORT [LIFETIME_S]")


if __name__ == "__main__":
    main(sys.argv[1:])
