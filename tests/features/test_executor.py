"""Executors: local, and Dask at a scheduler address; an unreachable scheduler is a clear error."""

from __future__ import annotations

import socket

import pytest

from medops.errors import ConfigError
from medops.features.executor import LocalExecutor, open_executor


def _square(x: int) -> int:
    return x * x


def test_local_runs_in_order() -> None:
    executor = open_executor("local")
    assert isinstance(executor, LocalExecutor) and executor.partitions == 1
    assert executor.map(_square, [(i,) for i in range(5)]) == [0, 1, 4, 9, 16]
    assert list(executor.as_completed(_square, [(i,) for i in range(3)])) == [(0, 0), (1, 1), (2, 4)]


@pytest.mark.slow
def test_a_dask_scheduler_by_address() -> None:
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=1, threads_per_worker=2, processes=False, protocol="tcp", dashboard_address=":0"
    ) as cluster:
        executor = open_executor("dask://" + cluster.scheduler_address.removeprefix("tcp://"))
        try:
            assert executor.partitions == 2
            assert executor.map(_square, [(i,) for i in range(5)]) == [0, 1, 4, 9, 16]
            finished = list(executor.as_completed(_square, [(i,) for i in range(5)]))  # in the order they finish
            assert sorted(finished) == [(0, 0), (1, 1), (2, 4), (3, 9), (4, 16)]
        finally:
            executor.close()


def test_an_unknown_executor_is_clear() -> None:
    with pytest.raises(ConfigError, match="executor 'spark' is not known"):
        open_executor("spark")


@pytest.mark.slow
def test_an_unreachable_scheduler_is_clear() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the block ends: nothing listens there
    with pytest.raises(ConfigError, match="can't reach the Dask scheduler"):
        open_executor(f"dask://127.0.0.1:{port}")
