"""Shared helpers: a throw-away workspace per backend, interleaved timing with medians, the machine's load,
and table printing (every table printed is also recorded, for `python -m benchmarks --json/--compare`)."""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
PASSWORD = "benchmark-password-1"


@contextmanager
def temp_dir(prefix: str) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextmanager
def environment(values: dict[str, str], cwd: Path) -> Iterator[None]:
    """``values`` set in the environment and ``cwd`` the working directory for the block, as a user's
    script would have them; both restored after."""
    saved = {name: os.environ.get(name) for name in values}
    here = Path.cwd()
    os.environ.update(values)
    os.chdir(cwd)
    try:
        yield
    finally:
        os.chdir(here)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextmanager
def pg_database() -> Iterator[str]:
    """A database of this run's own, dropped afterwards even on failure."""
    import psycopg

    name = f"medops_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def workspace(backend: str) -> Iterator[Any]:
    """An initialized workspace on ``backend`` (sqlite or postgresql)."""
    from medops.workspace import init_workspace

    with temp_dir("medops-bench-") as base:
        os.environ["MEDOPS_KEY_DIR"] = str(base / "keys")
        if backend == "sqlite":
            ws = init_workspace(
                base / "ws", admin_username="admin", admin_full_name="Bench Admin", admin_password=PASSWORD
            )
            try:
                yield ws
            finally:
                ws.close()
        else:
            with pg_database() as url:
                ws = init_workspace(
                    base / "ws",
                    admin_username="admin",
                    admin_full_name="Bench Admin",
                    admin_password=PASSWORD,
                    metadata_url=url,
                )
                try:
                    yield ws
                finally:
                    ws.close()


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def interleaved(sides: dict[str, Callable[[], Any]], rounds: int, *, warmup: bool = True) -> dict[str, list[float]]:
    """Seconds of each side in each round. Every round runs each side once, in an order that rotates from
    round to round, so a slow minute of the machine falls on every side alike; with ``warmup``, each side
    runs once untimed first (imports, caches, a first connection), as a long-lived process would have."""
    names = list(sides)
    if warmup:
        for name in names:
            sides[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            sides[name]()
            times[name].append(time.perf_counter() - start)
    return times


def medians(times: dict[str, list[float]]) -> dict[str, float]:
    return {name: statistics.median(values) for name, values in times.items()}


def load_average() -> str:
    """The 1, 5 and 15-minute load averages: printed at a benchmark's start and end beside its results."""
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


# every table print_table shows, in order: what `python -m benchmarks --json` writes and --compare reads
RECORDED: list[dict[str, Any]] = []


def print_table(title: str, header: list[str], rows: list[list[Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    RECORDED.append({"title": title, "header": list(header), "rows": [[str(v) for v in row] for row in rows]})

    table = Table(title=title)
    for col in header:
        table.add_column(col, justify="right" if col != header[0] else "left")
    for row in rows:
        table.add_row(*[str(v) for v in row])
    Console(width=140).print(table)
