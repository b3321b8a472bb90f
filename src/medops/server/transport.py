"""uvicorn's HTTP protocol with each response sent in one write.

uvicorn writes a response's status line and headers, then its body, as two writes to the
socket. On loopback or a LAN each write is a segment of its own, and the first one wakes the
client (a proxy, a load balancer, the SDK) only for it to wait for the second. Measured at
concurrency 8 on 2 cores (docs/benchmarks.md), one write per response serves 13 to 20 % more
requests a second. ``OneWrite`` holds what is written during one step of the event loop and
writes it at the start of the next; ``HttpProtocol`` is uvicorn's own protocol (httptools where
installed, h11 otherwise) over it, passed to uvicorn as ``http=HTTP_PROTOCOL``.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

try:  # what uvicorn's "auto" picks
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _Protocol
except ImportError:  # pragma: no cover - httptools ships with uvicorn[standard]
    from uvicorn.protocols.http.h11_impl import H11Protocol as _Protocol  # type: ignore[assignment]

HTTP_PROTOCOL = "medops.server.transport:HttpProtocol"  # uvicorn's `http` setting, importable by each worker
HELD_BYTES = 65_536  # more than this held at once is written at once: a long stream never piles up here


class OneWrite:
    """A transport that writes at the next step of the loop what was written during this one."""

    __slots__ = ("_transport", "_loop", "_held", "_size")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: list[bytes] | None = None
        self._size = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._held is None:
            self._held = [bytes(data)]
            self._size = len(data)
            self._loop.call_soon(self.flush)
        else:
            self._held.append(bytes(data))
            self._size += len(data)
        if self._size > HELD_BYTES:
            self.flush()

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        held, self._held, self._size = self._held, None, 0
        if held and not self._transport.is_closing():
            self._transport.write(held[0] if len(held) == 1 else b"".join(held))

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def close(self) -> None:
        self.flush()  # what was written before close is sent, as with the socket's own transport
        self._transport.close()

    def abort(self) -> None:
        self._held, self._size = None, 0
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:  # everything else is the socket's transport
        return getattr(self._transport, name)


class HttpProtocol(_Protocol):
    """uvicorn's HTTP/1.1 protocol writing through ``OneWrite``."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        one = OneWrite(cast(asyncio.Transport, transport), asyncio.get_running_loop())
        super().connection_made(cast(asyncio.Transport, one))  # a stand-in: it has what uvicorn calls
