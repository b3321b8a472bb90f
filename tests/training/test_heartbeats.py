"""One thread beats every open run of a process: each on its own schedule, none after its removal."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from medops.training.heartbeats import Heart


class Recorder:
    def __init__(self, pause: float = 0.0, fail: bool = False) -> None:
        self.beats: list[float] = []
        self.pause = pause
        self.fail = fail
        self.inside = threading.Event()

    def _beat_once(self) -> None:
        self.inside.set()
        time.sleep(self.pause)
        self.beats.append(time.monotonic())
        if self.fail:
            raise RuntimeError("the server is down")


def _wait_for(condition: Callable[[], object], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not condition():
        time.sleep(0.01)


def test_each_run_is_beaten_on_its_own_schedule_until_removed() -> None:
    heart = Heart()
    fast, slow, failing = Recorder(), Recorder(), Recorder(fail=True)
    started = time.monotonic()
    heart.add(fast, every=0.05, first=0.0)
    heart.add(slow, every=10.0, first=0.2)
    heart.add(failing, every=0.05, first=0.0)
    _wait_for(lambda: len(fast.beats) >= 4 and slow.beats)
    assert len(fast.beats) >= 4 and len(failing.beats) >= 3  # a failing beat is retried and stops no other
    assert len(slow.beats) == 1 and slow.beats[0] - started >= 0.2
    for run in (fast, slow, failing):
        heart.remove(run)
    counts = (len(fast.beats), len(failing.beats))
    time.sleep(0.2)
    assert (len(fast.beats), len(failing.beats)) == counts
    assert heart._thread is not None and heart._thread.name == "medops-heartbeats"


def test_removal_waits_for_a_beat_under_way() -> None:
    heart = Heart()
    run = Recorder(pause=0.3)
    heart.add(run, every=60.0, first=0.0)
    assert run.inside.wait(5)
    heart.remove(run)  # returns only once the beat is done: no beat lands after the run's end
    assert len(run.beats) == 1


def test_a_forked_child_starts_a_thread_of_its_own() -> None:
    heart = Heart()
    heart.add(Recorder(), every=60.0, first=60.0)
    parent_thread = heart._thread
    heart._pid = -1  # as a child of fork sees it: the parent's pid
    child_run = Recorder()
    heart.add(child_run, every=60.0, first=0.0)
    assert heart._thread is not parent_thread and list(heart._due) == [child_run]
    _wait_for(lambda: child_run.beats)
    assert child_run.beats
