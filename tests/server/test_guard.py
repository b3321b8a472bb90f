"""The Guard reads the audit trail's newest id once per turn of the event loop, never for a
request that arrived after the read."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from medops.server.guard import Guard, ServerOptions
from medops.server.metrics import Metrics


def _guard(reads: list[int]) -> Guard:
    def epoch() -> int:
        reads.append(len(reads) + 1)
        return reads[-1]

    services: Any = SimpleNamespace(serving=SimpleNamespace(epoch=epoch))
    return Guard(lambda *_: None, services, Metrics(), ServerOptions(), frozenset())  # type: ignore[arg-type]


def test_one_read_per_turn_and_a_fresh_one_after_it() -> None:
    reads: list[int] = []
    guard = _guard(reads)

    async def main() -> list[int]:
        seen = [guard._epoch(), guard._epoch(), guard._epoch()]  # requests handled in the same turn
        await asyncio.sleep(0)  # the turn ends: a request arriving now is handled after the forgetting
        seen.append(guard._epoch())
        return seen

    assert asyncio.run(main()) == [1, 1, 1, 2]
    assert reads == [1, 2]


def test_a_failed_read_is_not_remembered() -> None:
    calls = 0

    def down() -> int:
        nonlocal calls
        calls += 1
        raise ConnectionError("database down")

    services: Any = SimpleNamespace(serving=SimpleNamespace(epoch=down))
    guard = Guard(lambda *_: None, services, Metrics(), ServerOptions(), frozenset())  # type: ignore[arg-type]

    async def main() -> None:
        for _ in range(2):
            try:
                guard._epoch()
            except ConnectionError:
                pass

    asyncio.run(main())
    assert calls == 2
