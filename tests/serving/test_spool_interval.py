"""The interval spool: each record in the file cache when append returns (a killed process loses none),
synced and sealed by its thread, drained as the answer-synced spool's are."""

from __future__ import annotations

import asyncio
import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from medops.serving import spool_segments
from medops.serving.spool import SEALED, SpoolUnavailable, read_segment, recover
from medops.serving.spool_interval import IntervalSpool
from tests.serving.test_spool import Sink


def _written(spool: IntervalSpool) -> list[str]:
    return [r["id"] for p in sorted(spool.folder.glob("*.open")) for r in read_segment(p)]


def test_a_record_is_in_its_segment_when_append_returns_and_drained_at_close(tmp_path: Path) -> None:
    sink = Sink()
    spool = IntervalSpool(tmp_path, sink, seal_seconds=60)
    spool.start()

    async def main() -> None:
        for i in range(20):
            await spool.append([{"id": str(i)}])
            assert _written(spool)[-1] == str(i)  # readable by another process at once: the kernel holds it

    asyncio.run(main())
    spool.append_sync([{"id": "20"}, {"id": "21"}])
    spool.append_sync(b'{"id":"22"}\n')
    assert spool.stats.written == 23 and sink.records == []
    spool.close()
    assert [r["id"] for r in sink.records] == [str(i) for i in range(23)]
    assert not any(tmp_path.iterdir())


def test_the_syncer_seals_aged_segments_and_the_drainer_takes_them(tmp_path: Path) -> None:
    sink = Sink()
    spool = IntervalSpool(tmp_path, sink, seal_seconds=0.05, drain_seconds=0.02, sync_seconds=0.01)
    spool.start()
    try:
        spool.append_sync([{"id": "a"}])
        for _ in range(500):  # a bound on the wait, not a measurement
            if sink.records:
                break
            time.sleep(0.01)
        assert [r["id"] for r in sink.records] == ["a"]
        spool.append_sync([{"id": "b"}])  # a new segment after the sealed one
    finally:
        spool.close()
    assert [r["id"] for r in sink.records] == ["a", "b"]


def test_a_full_segment_is_sealed_and_the_next_one_is_a_plain_file(tmp_path: Path) -> None:
    spool = IntervalSpool(tmp_path, Sink(), seal_records=10, seal_seconds=60, drain_seconds=60)
    spool.start()
    try:
        for i in range(25):
            spool.append_sync([{"id": str(i)}])
        spool._segments.sync()  # type: ignore[union-attr]
        sealed = sorted(spool.folder.glob(f"*{SEALED}"))
        assert [len(read_segment(p)) for p in sealed] == [10, 10]
        assert not (spool.folder / spool_segments.SPARE).exists()  # no zeros written ahead
        assert _written(spool) == [str(i) for i in range(20, 25)]
    finally:
        spool.close()


def test_a_failed_write_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sink = Sink()
    spool = IntervalSpool(tmp_path, sink, seal_seconds=60)
    spool.start()
    real = os.pwrite

    def full(fd: int, data: bytes, offset: int) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "pwrite", full)
    with pytest.raises(SpoolUnavailable):
        spool.append_sync([{"id": "lost"}])
    monkeypatch.setattr(os, "pwrite", real)
    spool.append_sync([{"id": "kept"}])
    spool.close()
    assert [r["id"] for r in sink.records] == ["kept"]


def test_appends_are_refused_while_the_disk_refuses_to_sync(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spool = IntervalSpool(tmp_path, Sink(), seal_seconds=60, sync_seconds=0.005)
    spool.start()
    try:
        failing = True
        real = os.fdatasync

        def fdatasync(fd: int) -> None:
            if failing:
                raise OSError(errno.EIO, "Input/output error")
            real(fd)

        monkeypatch.setattr(os, "fdatasync", fdatasync)
        spool.append_sync([{"id": "a"}])
        for _ in range(500):
            if spool._sync_failed:
                break
            time.sleep(0.01)
        with pytest.raises(SpoolUnavailable, match="cannot reach its disk"):
            spool.append_sync([{"id": "b"}])
        failing = False
        for _ in range(500):
            if not spool._sync_failed:
                break
            time.sleep(0.01)
        spool.append_sync([{"id": "c"}])
    finally:
        spool.close()


CHILD = """
import sys
from pathlib import Path
from medops.serving.spool_interval import IntervalSpool
spool = IntervalSpool(Path(sys.argv[1]), lambda records: None, seal_records=50, seal_seconds=60, sync_seconds=60)
spool.start()
for i in range(1_000_000):
    spool.append_sync([{"id": str(i), "pad": "x" * 200}])
    print(i, flush=True)  # acknowledged
"""


@pytest.mark.slow
def test_kill_9_loses_no_acknowledged_record(tmp_path: Path) -> None:
    """The kernel keeps what a killed process wrote, synced or not (the syncer here never runs)."""
    root = tmp_path / "spool"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(root)], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    acknowledged = -1
    for line in child.stdout:
        acknowledged = int(line)
        if acknowledged >= 3_000:
            break
    os.kill(child.pid, signal.SIGKILL)
    child.wait(30)
    for line in child.stdout.read().splitlines():  # acknowledged before the kill, read after it
        acknowledged = int(line)
    sink = Sink()
    recover(root, sink)
    ids = [int(r["id"]) for r in sink.records]
    assert ids[: acknowledged + 1] == list(range(acknowledged + 1))
    assert len(ids) <= acknowledged + 2  # at most the one written and not yet acknowledged
