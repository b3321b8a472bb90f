"""A spool folder's segment files: the open one written group by group, retired by size or age and
then sealed, and the next one made ahead (see medops.serving.spool for the format and why).

Two ways to write, one per sync mode of the spool:
- ``dsync``: each group through O_DSYNC, so a write returns once its data is on disk, and the next
  segment written ahead as zeros. Used by the spool's writer process
  (medops.serving.spool_writer): its loop writes groups, its helper thread seals retired segments
  and writes the spare, so neither ever holds a group up (sealing costs two fsyncs and a rename,
  a spare 4 MiB).
- otherwise: each request's records into the file cache (a write returns once the kernel holds it, which a
  killed process can't undo); the spool's syncer process (medops.serving.spool_syncer) makes
  the segments, and their names, durable. The next segment is made ahead empty: making a file
  waits on the file system's journal (0.7 to 1 ms here), which the event loop must not.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from pathlib import Path

from medops.atomic import fsync_dir

OPEN, SEALED = ".open", ".log"
SPARE = "spare.tmp"  # the next segment while its zeros are written; then renamed to its number
SPARE_BYTES = 4 << 20  # about 6,000 records of a dozen features: more than seal_records fill
_DSYNC = getattr(os, "O_DSYNC", 0) or os.O_SYNC  # a write returns once its data (and the size) is on disk


class Segments:
    """The open segment of one spool folder, those retired and not yet sealed, and the spare."""

    def __init__(
        self, folder: Path, *, seal_records: int = 5_000, seal_seconds: float = 1.0, dsync: bool = True
    ) -> None:
        self.folder = folder
        self.dsync = dsync
        self._flags = os.O_WRONLY | (_DSYNC if dsync else 0)
        self.seal_records = seal_records
        self.seal_seconds = seal_seconds
        self._lock = threading.Lock()  # everything below
        self._sealing = threading.Lock()  # one sealer at a time (the helper thread, or a flush)
        self._segment: int | None = None  # the open segment's file descriptor
        self._path: Path | None = None
        self._records = 0
        self._opened = 0.0
        self._offset = 0  # bytes of records in the open segment
        self._capacity: int | None = None  # a spare's size: full past it; None for an appended file
        self._retired: list[tuple[int, Path, int, bool]] = []  # fd, path, bytes used, began as zeros
        self._spare_ready = False  # the next number's segment exists (as synced zeros when dsync)
        self._want_spare = not dsync  # the last segment was busy: the next one will be too
        self.retired = 0  # segments retired so far: whoever seals them can tell there is work
        numbers = [int(p.name.split(".")[0]) for p in folder.glob("*") if p.name.split(".")[0].isdigit()]
        self._sequence = max(numbers, default=0)  # a writer started again continues the numbering

    def seal_leftovers(self) -> None:
        """Seal open segments a writer that died left (cut at their first NUL, as a reader would)."""
        for path in sorted(self.folder.glob(f"*{OPEN}")):
            data = path.read_bytes()
            end = data.find(b"\0")
            if end >= 0:
                with open(path, "r+b") as handle:
                    handle.truncate(end)
                    os.fsync(handle.fileno())
            path.rename(path.with_suffix(SEALED))
        with contextlib.suppress(FileNotFoundError):
            (self.folder / SPARE).unlink()
        fsync_dir(self.folder)

    def write(self, data: bytes) -> int:
        """Append whole lines; returns, with how many, once they are on disk (dsync) or in the file cache
        (OSError if they could not be)."""
        if not data:
            return 0
        with self._lock:
            try:
                if self._capacity is not None and self._offset and self._offset + len(data) > self._capacity:
                    self._retire(full=True)
                segment = self._open()
                # O_DSYNC: returns once the data is on disk
                written = os.pwrite(segment, data, self._offset)
                while written < len(data):  # a short write: the rest
                    written += os.pwrite(segment, memoryview(data)[written:], self._offset + written)
            except OSError:  # part of a group may be there: a torn tail, skipped on read, in a segment retired now
                self._retire(full=False)
                raise
            self._offset += len(data)
            lines = data.count(b"\n")
            self._records += lines
            if self._records >= self.seal_records:
                self._retire(full=True)
        return lines

    def seal(self) -> None:
        """Seal the open segment as it stands, and any retired one, now: the drainer may take them all."""
        with self._lock:
            self._retire(full=False)
        self.seal_retired()

    def seal_if_aged(self) -> None:
        with self._lock:
            if self._segment is not None and time.monotonic() - self._opened >= self.seal_seconds:
                self._retire(full=False)

    def seconds_to_age(self) -> float | None:
        """Until the open segment is due to be sealed for its age; None without one."""
        with self._lock:
            if self._segment is None:
                return None
            return max(0.0, self.seal_seconds - (time.monotonic() - self._opened))

    @property
    def has_work(self) -> bool:
        """Retired segments to seal, or a spare to write: the helper thread's."""
        with self._lock:
            return bool(self._retired) or (self._want_spare and not self._spare_ready)

    def seal_retired(self) -> None:
        """Seal each retired segment: a spare's unused zeros cut off, renamed for the drainer."""
        with self._sealing:
            self._seal_retired()

    def _seal_retired(self) -> None:
        while True:
            with self._lock:
                if not self._retired:
                    return
                # taken off the list first: a descriptor is closed once, whatever fails below (a segment
                # left .open is drained by the recovery after this writer, its zeros cut at the first NUL)
                segment, path, used, zeros = self._retired.pop(0)
            try:
                if zeros:
                    os.ftruncate(segment, used)
                if zeros or not self.dsync:  # written to the file cache: on disk before the drainer takes it
                    os.fsync(segment)
            finally:
                os.close(segment)
            path.rename(path.with_suffix(SEALED))
            fsync_dir(self.folder)

    def prepare_spare(self) -> None:
        """Make the next segment ahead, under its number, so that opening it costs no sync: its zeros
        written (dsync), or an empty file."""
        with self._lock:
            if self._spare_ready or not self._want_spare:
                return
        scratch = self.folder / SPARE
        fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            if self.dsync:
                zeros = bytes(1 << 20)
                for offset in range(0, SPARE_BYTES, len(zeros)):
                    os.pwrite(fd, zeros, offset)
                os.fsync(fd)
        finally:
            os.close(fd)
        with self._lock:  # the writer has not opened that number: it opens numbers only under this lock
            scratch.rename(self._next_path())  # a reader after a crash finds it as an empty segment, and drops it
            if self.dsync:  # its records are acknowledged as on disk: so is its name, first
                fsync_dir(self.folder)
            # else the syncer makes the name durable in its next round, not under the lock every group's write
            # takes (a directory's sync waits on the journal)
            self._spare_ready = True

    def discard_spare(self) -> None:
        """At the writer's end: an unused spare holds no record."""
        with self._lock:
            if self._spare_ready:
                self._next_path().unlink(missing_ok=True)
                self._spare_ready = False
        with contextlib.suppress(FileNotFoundError):
            (self.folder / SPARE).unlink()

    def _next_path(self) -> Path:
        return self.folder / f"{self._sequence + 1:08d}{OPEN}"

    def _open(self) -> int:
        if self._segment is None:
            path = self._next_path()
            if self._spare_ready:  # made ahead: its name synced already (dsync) or by the syncer's next round
                self._segment = os.open(path, self._flags)
                self._capacity = SPARE_BYTES if self.dsync else None
                self._spare_ready = False
            else:
                self._segment = os.open(path, self._flags | os.O_CREAT | os.O_EXCL, 0o600)
                self._capacity = None
                if self.dsync:
                    fsync_dir(self.folder)  # the name is durable before a record in it is acknowledged
                # else made durable by the syncer's next round, with the records
            self._sequence += 1
            self._path = path
            self._offset = 0
            self._records = 0
            self._opened = time.monotonic()
        return self._segment

    def _retire(self, *, full: bool) -> None:
        """Close the open segment to writes; ``full`` or busy: the next one is worth a spare."""
        if self._segment is None or self._path is None:
            return
        self._retired.append((self._segment, self._path, self._offset, self._capacity is not None))
        self.retired += 1
        self._want_spare = full or self._records >= self.seal_records // 10 or not self.dsync
        self._segment = None
