"""Where feature work runs: in this process, or as Dask tasks over entity partitions.

Work splits by a hash of the entity id: every row of one entity (its events and its
labels) lands in the same partition, so each partition's point-in-time join is complete
on its own, and putting the partitions back in row order gives exactly the local result.

Tasks read their inputs from Parquet files by path; with ``dask://host:port`` the
workers must see the workspace's artifact folder at the same path (a shared volume).
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar
from urllib.parse import urlparse

from medops.backends import EXECUTORS
from medops.errors import ConfigError

T = TypeVar("T")


class Executor(Protocol):
    name: str
    partitions: int

    def map(self, fn: Callable[..., T], args: Sequence[tuple[Any, ...]]) -> list[T]: ...

    def as_completed(self, fn: Callable[..., T], args: Sequence[tuple[Any, ...]]) -> Iterator[tuple[int, T]]: ...

    def close(self) -> None: ...


@dataclass
class LocalExecutor:
    """One partition, in this process: no files, no serialization."""

    name: str = "local"
    partitions: int = 1

    def map(self, fn: Callable[..., T], args: Sequence[tuple[Any, ...]]) -> list[T]:
        return [fn(*a) for a in args]

    def as_completed(self, fn: Callable[..., T], args: Sequence[tuple[Any, ...]]) -> Iterator[tuple[int, T]]:
        """Each call's position and result, as it finishes: here, in order."""
        for i, a in enumerate(args):
            yield i, fn(*a)

    def close(self) -> None:
        pass


class DaskExecutor:
    """Tasks on a Dask cluster: ``dask://host:port`` (a running scheduler) or ``dask-local``."""

    def __init__(self, url: str, partitions: int | None = None) -> None:
        try:
            from distributed import Client, LocalCluster
        except ImportError as exc:  # pragma: no cover - installed with medops
            raise ConfigError("executor is Dask but the distributed package is missing") from exc
        self.name = url
        self._cluster: Any = None
        try:
            if url == "dask-local":
                self._cluster = LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0")
                self.client = Client(self._cluster)
            else:
                check_dask(url)  # refused at once rather than after the client's 10 s of retries
                address = "tcp://" + url.removeprefix("dask://")
                self.client = Client(address, timeout="10s")
        except (OSError, TimeoutError) as exc:
            if self._cluster is not None:
                self._cluster.close()
            raise ConfigError(
                f"executor {url}: can't reach the Dask scheduler ({exc})",
                hint="start one with `dask scheduler` and workers with `dask worker HOST:8786`, or use dask-local",
            ) from None
        workers = max(1, len(self.client.scheduler_info().get("workers", {})))
        self.partitions = partitions or 2 * workers

    def map(self, fn: Callable[..., T], args: Sequence[tuple[Any, ...]]) -> list[T]:
        futures = [self.client.submit(fn, *a, pure=False) for a in args]
        return list(self.client.gather(futures))

    def as_completed(self, fn: Callable[..., T], args: Sequence[tuple[Any, ...]]) -> Iterator[tuple[int, T]]:
        """Each task's position and result as it finishes (a progress bar moves per task); the tasks
        still running are cancelled if the caller stops early or a task fails."""
        from distributed import as_completed

        futures = [self.client.submit(fn, *a, pure=False) for a in args]
        position = {future.key: i for i, future in enumerate(futures)}
        try:
            for future, result in as_completed(futures, with_results=True):
                yield position[future.key], result
        finally:
            self.client.cancel([f for f in futures if not f.done()])

    def close(self) -> None:
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()


def open_executor(url: str, partitions: int | None = None) -> Executor:
    """The executor the setting names (registered in ``medops.backends.EXECUTORS``); empty means local."""
    url = url or "local"
    executor: Executor = EXECUTORS.find(url).open(url, partitions)
    return executor


def open_local(url: str, partitions: int | None = None) -> LocalExecutor:
    """``local``: one partition, whatever is asked."""
    return LocalExecutor()


def check_local(url: str) -> str:
    """Nothing to reach: work runs in this process."""
    return url


def check_dask(url: str) -> str:
    """A remote scheduler must accept connections; ``dask-local`` starts its own cluster when used."""
    if not url.startswith("dask://"):
        return url
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 8786), timeout=3):
            return f"Dask scheduler at {url} accepts connections"
    except OSError as exc:
        raise ConfigError(
            f"executor {url}: can't reach the Dask scheduler ({exc.strerror or exc})",
            hint='start one with `dask scheduler` and workers with `dask worker HOST:8786`, or set executor = "local"',
        ) from None
