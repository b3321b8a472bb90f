"""medops.server.deadlines: requests past their deadline are cancelled by one sweeping timer."""

from __future__ import annotations

import asyncio

import pytest

from medops.server.deadlines import Deadlines


async def _guarded(deadlines: Deadlines, seconds: float) -> str:
    """What the Guard does around a request: 'late' when its deadline cancelled it."""
    task = deadlines.start()
    late = False
    try:
        try:
            await asyncio.sleep(seconds)
        finally:
            late = deadlines.stop(task)
    except asyncio.CancelledError:
        if not late:
            raise
        return "late"
    return "done"


def test_a_request_past_its_deadline_is_cancelled_and_told_apart_from_one_in_time() -> None:
    async def main() -> list[str]:
        deadlines = Deadlines(0.2)
        slow, quick = _guarded(deadlines, 5.0), _guarded(deadlines, 0.01)
        results = await asyncio.wait_for(asyncio.gather(slow, quick), timeout=3.0)
        assert not deadlines._due and not deadlines._expired  # nothing kept once the requests ended
        assert deadlines._sweep_at is None  # no timer left behind an idle server
        return results

    assert asyncio.run(main()) == ["late", "done"]


def test_a_late_request_goes_on_after_its_cancellation_is_withdrawn() -> None:
    async def main() -> int:
        deadlines = Deadlines(0.1)
        assert await _guarded(deadlines, 5.0) == "late"
        task = asyncio.current_task()
        assert task is not None
        return task.cancelling()  # withdrawn, as asyncio.timeout does: the task may await again

    assert asyncio.run(main()) == 0


def test_a_cancellation_from_elsewhere_is_not_taken_for_a_deadline() -> None:
    async def main() -> None:
        deadlines = Deadlines(30.0)
        request = asyncio.ensure_future(_guarded(deadlines, 5.0))
        await asyncio.sleep(0.01)
        request.cancel()  # the server stopping
        with pytest.raises(asyncio.CancelledError):
            await request

    asyncio.run(main())


def test_requests_on_a_new_event_loop_still_get_their_deadlines() -> None:
    deadlines = Deadlines(0.1)
    assert asyncio.run(_guarded(deadlines, 0.0)) == "done"
    assert deadlines._sweep_at is not None  # armed on a loop that is closed now
    assert asyncio.run(_guarded(deadlines, 5.0)) == "late"


def test_the_sweep_is_fine_grained_for_short_timeouts_and_bounded_for_long_ones() -> None:
    assert Deadlines(0.2).grain == pytest.approx(0.05)
    assert Deadlines(30.0).grain == 0.5
