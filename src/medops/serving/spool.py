"""A durable local spool: records are on disk, written in groups, before anyone is told they are kept,
then drained in the background to where they belong.

Why a spool: a prediction must be logged before its response leaves the server, but a
database round trip per request would cost more than the prediction itself. A request hands
its records to the spool and waits. At the end of each turn of the event loop, what was handed
over in it goes to the committer thread, which writes everything waiting in one synchronous
write (group commit: the segment is opened with O_DSYNC, so the write returns once the data
is on disk) and wakes the waiting requests. The event loop goes on serving other requests
while the disk works: a synchronous write takes 0.2 to 0.7 ms here, as long as scoring a few
requests. A drainer thread moves sealed segments into the sink (the metadata store) and deletes
a segment only after the sink committed it, so a crash at any point loses nothing that was
acknowledged: at worst a segment is drained twice, and the sink ignores records it already holds.

On disk, one folder per running spool, locked with ``flock`` for as long as the process
lives. A segment is written as ``NNNNNNNN.open`` and renamed ``NNNNNNNN.log`` when sealed
(by size, or by age, checked by the drainer). Each line is one JSON record. After a kill, the
folder's lock is free: ``recover`` (called when a server starts and before the log is read)
drains every segment of every unlocked folder. A torn last line is a write that was never
completed, hence never acknowledged, and is skipped.

Under load, a segment starts as a file of zeros written ahead by the drainer (``spare``):
a group then overwrites blocks the file already has, so the synchronous write flushes only
the data, not the file's size and block map, which cuts its cost to a third here (0.20
against 0.56 ms, measured). Records hold no NUL byte (JSON escapes it) and acknowledged
groups are contiguous from the start, so a segment's records end at its first NUL; sealing
cuts the zeros off. A quiet server, whose segments are sealed by age rather than size,
appends to plain files and writes no zeros it would not use.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

from medops.atomic import fsync_dir
from medops.errors import StoreError

log = logging.getLogger("medops.spool")

Sink = Callable[[list[dict[str, Any]]], None]
LOCK = "LOCK"
OPEN, SEALED = ".open", ".log"
SPARE = "spare"  # the next segment, zeros written ahead (see the module docstring)
SPARE_BYTES = 4 << 20  # about 6,000 records of a dozen features: more than seal_records fill


class SpoolUnavailable(StoreError):
    """The spool could not keep a record: the caller must not act as if it had been logged."""


@dataclass
class SpoolStats:
    written: int = 0  # records on disk
    groups: int = 0  # synchronous writes
    drained: int = 0  # records handed to the sink
    drain_failures: int = 0


class Spool:
    """One process's spool folder under ``root`` (see the module docstring)."""

    def __init__(
        self,
        root: Path,
        sink: Sink,
        *,
        seal_records: int = 5_000,
        seal_seconds: float = 1.0,
        drain_seconds: float = 0.25,
    ) -> None:
        self.root = root
        self.sink = sink
        self.seal_records = seal_records
        self.seal_seconds = seal_seconds
        self.drain_seconds = drain_seconds
        self.folder = root / uuid.uuid4().hex
        self.stats = SpoolStats()
        self._lock_file: IO[bytes] | None = None
        self._segment: int | None = None  # the open segment's file descriptor
        self._segment_path: Path | None = None
        self._segment_records = 0
        self._segment_opened = 0.0
        self._offset = 0  # bytes of records in the open segment
        self._capacity: int | None = None  # a spare's size: full past it; None for an appended file
        self._spare_ready = False  # the drainer wrote the spare and synced it
        self._want_spare = False  # the last segment filled up: the next one will too
        self._sequence = 0
        self._writing = threading.Lock()  # the open segment: written by the loop (or append_sync), sealed by either
        self._draining = threading.Lock()  # the drainer thread and a flush never drain the same file
        self._pending: list[Waiting] = []  # handed over in this turn of the loop
        self._queue: list[Waiting] = []  # handed to the committer, not yet written
        self._queued = threading.Condition()
        self._stop = threading.Event()
        self._drain_now = threading.Event()
        self._drainer: threading.Thread | None = None
        self._committer: threading.Thread | None = None
        # a process that drains the sealed segments instead of the drainer thread (which then only seals
        # by age and writes spares); None: the thread drains (medops.serving.drain_process says why not to).
        # Started once a segment holds offload_records: a quiet server is not worth a process.
        self.offload: Callable[[Path], Offload] | None = None
        self.offload_records = 500
        self._offloaded: Offload | None = None
        self._busy = False

    # --- life ---------------------------------------------------------------------------

    def start(self) -> None:
        """Drain what dead processes left, then take this process's folder and start the drainer."""
        recover(self.root, self.sink)
        self.folder.mkdir(parents=True, mode=0o700)
        self._lock_file = _hold(self.folder)
        self._stop.clear()
        self._drainer = threading.Thread(target=self._drain_loop, name="medops-spool-drainer", daemon=True)
        self._drainer.start()
        self._committer = threading.Thread(target=self._commit_loop, name="medops-spool-committer", daemon=True)
        self._committer.start()

    @property
    def running(self) -> bool:
        return self._drainer is not None and not self._stop.is_set()  # closing: the committer takes no more

    def close(self, *, drain: bool = True) -> None:
        """Seal, drain (unless told not to), and give the folder up."""
        if self._drainer is None:
            return
        self._stop.set()
        with self._queued:
            self._queued.notify()
        if self._committer is not None:
            self._committer.join()  # after writing what was handed to it
            self._committer = None
        self._drain_now.set()
        self._drainer.join()
        self._drainer = None
        with self._writing:
            self._seal()
        if self._offloaded is not None:  # its last drain first; anything it leaves is drained below
            self._offloaded.stop()
            self._offloaded = None
        if drain:
            with contextlib.suppress(Exception), self._draining:  # a sink that is down leaves them for recovery
                self._drain_sealed()
        leftover = any(self.folder.glob(f"*{SEALED}"))
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None
        if not leftover:
            shutil.rmtree(self.folder, ignore_errors=True)

    # --- appending -----------------------------------------------------------------------

    async def append(self, records: list[dict[str, Any]]) -> None:
        """Return once ``records`` are on disk (SpoolUnavailable if they could not be).

        Handed to the committer at the end of this turn of the event loop, with whatever else was
        handed over in it, and written with whatever else is waiting by then.
        """
        if not self.running:
            raise SpoolUnavailable("the prediction log is not running")
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        if not self._pending:
            loop.call_soon(self._hand_over)
        self._pending.append((_encode(records), done))
        await done

    def _hand_over(self) -> None:
        group, self._pending = self._pending, []
        with self._queued:
            self._queue.extend(group)
            self._queued.notify()

    def _commit_loop(self) -> None:
        while True:
            with self._queued:
                while not self._queue and not self._stop.is_set():
                    self._queued.wait()
                batch, self._queue = self._queue, []
            if not batch:
                return  # stopped, and nothing is left to write
            error: OSError | None = None
            try:
                self._write(b"".join(data for data, _ in batch))
            except OSError as exc:
                error = exc
            for loop, group in _by_loop(batch).items():
                with contextlib.suppress(RuntimeError):  # a loop closed meanwhile: nobody waits any more
                    loop.call_soon_threadsafe(_settle, group, error)

    def append_sync(self, records: list[dict[str, Any]]) -> None:
        """``append`` for a caller outside an event loop."""
        if not self.running:
            raise SpoolUnavailable("the prediction log is not running")
        try:
            self._write(_encode(records))
        except OSError as exc:
            raise SpoolUnavailable("the prediction log could not keep the records") from exc

    def _write(self, data: bytes) -> None:
        if not data:
            return
        lines = data.count(b"\n")
        with self._writing:
            try:
                if self._capacity is not None and self._offset and self._offset + len(data) > self._capacity:
                    self._seal(full=True)
                segment = self._open_segment()
                written = 0
                while written < len(data):  # O_DSYNC: each write returns once its data is on disk
                    written += os.pwrite(segment, data[written:], self._offset + written)
            except OSError as exc:
                log.error("prediction log: write failed (%s)", exc.strerror or type(exc).__name__)
                self._abandon_segment()
                raise
            self._offset += len(data)
            self._segment_records += lines
            self.stats.written += lines
            self.stats.groups += 1
            if self._segment_records >= self.seal_records:
                self._seal(full=True)

    def flush(self) -> None:
        """Seal the open segment and drain everything now (shutdown, tests)."""
        with self._writing:
            self._seal()
        with self._draining:
            self._drain_sealed()

    def _open_segment(self) -> int:
        if self._segment is None:
            self._sequence += 1
            path = self.folder / f"{self._sequence:08d}{OPEN}"
            if self._spare_ready:  # renamed, and the name synced, before a record goes in
                (self.folder / SPARE).rename(path)
                self._spare_ready = False
                self._segment = os.open(path, os.O_WRONLY | _DSYNC)
                self._capacity = SPARE_BYTES
            else:
                self._segment = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _DSYNC, 0o600)
                self._capacity = None
            fsync_dir(self.folder)
            self._segment_path = path
            self._offset = 0
            self._segment_records = 0
            self._segment_opened = time.monotonic()
        return self._segment

    def _seal_if_aged(self) -> None:
        with self._writing:
            if self._segment is not None and time.monotonic() - self._segment_opened >= self.seal_seconds:
                self._seal(full=False)

    def _seal(self, *, full: bool = False) -> None:
        """Close the open segment as it stands (a spare's unused zeros cut off) and hand it to the drainer;
        ``full``: it was sealed for its size, so the next segment is worth a spare."""
        if self._segment is None or self._segment_path is None:
            return
        segment, self._segment = self._segment, None
        try:
            if self._capacity is not None:
                os.ftruncate(segment, self._offset)
                os.fsync(segment)
        finally:
            os.close(segment)
        self._segment_path.rename(self._segment_path.with_suffix(SEALED))
        fsync_dir(self.folder)
        self._want_spare = full
        if self._segment_records >= self.offload_records:
            self._busy = True  # enough traffic to be worth a drain process (see offload)
        self._drain_now.set()

    def _abandon_segment(self) -> None:
        # a failed write may have left part of a group: seal what is there, the torn tail is skipped on read
        with contextlib.suppress(OSError):
            self._seal()
        self._segment = None

    def _prepare_spare(self) -> None:
        """Write the next segment's zeros ahead, off the event loop (the drainer's job, under load only)."""
        with self._writing:
            if self._spare_ready or not self._want_spare:
                return
        scratch = self.folder / f"{SPARE}.tmp"
        fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            zeros = bytes(1 << 20)
            for offset in range(0, SPARE_BYTES, len(zeros)):
                os.pwrite(fd, zeros, offset)
            os.fsync(fd)
        finally:
            os.close(fd)
        with self._writing:
            scratch.rename(self.folder / SPARE)
            fsync_dir(self.folder)
            self._spare_ready = True

    # --- draining ------------------------------------------------------------------------

    def _drain_loop(self) -> None:
        while not self._stop.is_set():
            self._drain_now.wait(self.drain_seconds)
            self._drain_now.clear()
            try:
                self._seal_if_aged()
                if self._offloaded is not None and not self._offloaded.alive:
                    log.warning("prediction log: the drain process ended; the server drains from now on")
                    self.offload = None
                    self._offloaded = None
                if self._busy and self.offload is not None and self._offloaded is None:
                    self._offloaded = self._start_offload()
                if self._offloaded is None:
                    with self._draining:
                        self._drain_sealed()
                self._prepare_spare()
            except Exception as exc:  # the sink is down: keep the segments, try again next round
                self.stats.drain_failures += 1
                log.warning("prediction log: drain failed, will retry (%s)", type(exc).__name__)

    def _start_offload(self) -> Offload | None:
        assert self.offload is not None
        try:
            return self.offload(self.folder)
        except Exception as exc:  # no process to be had: the thread drains, as on a quiet server
            log.warning("prediction log: no drain process (%s); the server drains", type(exc).__name__)
            self.offload = None
            return None

    def _drain_sealed(self) -> None:
        self.stats.drained += drain_folder(self.folder, self.sink)

    @property
    def pending(self) -> int:
        """Sealed segments not yet drained."""
        return sum(1 for _ in self.folder.glob(f"*{SEALED}"))


