"""The spool's writer: a process of its own that makes each group of records durable and says so.

Why a process: the synchronous write takes a fraction of a millisecond, but a thread that made
it inside the server then needed the interpreter back to wake the waiting requests, and waited
for it behind the event loop (up to the interpreter's switch interval), so the requests' wait
was twice the disk's. This process has an interpreter of its own. The server writes frames to
a pipe at the end of each turn of its event loop and watches the other pipe for
acknowledgements, as it watches its sockets.

Frames from the server: one byte (``W`` records, ``S`` seal now), the payload's length (4 bytes,
little-endian) and the payload. Every frame waiting when the writer looks is handled in order,
consecutive ``W`` frames in one write. Each acknowledgement is ``ACK``: how many frames it
settles, and the errno they failed with (0: on disk). A closed pipe means
stop: the open segment is sealed and the process exits. The server's folder lock is inherited,
so a folder is never recovered while its writer still lives.
"""

from __future__ import annotations

import errno
import os
import select
import signal
import struct
import sys
import threading
from pathlib import Path

from medops.serving.spool_segments import Segments

WRITE, SEAL = b"W", b"S"
HEADER = struct.Struct("<cI")
ACK = struct.Struct("<Ii")


def frame(op: bytes, payload: bytes = b"") -> bytes:
    return HEADER.pack(op, len(payload)) + payload


def take_frames(buffer: bytearray) -> list[tuple[bytes, bytes]]:
    """The complete frames at the start of ``buffer``, removed from it."""
    frames = []
    start = 0
    while len(buffer) - start >= HEADER.size:
        op, length = HEADER.unpack_from(buffer, start)
        end = start + HEADER.size + length
        if end > len(buffer):
            break
        frames.append((op, bytes(buffer[start + HEADER.size : end])))
        start = end
    del buffer[:start]
    return frames


def serve(segments: Segments, source: int, acks: int) -> None:
    """Write what arrives on ``source`` until it closes; acknowledge on ``acks``."""
    work = threading.Event()
    stopping = threading.Event()

    def helper() -> None:  # seals and spares take milliseconds: never in a group's way
        while not stopping.is_set():
            work.wait()
            work.clear()
            try:
                segments.seal_retired()
                if not stopping.is_set():
                    segments.prepare_spare()
            except OSError as exc:  # sealed at the end, or recovered; no spare: the next segment is appended
                print(f"medops spool writer: {exc.strerror} in {exc.filename}", file=sys.stderr)

    thread = threading.Thread(target=helper, name="medops-spool-sealer", daemon=True)
    thread.start()
    buffer = bytearray()
    try:
        while True:
            readable, _, _ = select.select([source], [], [], segments.seconds_to_age())
            if not readable:
                segments.seal_if_aged()
                work.set()
                continue
            chunk = os.read(source, 1 << 20)
            if not chunk:
                return
            buffer += chunk
            frames = take_frames(buffer)
            i = 0
            while i < len(frames):
                j = i + 1
                if frames[i][0] == WRITE:
                    while j < len(frames) and frames[j][0] == WRITE:
                        j += 1
                failed = 0
                try:
                    if frames[i][0] == WRITE:
                        segments.write(b"".join(payload for _, payload in frames[i:j]))
                    else:
                        segments.seal()
                except OSError as exc:
                    failed = exc.errno or errno.EIO
                    print(f"medops spool writer: write failed ({exc.strerror})", file=sys.stderr)
                os.write(acks, ACK.pack(j - i, failed))
                if segments.has_work:
                    work.set()
                i = j
    finally:
        stopping.set()
        work.set()
        thread.join()
        segments.seal()
        segments.discard_spare()


def main(argv: list[str]) -> int:
    # Ctrl-C, and a service manager's SIGTERM, reach the whole process group: the server shuts down and
    # closes the pipe, which ends this once everything handed over is written
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    folder, seal_records, seal_seconds, source, acks = argv
    segments = Segments(Path(folder), seal_records=int(seal_records), seal_seconds=float(seal_seconds))
    segments.seal_leftovers()
    serve(segments, int(source), int(acks))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
