"""A response goes out in one write (medops.server.transport), and nothing is lost or reordered on
the way: not at close, not for a long stream, not across keep-alive requests."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import httpx

from medops.server.background import serving_in_thread
from medops.server.transport import HELD_BYTES, OneWrite


class _Recorder:
    """A transport that keeps what it is asked to do."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, bytes]] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        self.calls.append(("write", bytes(data)))

    def close(self) -> None:
        self.calls.append(("close", b""))
        self.closing = True

    def abort(self) -> None:
        self.calls.append(("abort", b""))
        self.closing = True

    def is_closing(self) -> bool:
        return self.closing

    def get_extra_info(self, name: str) -> Any:
        return f"extra:{name}"


def _run(steps: Any) -> _Recorder:
    recorder = _Recorder()

    async def main() -> None:
        await steps(OneWrite(recorder, asyncio.get_running_loop()))  # type: ignore[arg-type]
        await asyncio.sleep(0)  # the next turn of the loop: anything held goes out

    asyncio.run(main())
    return recorder


def test_writes_of_one_turn_go_out_as_one() -> None:
    async def steps(t: OneWrite) -> None:
        t.write(b"HTTP/1.1 200 OK\r\n\r\n")
        t.write(b'{"a":1}')
        await asyncio.sleep(0)
        t.write(b"next")

    assert _run(steps).calls == [("write", b'HTTP/1.1 200 OK\r\n\r\n{"a":1}'), ("write", b"next")]


def test_close_sends_what_was_written_first_and_abort_drops_it() -> None:
    async def closing(t: OneWrite) -> None:
        t.write(b"head")
        t.write(b"body")
        t.close()

    assert _run(closing).calls == [("write", b"headbody"), ("close", b"")]

    async def aborting(t: OneWrite) -> None:
        t.write(b"head")
        t.abort()

    assert _run(aborting).calls == [("abort", b"")]


def test_a_long_stream_is_not_held() -> None:
    chunk = b"x" * (HELD_BYTES // 4 + 1)

    async def steps(t: OneWrite) -> None:
        for _ in range(8):  # a stream that never yields to the loop
            t.write(chunk)
        written = t._transport.calls  # type: ignore[attr-defined]
        assert sum(len(d) for _, d in written) >= 4 * len(chunk)  # sent while the step still runs

    recorder = _run(steps)
    assert b"".join(d for _, d in recorder.calls) == chunk * 8


def test_nothing_is_written_to_a_closed_transport_and_the_rest_is_the_socket_s() -> None:
    async def steps(t: OneWrite) -> None:
        t.write(b"late")
        t._transport.closing = True  # type: ignore[attr-defined]  # the peer went away before the next turn
        assert t.get_extra_info("peername") == "extra:peername"
        assert t.is_closing()

    assert _run(steps).calls == []


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Echoes the request's path as a streamed body of that many 1 KiB chunks."""
    if scope["type"] != "http":
        return
    n = int(scope["path"].strip("/") or 0)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    for i in range(n):
        await send({"type": "http.response.body", "body": bytes([48 + i % 10]) * 1024, "more_body": True})
    await send({"type": "http.response.body", "body": b"end", "more_body": False})


def test_uvicorn_over_one_write_answers_keep_alive_and_streamed_requests() -> None:
    with serving_in_thread(_app) as url, httpx.Client(base_url=url) as client:
        for n in (0, 1, 300, 2):  # 300 KiB streamed without yielding: over HELD_BYTES several times
            answer = client.get(f"/{n}")
            assert answer.status_code == 200
            assert answer.content == b"".join(bytes([48 + i % 10]) * 1024 for i in range(n)) + b"end"
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port))) as raw:  # two requests in one packet (pipelined)
            raw.sendall(b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /0 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := raw.recv(65536):
                data += chunk
        assert data.count(b"HTTP/1.1 200 OK") == 2
        assert data.endswith(b"0\r\n\r\n")  # the second answer whole, then the close