Waiting = tuple[bytes, "asyncio.Future[None]"]


class Offload(Protocol):
    """What drains a spool's folder from elsewhere (medops.serving.drain_process.DrainProcess)."""

    @property
    def alive(self) -> bool: ...

    def stop(self) -> None: ...


_DSYNC = getattr(os, "O_DSYNC", 0) or os.O_SYNC  # a write returns once its data (and the size) is on disk


def _by_loop(batch: list[Waiting]) -> dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]]:
    out: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
    for _, done in batch:
        out.setdefault(done.get_loop(), []).append(done)
    return out


def _settle(group: list[asyncio.Future[None]], error: OSError | None) -> None:
    """On the waiters' event loop: each append returns, or raises SpoolUnavailable."""
    for done in group:
        if done.done():  # its request was cancelled (a timeout): nothing to tell
            continue
        if error is None:
            done.set_result(None)
        else:
            done.set_exception(SpoolUnavailable("the prediction log could not keep the records"))


def _encode(records: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(r, separators=(",", ":"), allow_nan=False).encode() + b"\n" for r in records)


def drain_folder(folder: Path, sink: Sink) -> int:
    """Drain a live spool's sealed segments, oldest first; returns the records handed to the sink."""
    drained = 0
    for path in sorted(folder.glob(f"*{SEALED}")):
        try:
            drained += drain_file(path, sink)
        except FileNotFoundError:
            continue  # drained meanwhile by another drainer (a shutdown's last drain meeting the drain process)
    return drained


