"""Request deadlines kept by one timer, not one each.

``asyncio.timeout`` arms a timer for every request and takes it down again: 5 to 7 us of a
one-row request that costs the server about 160 (measured under load, docs/benchmarks.md).
``Deadlines`` notes each running request's deadline in a dict and sweeps it with a single timer,
cancelling the requests past theirs. A request is cancelled at most ``grain`` after its deadline:
a quarter of the timeout, at most half a second.
"""

from __future__ import annotations

import asyncio


class Deadlines:
    """The deadlines of one event loop's requests: ``start``, then ``stop`` once the guarded work ends."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.grain = min(0.5, seconds / 4)
        self._due: dict[asyncio.Task[object], float] = {}
        self._expired: set[asyncio.Task[object]] = set()
        self._sweep_at: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop the sweeps run on

    def start(self) -> asyncio.Task[object]:
        """The running task, due ``seconds`` from now."""
        task = asyncio.current_task()
        if task is None:  # pragma: no cover - a coroutine run by an event loop always has its task
            raise RuntimeError("Deadlines.start must be called from a task")
        loop = task.get_loop()
        self._due[task] = loop.time() + self.seconds
        if self._sweep_at is None or self._loop is not loop:  # the first request, or one on a new loop (tests)
            self._loop = loop
            self._sweep_at = loop.call_later(self.grain, self._sweep, loop)
        return task

    def stop(self, task: asyncio.Task[object]) -> bool:
        """Forget ``task``; True when it was cancelled for its deadline (its cancellation is then withdrawn,
        so the task goes on, as after ``asyncio.timeout``)."""
        self._due.pop(task, None)
        if task in self._expired:
            self._expired.discard(task)
            task.uncancel()
            return True
        return False

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        if loop is not self._loop:  # a loop given up for another
            return
        now = loop.time()
        late = [task for task, due in self._due.items() if due <= now]
        for task in late:
            del self._due[task]
            if not task.done():
                self._expired.add(task)
                task.cancel()
        self._sweep_at = loop.call_later(self.grain, self._sweep, loop) if self._due else None
