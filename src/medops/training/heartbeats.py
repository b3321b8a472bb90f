"""One thread per process beats every open run when its beat is due.

Why one: a thread of its own per run cost its start and its join (0.5 to 0.8 ms on a busy 2-core
machine), more than a short run over the platform server costs otherwise, and a tuning job
opens hundreds. Beats are rare (one per run every few seconds) and short, so one thread keeps
up with every run of a process; a beat that hangs on the network delays the others' by at
most the client's timeout, well inside the time after which a silent run is marked abandoned.
"""

from __future__ import annotations

import math
import os
import threading
import time
from typing import Protocol


class Beating(Protocol):
    def _beat_once(self) -> None: ...


class Heart:
    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._changed = threading.Condition()
        self._due: dict[Beating, tuple[float, float]] = {}  # run -> (next beat, then every)
        self._beating: Beating | None = None
        self._thread: threading.Thread | None = None
        self._wakes_at = 0.0  # when the thread looks next: a run due later needs no wake-up (a switch per run)

    def add(self, run: Beating, every: float, first: float) -> None:
        """Beat ``run`` ``first`` seconds from now, then every ``every`` seconds, until it is removed."""
        if self._pid != os.getpid():  # a forked child: the parent's thread did not come along
            self._reset()
        with self._changed:
            due = time.monotonic() + first
            self._due[run] = (due, every)
            if self._thread is None:
                self._thread = threading.Thread(target=self._beat, name="medops-heartbeats", daemon=True)
                self._thread.start()
            elif due < self._wakes_at:
                self._changed.notify_all()

    def remove(self, run: Beating, timeout: float = 5.0) -> None:
        """No more beats of ``run``; waits (up to ``timeout``) for one under way, so none follows its end."""
        deadline = time.monotonic() + timeout
        with self._changed:
            self._due.pop(run, None)
            while self._beating is run and (left := deadline - time.monotonic()) > 0:
                self._changed.wait(left)

    def _beat(self) -> None:
        while True:
            with self._changed:
                now = time.monotonic()
                run, (due, every) = min(self._due.items(), key=lambda item: item[1][0], default=(None, (0.0, 0.0)))
                if run is None or due > now:
                    self._wakes_at = math.inf if run is None else due
                    self._changed.wait(None if run is None else due - now)
                    continue
                self._due[run] = (now + every, every)
                self._beating = run
            try:
                run._beat_once()
            except Exception:  # noqa: BLE001 - a missed beat is retried; the run itself goes on
                pass
            finally:
                with self._changed:
                    self._beating = None
                    self._changed.notify_all()


HEART = Heart()
