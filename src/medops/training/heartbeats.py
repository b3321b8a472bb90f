"""One thread beats for every open run of a process.

A run says it is alive every few seconds, so that a run whose process died is found and marked
killed. A thread per run did that, but starting and joining a thread costs more than the rest of
a short run's bookkeeping on a small virtual machine (about 0.6 ms to start one on 2 cores),
and a script that makes hundreds of runs paid it each time. One daemon thread per process now
keeps every open run's next beat and sleeps until the earliest. A forked child starts its own.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

Beat = Callable[[], None]


class Heartbeats:
    """The open runs' beats, each at its own interval, from one thread started on first use."""

    def __init__(self) -> None:
        self._due: dict[int, tuple[float, float, Beat]] = {}  # key: (next beat, interval, beat)
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None
        self._next_key = 0

    def forked(self) -> None:
        """In a forked child: the parent's thread is gone and its runs are not the child's (a lock the
        thread held at the fork would never be released, so the child gets new ones)."""
        self._due, self._wake, self._thread = {}, threading.Condition(), None

    def add(self, beat: Beat, every: float) -> int:
        """Beat every ``every`` seconds from now until ``remove``; the key to remove it with."""
        with self._wake:
            self._next_key += 1
            self._due[self._next_key] = (time.monotonic() + every, every, beat)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="medops-heartbeats", daemon=True)
                self._thread.start()
            self._wake.notify()
            return self._next_key

    def remove(self, key: int) -> None:
        """No beat starts for it after this returns (one already under way may still finish: a beat
        of an ended run changes nothing)."""
        with self._wake:
            self._due.pop(key, None)

    def _loop(self) -> None:
        while True:
            with self._wake:
                now = time.monotonic()
                due = [(key, every, beat) for key, (at, every, beat) in self._due.items() if at <= now]
                for key, every, beat in due:
                    self._due[key] = (now + every, every, beat)
                if not due:
                    soonest = min((at for at, _, _ in self._due.values()), default=now + 60.0)
                    self._wake.wait(timeout=max(soonest - now, 0.001))
                    continue
            for _, _, beat in due:
                try:
                    beat()
                except Exception:  # noqa: BLE001 - a missed beat is retried at the next interval; the run goes on
                    continue


HEARTBEATS = Heartbeats()
os.register_at_fork(after_in_child=HEARTBEATS.forked)
