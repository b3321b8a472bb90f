"""One thread beats for every open run: each at its own interval, none after it is removed, a failing
beat retried, and a forked child starting afresh."""

from __future__ import annotations

import os
import threading
import time

import pytest

from medops.training.heartbeats import Heartbeats


def _wait_for(condition: threading.Event, seconds: float = 5.0) -> bool:
    return condition.wait(seconds)


def test_each_run_beats_at_its_own_interval_on_one_thread() -> None:
    beats = Heartbeats()
    counts = {"fast": 0, "slow": 0}
    enough = threading.Event()
    threads: set[str] = set()

    def beat(name: str) -> None:
        threads.add(threading.current_thread().name)
        counts[name] += 1
        if counts["slow"] >= 2:
            enough.set()

    beats.add(lambda: beat("fast"), 0.02)
    beats.add(lambda: beat("slow"), 0.2)
    assert _wait_for(enough)
    assert counts["fast"] > counts["slow"] >= 2  # the fast one beat many times while the slow one beat twice
    assert threads == {"medops-heartbeats"}


def test_a_removed_run_beats_no_more_and_a_failing_beat_is_retried() -> None:
    beats = Heartbeats()
    seen: list[str] = []
    failed = {"n": 0}
    retried = threading.Event()

    def flaky() -> None:
        failed["n"] += 1
        if failed["n"] >= 3:
            retried.set()
        raise RuntimeError("database went away")

    key = beats.add(lambda: seen.append("beat"), 0.01)
    beats.add(flaky, 0.01)
    assert _wait_for(retried)  # an exception did not stop the thread
    beats.remove(key)
    time.sleep(0.05)  # a beat under way when it was removed may still finish
    after = len(seen)
    time.sleep(0.1)
    assert len(seen) == after


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX-only")
def test_a_forked_child_starts_its_own_thread_without_the_parents_runs() -> None:
    beats = Heartbeats()
    beats.add(lambda: None, 0.01)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: no runs of the parent, and its own thread beats its own
        beats.forked()
        mine = threading.Event()
        beats.add(mine.set, 0.01)
        ok = not [k for k in beats._due if k != beats._next_key] and mine.wait(5)
        os.write(write, b"1" if ok else b"0")
        os._exit(0)
    os.close(write)
    assert os.read(read, 1) == b"1"
    os.waitpid(pid, 0)
