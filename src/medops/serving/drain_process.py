"""The prediction log's drain in a process of its own, beside each serving process.

Draining is Python work (decoding the records, building the statements) that would hold the
server's GIL in stretches: a thread doing it makes the event loop wait for the interpreter
each time it comes back from the network, which cost a third of the requests a server
answered (measured). A child process holds its own interpreter, so the server's loop never
waits for it. The child connects to the same metadata database, drains the sealed segments of one spool
folder into the metadata store, and when the server closes the pipe (at shutdown, or when it
dies) drains what is left and exits. Segments are deleted only after the store committed them,
so a child killed at any point loses nothing: the next drain, by a child or by ``recover``,
inserts them again and the store ignores those it holds.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from medops.store.database import Database

log = logging.getLogger("medops.spool")
DRAIN_NICENESS = 10  # added to the server's: the scheduler gives the drain what the server leaves


class DrainProcess:
    """The child draining one spool folder (see the module docstring)."""

    def __init__(self, db: Database, folder: Path, interval: float) -> None:
        context = multiprocessing.get_context("spawn")  # a clean interpreter: no threads or locks inherited
        self._ours, theirs = context.Pipe()
        # the URL goes through the pipe spawn starts the child with, never its command line
        args = (db.url, db.busy_timeout, str(folder), interval, theirs)
        self.process: Any = context.Process(target=main, args=args, name="medops-spool-drain", daemon=True)
        self.process.start()
        theirs.close()

    @property
    def alive(self) -> bool:
        return bool(self.process.is_alive())

    def stop(self, timeout: float = 30.0) -> None:
        """Ask for a last drain and wait for it (up to ``timeout``); whatever is left is the caller's."""
        self._ours.close()
        self.process.join(timeout)
        if self.process.is_alive():
            log.warning("prediction log: the drain process did not finish in %gs; draining in the server", timeout)
            self.process.kill()  # it ignores SIGTERM (see main)
            self.process.join(5)


def main(url: str, busy_timeout: float, folder: str, interval: float, parent: Connection) -> None:
    # Ctrl-C, and a service manager's SIGTERM, reach the whole process group: the server shuts down and
    # closes the pipe, which ends this
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # Draining can wait; the server and the log's writer cannot (a request waits on each). On a
    # machine with few cores a drain's bursts otherwise hold a core the writer needs at once.
    os.nice(DRAIN_NICENESS)
    from medops.serving.prediction_log import store_into
    from medops.serving.spool import drain_folder
    from medops.store.database import Database

    db = Database(url, busy_timeout=busy_timeout)
    try:
        sink = store_into(db)
        stopping = False
        while not stopping:
            try:
                stopping = parent.poll(interval)  # the parent never writes: readable means it closed the pipe
            except (EOFError, OSError):
                stopping = True
            try:
                drain_folder(Path(folder), sink)
            except Exception as exc:  # the store is down: keep the segments, try again next round
                log.warning("prediction log: drain failed, will retry (%s)", type(exc).__name__)
                if stopping:
                    return  # the server drains what is left, or the next start recovers it
    finally:
        db.dispose()
