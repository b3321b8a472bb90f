"""The spool's syncer (sync mode ``background``): a process of its own that makes the server's writes
durable about every ``sync_seconds``.

Why a process: a thread in the server woke 20 times a second and took the interpreter's lock
each time it came back from a sync, from waiting, or from a file operation. Each hand-over of
that lock made the event loop wait, and the server answered about 4 % fewer requests a second
than with the same syncs made from another process (measured, docs/benchmarks.md). A sync
needs no interpreter state: ``fdatasync`` of a file flushes that file, whichever descriptor
or process names it.

Each round, the syncer lists the folder's open segments (``.open``: those the server writes or
will write) and syncs each one whose size or modification time changed since it last synced it,
and the folder itself when a name appeared, so a new segment's name is durable with its records.
A sealed segment (``.log``) is not its business: sealing syncs it, then renames it and syncs the
folder. It keeps a descriptor per open segment and lets it go once the segment is sealed, so a
spool whose sealed segments pile up (a database down for hours) costs it nothing.

A failed sync is final: the kernel may have dropped what it could not write, and a retry would
report success for data that is gone. The syncer then writes the errno into the folder's state
file (``SYNC``), which the server reads before each write it keeps, and syncs nothing more.

The state file, mapped by both processes: the errno of a failed sync (int32, 0 while none
failed) at offset 0, which ``/readyz`` reports as the log no longer keeping; then the rounds
completed and the syncs made (uint64 each), which tests read. A closed control pipe means stop:
one last round, then exit, so a server killed with ``kill -9`` still has what it wrote synced
by its syncer.
"""

from __future__ import annotations

import contextlib
import errno
import mmap
import os
import select
import signal
import struct
import sys
from pathlib import Path

from medops.atomic import fsync_dir
from medops.serving.spool_segments import OPEN

STATE = "SYNC"
STATE_LAYOUT = struct.Struct("=iiQQ")  # errno, padding, rounds, syncs; in this machine's byte order (both sides map it)


class Synced:
    """What the syncer knows of a folder: a descriptor, size and time per segment synced, and the names."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.files: dict[int, tuple[int, int, int]] = {}  # inode: descriptor, size and mtime when synced
        self.names: frozenset[str] = frozenset()
        self.syncs = 0

    def round(self) -> None:
        """Sync every segment changed since the last round, and the folder when a name appeared (OSError
        from a sync that failed)."""
        present: set[int] = set()
        names = set()
        try:
            with os.scandir(self.folder) as entries:
                listed = [e for e in entries if e.name.endswith(OPEN)]
        except FileNotFoundError:  # recovered and removed after its server died: nothing left to sync
            listed = []
        for entry in listed:
            try:
                stat = entry.stat()
            except FileNotFoundError:
                continue  # drained meanwhile
            names.add(entry.name)
            present.add(stat.st_ino)
            known = self.files.get(stat.st_ino)
            if known is not None and known[1:] == (stat.st_size, stat.st_mtime_ns):
                continue
            fd = self._descriptor(entry.path, known)
            if fd is None:
                continue
            os.fdatasync(fd)
            self.syncs += 1
            self.files[stat.st_ino] = (fd, stat.st_size, stat.st_mtime_ns)
        for inode in set(self.files) - present:  # sealed (synced as it was) or drained: nothing more to sync
            os.close(self.files.pop(inode)[0])
        if names - self.names:  # a segment made: its name survives a crash too
            try:
                fsync_dir(self.folder)
            except FileNotFoundError:
                return
            self.syncs += 1
        self.names = frozenset(names)

    def _descriptor(self, path: str, known: tuple[int, int, int] | None) -> int | None:
        if known is not None:
            if os.fstat(known[0]).st_nlink:
                return known[0]
            os.close(known[0])  # a drained segment whose inode number a new one took
        try:
            return os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return None

    def close(self) -> None:
        for fd, _, _ in self.files.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        self.files.clear()


def create_state(folder: Path) -> Path:
    path = folder / STATE
    path.write_bytes(bytes(STATE_LAYOUT.size))
    return path


def read_state(state: mmap.mmap) -> tuple[int, int, int]:
    """The errno of a failed sync (0: none), the rounds completed and the syncs made."""
    failed, _, rounds, syncs = STATE_LAYOUT.unpack_from(state)
    return failed, rounds, syncs


def serve(folder: Path, seconds: float, control: int) -> None:
    """Sync the folder's segments every ``seconds`` until ``control`` closes, then once more."""
    try:
        with open(folder / STATE, "r+b") as handle:
            state = mmap.mmap(handle.fileno(), STATE_LAYOUT.size)
    except FileNotFoundError:  # its server died at once, and its folder was recovered: nothing to sync
        return
    synced = Synced(folder)
    # counted on from the syncer before (tests read them), and one started again after a failed
    # sync syncs nothing either
    failed, rounds, synced.syncs = read_state(state)
    try:
        while True:
            readable, _, _ = select.select([control], [], [], seconds)
            stopping = bool(readable) and not os.read(control, 4096)
            if not failed:
                try:
                    synced.round()
                except OSError as exc:
                    failed = exc.errno or errno.EIO
                    print(
                        f"medops spool syncer: a sync failed ({exc.strerror}); nothing more is synced", file=sys.stderr
                    )
            rounds += 1
            STATE_LAYOUT.pack_into(state, 0, failed, 0, rounds, synced.syncs)
            if stopping:
                return
    finally:
        synced.close()
        state.close()


def main(argv: list[str]) -> int:
    # Ctrl-C, and a service manager's SIGTERM, reach the whole process group: the server shuts down and
    # closes the pipe, which ends this after one last round
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    folder, seconds, control = argv
    serve(Path(folder), float(seconds), int(control))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
