"""Artifact store: put and open+read throughput against a plain copy and read of the same bytes.

put() hashes, writes a temp file, fsyncs it and renames it into place; so the fair
baselines are a plain copy (shutil.copyfile) and a copy followed by fsync. Ratios are
medops time / baseline time (lower is better).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import uuid
from pathlib import Path
from typing import Any

from benchmarks.common import print_table, temp_dir, timed

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


def _median_time(fn: Any, rounds: int, scratch: Path) -> tuple[float, Any]:
    """Median of several runs, each after os.sync() so earlier writes' writeback doesn't land on it."""
    times, result = [], None
    for _ in range(rounds):
        for old in scratch.glob("out-*"):
            shutil.rmtree(old)
        os.sync()
        elapsed, result = timed(fn)
        times.append(elapsed)
    return statistics.median(times), result


def run_case(base: Path, label: str, count: int, size: int, rounds: int) -> list[list[Any]]:
    from medops.store.artifacts import ArtifactStore

    src_dir = base / f"src-{label}"
    src_dir.mkdir()
    sources = []
    for i in range(count):
        path = src_dir / f"{i}.bin"
        path.write_bytes(os.urandom(size))
        sources.append(path)
    volume = count * size / MB

    def target() -> Path:
        folder = base / f"out-{uuid.uuid4().hex}"
        folder.mkdir()
        return folder

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

    t_copy, _ = _median_time(copy_all, rounds, base)
    t_sync, _ = _median_time(copy_sync_all, rounds, base)
    t_put, digests = _median_time(put_all, rounds, base)
    assert digests[0] == hashlib.sha256(sources[0].read_bytes()).hexdigest()
    store = ArtifactStore(str(base / f"store-{uuid.uuid4().hex}"))
    for p in sources:
        store.put(p)

    def open_all() -> int:
        total = 0
        for d in digests:
            with store.open(d) as handle:
                while block := handle.read(MB):
                    total += len(block)
        return total

    t_plain_read, _ = _median_time(lambda: [_read(p) for p in sources], rounds, base)
    t_open, _ = _median_time(open_all, rounds, base)
    return [
        [
            f"put {label}",
            f"{volume:,.0f} MB",
            f"{volume / t_put:,.0f} MB/s",
            f"{volume / t_copy:,.0f} MB/s",
            f"{t_put / t_copy:.2f}",
            f"{volume / t_sync:,.0f} MB/s",
            f"{t_put / t_sync:.2f}",
        ],
        [
            f"open+read {label}",
            f"{volume:,.0f} MB",
            f"{volume / t_open:,.0f} MB/s",
            f"{volume / t_plain_read:,.0f} MB/s",
            f"{t_open / t_plain_read:.2f}",
            "",
            "",
        ],
    ]


def main(argv: list[str] | None = None) -> list[list[Any]]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--small-count", type=int, default=200, help="number of small files")
    parser.add_argument("--small-mb", type=float, default=1.0, help="size of each small file, MB")
    parser.add_argument("--big-mb", type=int, default=1024, help="size of the single big file, MB")
    parser.add_argument("--rounds", type=int, default=5, help="repetitions; the median is reported")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    args = parser.parse_args(argv)
    if args.quick:
        args.small_count, args.big_mb, args.rounds = 20, 32, 3
    rows: list[list[Any]] = []
    with temp_dir("medops-bench-artifacts-") as base:
        small = f"{args.small_count} x {args.small_mb:g} MB"
        rows += run_case(base, small, args.small_count, int(args.small_mb * MB), args.rounds)
        rows += run_case(base, f"1 x {args.big_mb} MB", 1, args.big_mb * MB, args.rounds)
    print_table(
        "artifact store",
        ["benchmark", "bytes", "medops", "plain copy/read", "ratio", "copy + fsync", "ratio vs fsync"],
        rows,
    )
    return rows


if __name__ == "__main__":
    main()
