"""Artifact store: put and open+read throughput against a plain copy and read of the same bytes.

put() hashes, writes a temp file, fsyncs it and renames it into place (and fsyncs the
folder); so the fair baselines are a plain copy (``shutil.copyfile``, Python's default and
also its fastest documented copy: the kernel's own copy, ``sendfile`` on Linux) and a copy
followed by fsync (the fastest a copy that survives a power loss can be). The public path a
user calls to store a file is ``run.log_artifact`` inside ``medops.start_run`` (the workspace
from MEDOPS_HOME, the user from an API token): timed too, a run started and ended around each
round's files, the run's row written with each file. Every reader of an artifact (``open``,
``read_bytes``, ``local_path``) hashes the whole file before handing it out; ``open`` and a
streaming read in 1 MiB blocks is timed against the same read of the plain file.

The sides are interleaved in a rotating order over ``--rounds`` rounds (``common.interleaved``),
each once untimed first; before each side's clock starts, earlier outputs are removed and
``os.sync()`` flushes the writeback, so one side's writes never land on another's clock. Medians
are reported, with the load average at the start and the end. Ratios are medops time / baseline
time (lower is better). The digests medops returns are checked against hashlib's.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.common import environment, interleaved, load_average, medians, print_table, temp_dir, workspace

MB = 1 << 20


def _copy_fsync(src: Path, dst: Path) -> None:
    shutil.copyfile(src, dst)
    fd = os.open(dst, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _read(path: Path) -> int:
    total = 0
    with open(path, "rb") as handle:
        while block := handle.read(MB):
            total += len(block)
    return total


def _sides(
    sides: dict[str, Callable[[], Any]], rounds: int, before: Callable[[], None]
) -> tuple[dict[str, float], dict[str, Any]]:
    """Median seconds and last result of each side, interleaved; ``before`` runs ahead of each side's clock."""
    times: dict[str, list[float]] = {name: [] for name in sides}
    results: dict[str, Any] = {}

    def timed_side(name: str, fn: Callable[[], Any]) -> Callable[[], None]:
        def run() -> None:
            before()
            start = time.perf_counter()
            results[name] = fn()
            times[name].append(time.perf_counter() - start)

        return run

    interleaved({name: timed_side(name, fn) for name, fn in sides.items()}, rounds)
    return medians({name: values[1:] for name, values in times.items()}), results  # [0]: the untimed warm-up


def run_case(ws: Any, base: Path, label: str, count: int, size: int, rounds: int) -> list[list[Any]]:
    import medops
    from medops.store.artifacts import ArtifactStore

    src_dir = base / f"src-{label}"
    src_dir.mkdir()
    sources = []
    for i in range(count):
        path = src_dir / f"{i}.bin"
        path.write_bytes(os.urandom(size))
        sources.append(path)
    volume = count * size / MB
    expected = [hashlib.sha256(p.read_bytes()).hexdigest() for p in sources]
    stored = [Path(ws.artifacts._path(d)) for d in expected]  # the workspace's copies, removed between rounds

    def target() -> Path:
        folder = base / f"out-{uuid.uuid4().hex}"
        folder.mkdir()
        return folder

    def fresh() -> None:
        for old in base.glob("out-*"):
            shutil.rmtree(old)
        for path in stored:
            path.unlink(missing_ok=True)
        os.sync()

    def copy_all() -> None:
        out = target()
        for p in sources:
            shutil.copyfile(p, out / p.name)

    def copy_sync_all() -> None:
        out = target()
        for p in sources:
            _copy_fsync(p, out / p.name)

    def put_all() -> list[str]:
        store = ArtifactStore(str(target()))
        return [store.put(p) for p in sources]

    def log_all() -> list[str]:
        with medops.start_run("bench-artifacts", label) as run:
            return [run.log_artifact(p.name, p) for p in sources]

    _, token = ws.tokens.create("admin", f"bench-{uuid.uuid4().hex[:6]}", expires_in_days=1)
    try:
        with environment({"MEDOPS_HOME": str(ws.settings.home), "MEDOPS_TOKEN": token}, base):
            writes, results = _sides(
                {"copy": copy_all, "copy + fsync": copy_sync_all, "put": put_all, "log_artifact": log_all},
                rounds,
                fresh,
            )
    finally:
        medops._close_trackers()  # the workspace is removed later: let go of its connections
    assert results["put"] == expected and results["log_artifact"] == expected
    store = ArtifactStore(str(base / f"store-{uuid.uuid4().hex}"))
    for p in sources:
        store.put(p)

    def open_all() -> int:
        total = 0
        for d in expected:
            with store.open(d) as handle:
                while block := handle.read(MB):
                    total += len(block)
        return total

    reads, totals = _sides(
        {"plain read": lambda: sum(_read(p) for p in sources), "open+read": open_all}, rounds, os.sync
    )
    assert totals["plain read"] == totals["open+read"] == count * size
    t_copy, t_sync = writes["copy"], writes["copy + fsync"]
    return [
        [
            f"{name} {label}",
            f"{volume:,.0f} MB",
            f"{volume / writes[name]:,.0f} MB/s",
            f"{volume / t_copy:,.0f} MB/s",
            f"{writes[name] / t_copy:.2f}",
            f"{volume / t_sync:,.0f} MB/s",
            f"{writes[name] / t_sync:.2f}",
        ]
        for name in ("put", "log_artifact")
    ] + [
        [
            f"open+read {label}",
            f"{volume:,.0f} MB",
            f"{volume / reads['open+read']:,.0f} MB/s",
            f"{volume / reads['plain read']:,.0f} MB/s",
            f"{reads['open+read'] / reads['plain read']:.2f}",
            "",
            "",
        ],
    ]


def main(argv: list[str] | None = None) -> list[list[Any]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small-count", type=int, default=200, help="number of small files")
    parser.add_argument("--small-mb", type=float, default=1.0, help="size of each small file, MB")
    parser.add_argument("--big-mb", type=int, default=1024, help="size of the single big file, MB")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds; the median is reported")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    args = parser.parse_args(argv)
    if args.quick:
        args.small_count, args.big_mb, args.rounds = 20, 32, 3
    print(f"load average at start: {load_average()}")
    rows: list[list[Any]] = []
    with workspace("sqlite") as ws, temp_dir("medops-bench-artifacts-") as base:
        small = f"{args.small_count} x {args.small_mb:g} MB"
        rows += run_case(ws, base, small, args.small_count, int(args.small_mb * MB), args.rounds)
        rows += run_case(ws, base, f"1 x {args.big_mb} MB", 1, args.big_mb * MB, args.rounds)
    print_table(
        f"artifact store (medians of {args.rounds} interleaved rounds)",
        ["benchmark", "bytes", "medops", "plain copy/read", "ratio", "copy + fsync", "ratio vs fsync"],
        rows,
    )
    print(
        "baselines: shutil.copyfile (Python's default copy, also its fastest documented: the kernel's copy) and "
        "copy + fsync; reads: a buffered read in 1 MiB blocks. log_artifact: medops.start_run, one run per round."
    )
    print(f"load average at end: {load_average()}")
    return rows


if __name__ == "__main__":
    main()