def drain_file(path: Path, sink: Sink) -> int:
    """Hand a segment's records to the sink, then delete it; returns how many it held."""
    records = read_segment(path)
    if records:
        sink(records)
    path.unlink()
    return len(records)


def read_segment(path: Path) -> list[dict[str, Any]]:
    # a segment begun as a spare ends at its first NUL: what follows was never acknowledged
    lines = path.read_bytes().split(b"\0", 1)[0].split(b"\n")
    records = []
    last = len(lines) - 1
    for number, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except ValueError:
            if number == last:  # a torn tail: its write never completed, so it was never acknowledged
                continue
            log.error("prediction log: %s line %d is unreadable and was skipped", path.name, number + 1)
    return records


def recover(root: Path, sink: Sink) -> int:
    """Drain the folders of spools whose process is gone (their lock is free); returns the records drained."""
    if not root.is_dir():
        return 0
    drained = 0
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        try:
            held = _try_hold(folder)
        except FileNotFoundError:
            continue  # removed by its owner meanwhile
        if held is None:
            continue  # a live spool
        try:
            segments = [*folder.glob(f"*{OPEN}"), *folder.glob(f"*{SEALED}")]
            for path in sorted(segments, key=lambda p: p.stem):  # in the order they were written
                try:
                    drained += drain_file(path, sink)
                except FileNotFoundError:
                    continue  # the dead server's drain process, finishing its last round
        finally:
            held.close()
        shutil.rmtree(folder, ignore_errors=True)
    return drained


def _hold(folder: Path) -> IO[bytes]:
    held = _try_hold(folder)
    if held is None:
        raise SpoolUnavailable(f"prediction spool {folder.name} is held by another process")
    return held


def _try_hold(folder: Path) -> IO[bytes] | None:
    handle = open(folder / LOCK, "ab")  # noqa: SIM115 - the lock lives as long as the handle
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle
