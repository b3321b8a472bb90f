"""A durable local spool: each request's records are kept before its answer is sent, then drained
in the background to where they belong.

Why a spool: a prediction must be logged before its response leaves the server, but a database
round trip per request would cost more than the prediction itself. A request hands its records
to the spool before its answer is sent; when they count as kept depends on the sync mode (the
setting ``prediction_log_sync``):

- ``background`` (the default): the server writes each request's records into the open segment
  itself, at once, so they are in the operating system's file cache when the answer goes out. A
  killed server (kill -9, an out-of-memory kill, a crash), or a killed container, loses nothing
  answered: the kernel holds the data, whoever dies. The syncer, a process of its own
  (medops.serving.spool_syncer), makes it durable (``fdatasync``) within about
  ``sync_seconds`` (50 ms) of its write, so only a power loss or a kernel crash can lose
  answers, those of the last 50 ms or so. A write the file system refuses (a full disk) fails
  the request (503) before its answer is sent; a sync that fails stops the log from keeping
  anything more, since the kernel may have dropped what it could not write. The drainer
  thread seals segments by age and makes the next one ahead; a syncer that dies is started
  again by it.
- ``before_answer``: a request waits until the end of the current turn of the event loop, when
  everything handed over in that turn goes down as one group: a pipe to the writer process
  (medops.serving.spool_writer), which writes everything waiting in one synchronous write
  (the segment is opened with O_DSYNC, so the write returns once the data is on disk) and
  acknowledges on another pipe, which the event loop watches as it watches its sockets; then
  the waiting requests go on. A power loss loses nothing answered either, but each request
  waits for the disk (0.2 to 0.7 ms here): a quarter to a third of a server's requests per
  second at 8 concurrent requests on 2 cores (docs/benchmarks.md).

A drainer thread (or, under load, a drain process) moves sealed segments into the sink (the
metadata store) and deletes a segment only after the sink committed it, so a crash at any point
loses nothing that was kept: at worst a segment is drained twice, and the sink ignores records
it already holds.

On disk, one folder per running spool, locked with ``flock`` for as long as the process lives.
A segment is written as ``NNNNNNNN.open`` and renamed ``NNNNNNNN.log`` when sealed (by size, or
by age), after a sync. Each line is one JSON record. After a kill, the folder's lock is free (in
``before_answer`` the writer holds it too, so not before it is gone): ``recover`` (called when a
server starts and before the log is read) drains every segment of every unlocked folder. A torn
last line is a write that was never completed, hence never answered, and is skipped.

In ``before_answer``, under load, a segment starts as a file of zeros written ahead by the
writer (``spare``): a group then overwrites blocks the file already has, so the synchronous
write flushes only the data, not the file's size and block map, which cuts its cost to a third
here (0.20 against 0.56 ms, measured). Records hold no NUL byte (JSON escapes it) and kept
groups are contiguous from the start, so a segment's records end at its first NUL; sealing cuts
the zeros off. A quiet server, whose segments are sealed by age rather than size, appends to
plain files and writes no zeros it would not use. In ``background``, the next segment is made
ahead as an empty file, since making a file waits on the file system's journal.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import errno
import fcntl
import json
import logging
import mmap
import os
import select
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

from medops.config import PREDICTION_LOG_SYNC
from medops.errors import StoreError
from medops.serving.spool_segments import OPEN, SEALED, Segments
from medops.serving.spool_syncer import STATE_LAYOUT, create_state
from medops.serving.spool_writer import ACK, SEAL, WRITE, frame

log = logging.getLogger("medops.spool")

Sink = Callable[[list[bytes]], None]  # a segment's whole lines, each a JSON record without its newline
LOCK = "LOCK"
# When a request's records are kept, so that its answer may be sent (the setting prediction_log_sync):
BACKGROUND, BEFORE_ANSWER = SYNC_MODES = PREDICTION_LOG_SYNC
SYNC_SECONDS = 0.05  # BACKGROUND: what a power loss may lose at most, beyond the sync under way
SYNCER = [sys.executable, "-m", "medops.serving.spool_syncer"]  # BACKGROUND: its command (tests give a failing one)


class SpoolUnavailable(StoreError):
    """The spool could not keep a record: the caller must not act as if it had been logged."""


@dataclass
class SpoolStats:
    written: int = 0  # records on disk
    groups: int = 0  # writes kept: one per turn of the event loop (before_answer), per append (background)
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
        writer: list[str] | None = None,
        syncer: list[str] | None = None,
        sync: str = BACKGROUND,
        sync_seconds: float = SYNC_SECONDS,
    ) -> None:
        if sync not in SYNC_MODES:
            raise ValueError(f"sync must be one of {', '.join(SYNC_MODES)}, not {sync!r}")
        self.root = root
        self.sync = sync
        self.sync_seconds = sync_seconds  # BACKGROUND: at most this long between a write and its sync
        # the writer's command, before its arguments (tests give one that fails on purpose)
        self.writer = writer or [sys.executable, "-m", "medops.serving.spool_writer"]
        self.sink = sink
        self.seal_records = seal_records
        self.seal_seconds = seal_seconds
        self.drain_seconds = drain_seconds
        self.folder = root / uuid.uuid4().hex
        self.stats = SpoolStats()
        self._lock_file: IO[bytes] | None = None
        self._writer: subprocess.Popen[bytes] | None = None  # medops.serving.spool_writer
        self._to_writer: int | None = None  # the frames' pipe (non-blocking)
        self._from_writer: int | None = None  # the acknowledgements' pipe (non-blocking)
        self._started_writer = 0.0
        self._outbox = bytearray()  # frames the pipe did not take yet, sent first
        self._resending: asyncio.AbstractEventLoop | None = None  # the loop waiting to send the rest
        self._sending = threading.Lock()  # frames go out whole and in order; in_flight follows that order
        self._acking = threading.Lock()  # one reader of acknowledgements at a time
        self._in_flight: collections.deque[_Frame] = collections.deque()
        self._acks = bytearray()
        self._loop: asyncio.AbstractEventLoop | None = None  # watches the acknowledgements for append
        self._watched: int | None = None  # the descriptor it watches
        self._lines: list[bytes] = []  # handed over in this turn of the loop, and who waits for them
        self._waiting: list[asyncio.Future[None]] = []
        self._draining = threading.Lock()  # the drainer thread and a flush never drain the same file
        self._stop = threading.Event()
        self._drain_now = threading.Event()
        self._drainer: threading.Thread | None = None
        # a process that drains the sealed segments instead of the drainer thread; None: the thread drains
        # (medops.serving.drain_process says why not to). Started once a sealed segment holds offload_bytes:
        # a quiet server is not worth a process. Bytes, not lines: a line holds a whole request, and a
        # request of 100 rows costs the drain a hundred times one of a single row.
        self.offload: Callable[[Path], Offload] | None = None
        self.offload_bytes = 512 * 1024  # about 600 one-row requests, or 8 of 100 rows
        self._offloaded: Offload | None = None
        self._busy = False
        # BACKGROUND: this process writes the segments, and a process of its own makes them durable
        self.syncer = syncer or list(SYNCER)  # before its arguments
        self._segments: Segments | None = None
        self._syncer: subprocess.Popen[bytes] | None = None  # medops.serving.spool_syncer
        self._to_syncer: int | None = None  # closed: the syncer's last round, then it exits
        self._sync_state: mmap.mmap | None = None  # the syncer's state file
        self._sync_errno: memoryview | None = None  # its first field, read before each write is kept
        self._started_syncer = 0.0
        self._retired_seen = 0  # segments retired that the drainer thread was woken for
        self._sync_failed = 0  # the errno of a sync that failed: nothing is kept after it
        self._counting = threading.Lock()
        self._accepting = False  # see running

    # --- life ---------------------------------------------------------------------------

    def start(self) -> None:
        """Drain what dead processes left, then take this process's folder and start the syncer process
        (background) or the writer process (before_answer), and the drainer."""
        recover(self.root, self.sink)
        self.folder.mkdir(parents=True, mode=0o700)
        self._lock_file = _hold(self.folder)
        self._stop.clear()
        if self.sync == BACKGROUND:
            self._start_syncer()
        else:
            self._start_writer()
        self._drainer = threading.Thread(target=self._drain_loop, name="medops-spool-drainer", daemon=True)
        self._drainer.start()
        self._accepting = True

    @property
    def running(self) -> bool:
        return self._accepting  # started, and not closing: no append once close began

    @property
    def keeping(self) -> bool:
        """Records can be kept: running, and no sync failed (background)."""
        return self.running and not self._failed_sync()

    def close(self, *, drain: bool = True) -> None:
        """Seal, drain (unless told not to), and give the folder up."""
        if self._drainer is None:
            return
        self._accepting = False
        self._stop.set()
        self._drain_now.set()
        self._drainer.join()  # first: in background it also seals and makes segments ahead
        self._drainer = None
        if self.sync == BACKGROUND:
            self._stop_syncer()
        else:
            self._stop_writer()  # after writing and sealing what was handed to it
        if self._offloaded is not None:  # its last drain first; anything it leaves is drained below
            self._offloaded.stop()
            self._offloaded = None
        if drain:
            with contextlib.suppress(Exception), self._draining:  # a sink that is down leaves them for recovery
                self._drain_sealed()
        leftover = any(self.folder.glob(f"*{SEALED}")) or any(self.folder.glob(f"*{OPEN}"))
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None
        if not leftover:
            shutil.rmtree(self.folder, ignore_errors=True)

    def _start_writer(self) -> None:
        assert self._lock_file is not None
        frames_read, frames_write = os.pipe()
        acks_read, acks_write = os.pipe()
        with contextlib.suppress(OSError, AttributeError):  # room for bursts; the default 64 KiB also works
            fcntl.fcntl(frames_write, fcntl.F_SETPIPE_SZ, 1 << 20)
        command = [*self.writer, str(self.folder)]
        command += [str(self.seal_records), str(self.seal_seconds), str(frames_read), str(acks_write)]
        try:
            # the folder's lock goes with it: the folder is not recovered while the writer still writes
            self._writer = subprocess.Popen(
                command, pass_fds=(frames_read, acks_write, self._lock_file.fileno()), stdin=subprocess.DEVNULL
            )
        finally:
            os.close(frames_read)
            os.close(acks_write)
        os.set_blocking(frames_write, False)
        os.set_blocking(acks_read, False)
        self._to_writer, self._from_writer = frames_write, acks_read
        self._started_writer = time.monotonic()

    def _stop_writer(self) -> None:
        """Close the frames' pipe (the writer seals and exits), then settle what it acknowledged."""
        with self._sending:
            if self._to_writer is not None:
                with contextlib.suppress(OSError):
                    self._send_all()
            self._close_frames_pipe()
        if self._writer is not None:
            _wait_or_kill(self._writer, "the writer did not stop; killed (its unacknowledged records fail)")
            self._writer = None
        while self._from_writer is not None:  # its last acknowledgements, then the closed pipe
            self._read_acks()

    # --- appending -----------------------------------------------------------------------

    def append(self, records: list[dict[str, Any]] | bytes) -> Awaitable[None]:
        """To await: done once ``records`` (or lines already encoded, each ending in a newline) are kept.
        SpoolUnavailable if they could not be: raised by the call when it knows at once, else by the await.

        ``background``: written now, and what is returned is already done. A write into the file cache
        takes about a microsecond; grouping such writes saved less than the future and the two more turns
        of the event loop each request then waited for (measured, docs/architecture.md).
        ``before_answer``: handed over at the end of this turn of the event loop, with whatever else was
        handed over in it, as one synchronous write. A future rather than a coroutine: every answered
        request awaits one, and a coroutine in between cost a frame to make and another to resume.
        """
        if not self.running:
            raise SpoolUnavailable("the prediction log is not running")
        data = records if isinstance(records, bytes) else _encode(records)
        if self.sync == BACKGROUND:
            self._keep_now(data)
            return KEPT
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        lines = self._lines
        if not lines:
            loop.call_soon(self._hand_over, loop)
        lines.append(data)
        self._waiting.append(done)
        return done

    def _hand_over(self, loop: asyncio.AbstractEventLoop) -> None:
        lines, waiting = self._lines, self._waiting
        self._lines, self._waiting = [], []
        data = b"".join(lines)
        self._send(_Frame(data.count(b"\n"), waiting), frame(WRITE, data), loop)

    def append_sync(self, records: list[dict[str, Any]]) -> None:
        """``append`` for a caller outside an event loop."""
        if not self.running:
            raise SpoolUnavailable("the prediction log is not running")
        data = _encode(records)
        if self.sync == BACKGROUND:
            self._keep_now(data)
            return
        done = _Frame(data.count(b"\n"), [], threading.Event())
        self._send(done, frame(WRITE, data), None)
        self._wait(done)
        if done.error:
            raise SpoolUnavailable("the prediction log could not keep the records")

    def flush(self) -> None:
        """Seal the open segment and drain everything now (shutdown, tests)."""
        if self._segments is not None:
            self._segments.seal()
        else:
            sealed = _Frame(0, [], threading.Event())
            self._send(sealed, frame(SEAL), None)
            self._wait(sealed)
        with self._draining:
            self._drain_sealed()

    def _send(self, pending: _Frame, data: bytes, loop: asyncio.AbstractEventLoop | None) -> None:
        """Queue ``pending`` and send its frame; on the event loop, watch for the acknowledgement."""
        with self._sending:
            alive = self._writer_alive()  # a wait(2) for the child: once per group, not twice
            if not alive:
                self._restart_writer()
                alive = self._writer_alive()
            if not alive or self._to_writer is None or self._from_writer is None:
                _settle_frame(pending, errno.EPIPE)
                return
            if loop is not None:
                try:
                    self._watch(loop)
                except SpoolUnavailable:
                    _settle_frame(pending, errno.EBUSY)
                    return
            with self._acking:
                self._in_flight.append(pending)
            self._outbox += data
            try:
                if loop is None:
                    self._send_all()
                else:
                    self._send_some(loop)
            except OSError:  # the writer is gone: its acknowledgements' pipe says so to whoever reads it
                self._outbox.clear()

    def _send_some(self, loop: asyncio.AbstractEventLoop) -> None:
        assert self._to_writer is not None
        try:
            sent = os.write(self._to_writer, self._outbox)
        except BlockingIOError:
            sent = 0
        del self._outbox[:sent]
        if self._outbox:  # a full pipe: the rest goes when it drains, before any later frame
            loop.add_writer(self._to_writer, self._resend, loop)
            self._resending = loop

    def _resend(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._sending:
            if self._to_writer is None:
                return
            loop.remove_writer(self._to_writer)
            self._resending = None
            with contextlib.suppress(OSError):
                self._send_some(loop)

    def _close_frames_pipe(self) -> None:
        """Close the frames' pipe (under _sending); frames not sent whole are dropped: their waiters fail
        when the acknowledgements' pipe closes, and a new writer must never read the rest of a frame."""
        fd, self._to_writer = self._to_writer, None
        loop, self._resending = self._resending, None
        self._outbox.clear()
        if fd is not None:
            _close_watched(loop, fd, reader=False)

    def _send_all(self) -> None:
        assert self._to_writer is not None
        while self._outbox:
            try:
                del self._outbox[: os.write(self._to_writer, self._outbox)]
            except BlockingIOError:
                select.select([], [self._to_writer], [], 0.1)

    def _writer_alive(self) -> bool:
        return self._writer is not None and self._writer.poll() is None

    def _restart_writer(self) -> None:
        """A writer that died is started again (at most once a second), sealing what it left."""
        if self._stop.is_set() or time.monotonic() - self._started_writer < 1.0:
            return
        code = self._writer.returncode if self._writer is not None else None
        log.error("prediction log: the writer process ended (exit code %s); starting another", code)
        self._writer = None
        self._close_frames_pipe()
        while self._from_writer is not None:
            self._read_acks()  # what it acknowledged before it ended; the rest fails
        self._start_writer()

    # --- BACKGROUND: written here, synced by a thread ----------------------------------------

    def _start_syncer(self) -> None:
        self._segments = Segments(
            self.folder, seal_records=self.seal_records, seal_seconds=self.seal_seconds, dsync=False
        )
        self._segments.prepare_spare()  # the first segment is made now, not on the first request
        self._sync_failed = 0
        state = create_state(self.folder)
        with open(state, "rb") as handle:
            self._sync_state = mmap.mmap(handle.fileno(), STATE_LAYOUT.size, access=mmap.ACCESS_READ)
        self._sync_errno = memoryview(self._sync_state)[:4].cast("i")  # STATE_LAYOUT's errno
        self._launch_syncer()

    def _launch_syncer(self) -> None:
        control_read, control_write = os.pipe()
        command = [*self.syncer, str(self.folder), repr(self.sync_seconds), str(control_read)]
        try:
            self._syncer = subprocess.Popen(command, pass_fds=(control_read,), stdin=subprocess.DEVNULL)
        except OSError:
            os.close(control_write)
            raise
        finally:
            os.close(control_read)
        self._to_syncer = control_write
        self._started_syncer = time.monotonic()

    def _stop_syncer(self) -> None:
        """After the syncer's last round: seal the open segment (its data synced as it is sealed)."""
        self._end_syncer()
        self._failed_sync()  # a last round that failed is logged
        segments, self._segments = self._segments, None
        if segments is not None:
            try:
                segments.seal()
            except OSError as exc:  # left .open: the next recovery drains it
                log.error("prediction log: sealing the last segment failed (%s)", exc.strerror)
            segments.discard_spare()
        if self._sync_errno is not None:
            self._sync_errno.release()  # before the map it views is closed
            self._sync_errno = None
        if self._sync_state is not None:
            self._sync_state.close()
            self._sync_state = None

    def _end_syncer(self) -> None:
        fd, self._to_syncer = self._to_syncer, None
        if fd is not None:
            os.close(fd)
        if self._syncer is not None:
            _wait_or_kill(self._syncer, "the syncer did not stop; killed")
            self._syncer = None

    def _tend_segments(self) -> None:
        """BACKGROUND, on the drainer thread: seal by age, seal what was retired, make the next segment
        ahead, and start the syncer again if it died."""
        segments = self._segments
        if segments is None:
            return
        if self._syncer is not None and self._syncer.poll() is not None and not self._failed_sync():
            if time.monotonic() - self._started_syncer >= 1.0:  # at most once a second
                log.error("prediction log: the syncer ended (exit code %s); starting another", self._syncer.returncode)
                self._end_syncer()
                self._launch_syncer()
        try:
            segments.seal_if_aged()
            segments.seal_retired()  # each synced as it is sealed
        except OSError as exc:  # a failed sync, as the syncer's would be: nothing more is kept
            self._sync_failed = self._sync_failed or exc.errno or errno.EIO
            log.error("prediction log: sealing a segment of spool %s failed (%s); no more answers are given",
                      self.folder.name, exc.strerror)  # fmt: skip
        try:
            segments.prepare_spare()
        except OSError as exc:  # the next segment is made when it is needed, on the event loop
            log.warning("prediction log: no segment made ahead (%s)", exc.strerror)

    def _failed_sync(self) -> int:
        """The errno of a sync the syncer reported failed (0: none); logged once."""
        if not self._sync_failed and self._sync_errno is not None:
            failed = self._sync_errno[0]
            if failed:
                self._sync_failed = failed
                log.error(
                    "prediction log: syncing spool %s failed (%s); no more answers are given",
                    self.folder.name,
                    os.strerror(failed),
                )
        return self._sync_failed

    def _keep_now(self, data: bytes) -> None:
        """BACKGROUND: write whole lines now; SpoolUnavailable if they could not be kept."""
        if self._keep(data):
            raise SpoolUnavailable("the prediction log could not keep the records")

    def _keep(self, data: bytes) -> int:
        """Write whole lines into the open segment (the file cache); 0, or the errno it failed with."""
        segments = self._segments
        if segments is None:  # closed meanwhile
            return errno.ESHUTDOWN
        # one read of a shared page: after a failed sync the kernel may have dropped what it could not
        # write, so the log stops keeping (503s) rather than claim records it may have lost
        failed = self._failed_sync()
        if failed:
            return failed
        try:
            lines = segments.write(data)
        except OSError as exc:
            log.error("prediction log: a write failed (%s)", exc.strerror)
            return exc.errno or errno.EIO
        with self._counting:  # append_sync may be called from several threads
            self.stats.written += lines
            self.stats.groups += 1
        if segments.retired != self._retired_seen:  # a full segment: sealed, and the next made, now
            self._retired_seen = segments.retired
            self._drain_now.set()
        return 0

    # --- acknowledgements ----------------------------------------------------------------

    def _watch(self, loop: asyncio.AbstractEventLoop) -> None:
        """Read acknowledgements when ``loop`` (the running one) sees them arrive."""
        if self._loop is loop and self._watched == self._from_writer:
            return
        if self._loop is not None and self._loop is not loop:
            if self._loop.is_running():
                raise SpoolUnavailable("the prediction log is in use by another event loop")
            if not self._loop.is_closed() and self._watched is not None:
                self._loop.remove_reader(self._watched)  # a loop that ran before (tests run one per call)
        assert self._from_writer is not None
        loop.add_reader(self._from_writer, self._read_acks)
        self._loop, self._watched = loop, self._from_writer

    def _release(self, fd: int) -> None:
        """Stop watching ``fd`` and close it: on the watching loop's own thread when it runs, never waited for
        (this may run under a lock that loop's thread wants)."""
        loop = self._loop if self._watched == fd else None
        if loop is not None:
            self._loop = self._watched = None
        _close_watched(loop, fd, reader=True)

    def _read_acks(self) -> None:
        """Settle the frames the writer acknowledged; a closed pipe fails the rest."""
        with self._acking:
            if self._from_writer is None:
                return
            try:
                data = os.read(self._from_writer, 1 << 16)
            except BlockingIOError:
                return
            if not data:
                self._writer_gone()
                return
            self._acks += data
            while len(self._acks) >= ACK.size:
                frames, failed = ACK.unpack_from(self._acks)
                del self._acks[: ACK.size]
                for _ in range(frames):
                    pending = self._in_flight.popleft()
                    if pending.records and not failed:
                        self.stats.written += pending.records
                        self.stats.groups += 1
                    _settle_frame(pending, failed)

    def _writer_gone(self) -> None:
        # under _acking: every frame not acknowledged failed; the pipe is closed
        if self._in_flight and not self._stop.is_set():
            log.error("prediction log: the writer process ended with %d groups unwritten", len(self._in_flight))
        while self._in_flight:
            _settle_frame(self._in_flight.popleft(), errno.EPIPE)
        fd, self._from_writer = self._from_writer, None
        if fd is not None:
            self._release(fd)

    def _wait(self, pending: _Frame) -> None:
        """For a caller outside the event loop: read acknowledgements until ``pending``'s arrives."""
        assert pending.event is not None
        while not pending.event.is_set():
            fd = self._from_writer
            if fd is None:
                _settle_frame(pending, errno.EPIPE)
                break
            with contextlib.suppress(OSError, ValueError):
                select.select([fd], [], [], 0.05)
            self._read_acks()

    # --- draining ------------------------------------------------------------------------

    def _drain_loop(self) -> None:
        while not self._stop.is_set():
            self._drain_now.wait(self.drain_seconds)
            self._drain_now.clear()
            try:
                self._tend_segments()
                if self._offloaded is not None and not self._offloaded.alive:
                    log.warning("prediction log: the drain process ended; the server drains from now on")
                    self.offload = None
                    self._offloaded = None
                if self.offload is not None and self._offloaded is None and self._busy_segment():
                    self._offloaded = self._start_offload()
                if self._offloaded is None:
                    with self._draining:
                        self._drain_sealed()
            except Exception as exc:  # the sink is down: keep the segments, try again next round
                self.stats.drain_failures += 1
                log.warning("prediction log: drain failed, will retry (%s)", type(exc).__name__)

    def _busy_segment(self) -> bool:
        """A sealed segment holds offload_bytes (looked at before the thread drains it): worth a process."""
        if not self._busy:
            for path in self.folder.glob(f"*{SEALED}"):
                with contextlib.suppress(FileNotFoundError):
                    self._busy = self._busy or path.stat().st_size >= self.offload_bytes
        return self._busy

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


class _Kept:
    """What ``append`` returns once the records are kept: awaiting it does not suspend the caller."""

    def __await__(self) -> Generator[None, None, None]:
        return
        yield  # a generator, so that ``await`` takes it; never reached


KEPT = _Kept()
WRITER_EXIT_SECONDS = 30.0  # for the writer to write and seal what it was handed (the syncer: its last round), at close


@dataclass
class _Frame:
    """A frame sent to the writer, and who waits for its acknowledgement."""

    records: int
    waiters: list[asyncio.Future[None]]  # requests on the event loop
    event: threading.Event | None = None  # a caller outside it
    error: int = 0


class Offload(Protocol):
    """What drains a spool's folder from elsewhere (medops.serving.drain_process.DrainProcess)."""

    @property
    def alive(self) -> bool: ...

    def stop(self) -> None: ...


def _wait_or_kill(child: subprocess.Popen[bytes], message: str) -> None:
    """Wait for a child told to stop (its pipe closed); kill it if it does not within WRITER_EXIT_SECONDS."""
    try:
        child.wait(WRITER_EXIT_SECONDS)
    except subprocess.TimeoutExpired:
        log.error("prediction log: %s", message)
        child.kill()
        child.wait()


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _close_watched(loop: asyncio.AbstractEventLoop | None, fd: int, *, reader: bool) -> None:
    """Close ``fd`` once ``loop`` (if any) no longer watches it: removed on that loop's own thread when it
    runs there, never waited for (the caller may hold a lock that loop's thread wants)."""
    if loop is not None and not loop.is_closed():
        if _running_loop() is loop or not loop.is_running():
            _forget(loop, fd, reader)
            return
        with contextlib.suppress(RuntimeError):  # closed meanwhile: it watches nothing any more
            loop.call_soon_threadsafe(_forget, loop, fd, reader)
            return
    os.close(fd)


def _forget(loop: asyncio.AbstractEventLoop, fd: int, reader: bool) -> None:
    if reader:
        loop.remove_reader(fd)
    else:
        loop.remove_writer(fd)
    os.close(fd)


def _settle_frame(pending: _Frame, failed: int) -> None:
    """Tell whoever waits for ``pending``: on disk (``failed`` 0), or not."""
    pending.error = failed
    if pending.event is not None:
        pending.event.set()
    if not pending.waiters:
        return
    loop = pending.waiters[0].get_loop()
    if _running_loop() is loop:
        _settle(pending.waiters, failed)
    else:
        with contextlib.suppress(RuntimeError):  # a loop closed meanwhile: nobody waits any more
            loop.call_soon_threadsafe(_settle, pending.waiters, failed)


def _settle(group: list[asyncio.Future[None]], failed: int) -> None:
    """On the waiters' event loop: each append returns, or raises SpoolUnavailable."""
    for done in group:
        if done.done():  # its request was cancelled (a timeout): nothing to tell
            continue
        if not failed:
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
    """Hand a segment's lines to the sink, then delete it; returns how many it held."""
    lines = segment_lines(path)
    if lines:
        sink(lines)
    path.unlink()
    return len(lines)


def segment_lines(path: Path) -> list[bytes]:
    """A segment's whole lines. The sink reads them: a line of a request holds text the log stores as it
    is, which decoding here would make it encode again."""
    # a segment begun as a spare ends at its first NUL: what follows was never acknowledged
    lines = path.read_bytes().split(b"\0", 1)[0].split(b"\n")
    # a last piece without its newline is a torn write: never completed, so never acknowledged
    return [line for line in lines[:-1] if line.strip()]


def read_segment(path: Path) -> list[dict[str, Any]]:
    """A segment's records, decoded (for tools and tests; the drain hands the sink the lines)."""
    records = []
    for number, line in enumerate(segment_lines(path), start=1):
        try:
            records.append(json.loads(line))
        except ValueError:
            log.error("prediction log: %s line %d is unreadable and was skipped", path.name, number)
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
