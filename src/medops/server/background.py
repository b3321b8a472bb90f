"""The serving app on uvicorn in a thread of this process: for the demo and the tests, which call
the same app `medops serve` runs without a separate process (its lifespan too: the registry follower)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def serving_in_thread(app: Any, *, start_timeout: float = 10.0) -> Iterator[str]:
    """The app on a free loopback port; yields its base URL and stops the server on exit."""
    import uvicorn

    from medops.server.transport import HTTP_PROTOCOL

    # the socket is bound here and handed over open: a port probed free and then closed can be taken
    # by another process before the server binds it (two test workers did)
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    port = listening.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, http=HTTP_PROTOCOL, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listening]}, name="medops-serve", daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout  # a bound on the wait for the socket, not a measurement
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        if not server.started:
            raise RuntimeError(f"the server did not start on 127.0.0.1:{port}")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        listening.close()
