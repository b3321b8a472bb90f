"""The spool with group commit on an interval: each answer is in the operating system's file cache
before it is sent, and on disk within ``sync_seconds``.

Why beside ``Spool`` (each answer on disk before it is sent): a request then never waits for the
disk, nor for another process to say the disk has its record. A write into the file cache
survives the death of the process that made it (kill -9, an out-of-memory kill, a crash), since
the kernel holds the data; what it does not survive is the machine losing power or its kernel
before the next sync, which may lose the answers of the last interval (10 ms by default). The
same holds for an answer that was still on the wire. Teams whose audit must survive a power
loss choose ``Spool`` (``medops serve --log-sync answer``), at a price measured in
docs/benchmarks.md.

The write happens on the event loop, synchronously, before the request's response is built:
a few microseconds. A syncer thread syncs the open segment's data (fdatasync), the folder when a
segment was created, and seals retired segments (fsync, rename) for the drain, which is the
same as ``Spool``'s. Recovery is too: an open segment a dead process left holds complete lines,
and a torn last line (a write cut short) is skipped.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

from medops.serving.spool import Sink, Spool, SpoolUnavailable, encode
from medops.serving.spool_segments import Segments

log = logging.getLogger("medops.spool")
SYNC_SECONDS = 0.01
MAX_LAG_SECONDS = 2.0  # no sync finished for this long (a disk that hangs): answers are refused, not piled up


class IntervalSpool(Spool):
    """A spool whose records are synced every ``sync_seconds`` (see the module docstring)."""

    def __init__(self, root: Path, sink: Sink, *, sync_seconds: float = SYNC_SECONDS, **kwargs: Any) -> None:
        super().__init__(root, sink, **kwargs)
        self.sync_seconds = sync_seconds
        self._segments: Segments | None = None
        self._syncer: threading.Thread | None = None
        self._syncing = threading.Event()  # set: the syncer stops
        self._sync_failed = False  # the last sync failed: refuse appends until one succeeds
        self._synced_at = time.monotonic()  # when the last sync finished

    def _start_writer(self) -> None:
        self._segments = Segments(
            self.folder, seal_records=self.seal_records, seal_seconds=self.seal_seconds, synchronous=False
        )
        self._syncing.clear()
        self._synced_at = time.monotonic()
        self._syncer = threading.Thread(target=self._sync_loop, name="medops-spool-syncer", daemon=True)
        self._syncer.start()

    def _stop_writer(self) -> None:
        """Stop the syncer, then seal (and sync) what was written."""
        self._syncing.set()
        if self._syncer is not None:
            self._syncer.join()
            self._syncer = None
        if self._segments is not None:
            try:
                self._segments.seal()
            except OSError as exc:  # left open: the next start's recovery seals and drains it
                log.error("prediction log: sealing failed at close (%s)", exc.strerror)

    def _sync_loop(self) -> None:
        assert self._segments is not None
        while not self._syncing.wait(self.sync_seconds):
            try:
                self._segments.sync()
                self._sync_failed = False
                self._synced_at = time.monotonic()
            except OSError as exc:
                if not self._sync_failed:
                    log.error("prediction log: sync failed (%s); answers are refused until it succeeds", exc.strerror)
                self._sync_failed = True

    async def append(self, records: list[dict[str, Any]] | bytes) -> None:
        """Return once ``records`` are in the file cache (SpoolUnavailable if they could not be)."""
        self._write(records)

    def append_sync(self, records: list[dict[str, Any]]) -> None:
        self._write(records)

    def _write(self, records: list[dict[str, Any]] | bytes) -> None:
        if not self.running or self._segments is None:
            raise SpoolUnavailable("the prediction log is not running")
        if self._sync_failed:  # the disk refuses: an answer now might never reach it
            raise SpoolUnavailable("the prediction log cannot reach its disk")
        if time.monotonic() - self._synced_at > MAX_LAG_SECONDS:  # a sync hangs: so would the cache, soon
            raise SpoolUnavailable("the prediction log's disk has not finished a sync in time")
        data = records if isinstance(records, bytes) else encode(records)
        try:
            self._segments.write(data)
        except OSError as exc:
            log.error("prediction log: write failed (%s)", exc.strerror)
            raise SpoolUnavailable("the prediction log could not keep the records") from exc
        self.stats.written += data.count(b"\n")
        self.stats.groups += 1

    def flush(self) -> None:
        """Seal the open segment (synced) and drain everything now (shutdown, tests)."""
        if self._segments is not None:
            self._segments.seal()
        with self._draining:
            self._drain_sealed()
