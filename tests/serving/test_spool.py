"""The spool keeps every acknowledged record, whatever happens after the acknowledgement."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from medops.serving.spool import (
    BACKGROUND,
    BEFORE_ANSWER,
    SEALED,
    SYNC_MODES,
    Spool,
    SpoolUnavailable,
    read_segment,
    recover,
)
from medops.serving.spool_segments import SPARE, SPARE_BYTES
from medops.serving.spool_syncer import read_state
from tests.factories import FAILING_SYNCER

# what holds in both sync modes is tested in both; the writer process's own tests name BEFORE_ANSWER
both_modes = pytest.mark.parametrize("mode", SYNC_MODES)


class Sink:
    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.fail = False

    def __call__(self, lines: list[bytes]) -> None:
        if self.fail:
            raise ConnectionError("database down")
        self.records.extend(json.loads(line) for line in lines)


def _spares(folder: Path) -> list[Path]:
    found = []
    for path in folder.glob("*.open"):
        try:  # a full segment may be sealed (renamed) between the listing and the look
            if path.stat().st_size == SPARE_BYTES and not read_segment(path):
                found.append(path)
        except FileNotFoundError:
            continue
    return found


@both_modes
def test_groups_are_fsynced_and_drained(tmp_path: Path, mode: str) -> None:
    sink = Sink()
    spool = Spool(tmp_path, sink, seal_seconds=60, sync=mode)
    spool.start()

    def send(n: int) -> None:
        for i in range(50):
            spool.append_sync([{"id": f"{n}-{i}"}])

    threads = [threading.Thread(target=send, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert spool.stats.written == 400
    spool.flush()
    assert sorted(r["id"] for r in sink.records) == sorted(f"{n}-{i}" for n in range(8) for i in range(50))
    spool.close()
    assert not any(tmp_path.iterdir())  # a clean close leaves nothing behind


@both_modes
def test_async_append_waits_for_the_write(tmp_path: Path, mode: str) -> None:
    sink = Sink()
    spool = Spool(tmp_path, sink, seal_seconds=60, sync=mode)
    spool.start()

    async def main() -> None:
        await asyncio.gather(*(spool.append([{"id": str(i)}]) for i in range(20)))

    asyncio.run(main())
    written = [r for p in spool.folder.glob("*.open") for r in read_segment(p)]
    assert len(written) == 20  # on disk before append returned, not yet in the sink
    # before_answer: handed over in one turn of the loop, one synchronous write; background: written at once
    assert spool.stats.groups == (1 if mode == BEFORE_ANSWER else 20)
    spool.close()
    assert len(sink.records) == 20


def test_a_dead_spool_is_recovered_torn_tail_skipped(tmp_path: Path) -> None:
    folder = tmp_path / "dead"
    folder.mkdir()
    (folder / "LOCK").touch()
    (folder / f"00000001{SEALED}").write_bytes(b'{"id":"a"}\n{"id":"b"}\n')
    (folder / "00000002.open").write_bytes(b'{"id":"c"}\n{"id":"d')  # killed mid-write
    sink = Sink()
    assert recover(tmp_path, sink) == 3
    assert [r["id"] for r in sink.records] == ["a", "b", "c"]
    assert not folder.exists()


@both_modes
def test_a_live_spool_is_not_taken(tmp_path: Path, mode: str) -> None:
    sink = Sink()
    spool = Spool(tmp_path, sink, seal_seconds=60, sync=mode)
    spool.start()
    spool.append_sync([{"id": "x"}])
    other = Sink()
    assert recover(tmp_path, other) == 0 and other.records == []
    spool.close()
    assert [r["id"] for r in sink.records] == ["x"]


@both_modes
def test_sink_down_keeps_segments_until_it_is_back(tmp_path: Path, mode: str) -> None:
    sink = Sink()
    sink.fail = True
    spool = Spool(tmp_path, sink, seal_seconds=60, sync=mode)
    spool.start()
    spool.append_sync([{"id": "1"}, {"id": "2"}])
    with pytest.raises(ConnectionError):
        spool.flush()
    spool.close()  # the sink is still down: the sealed segment stays for recovery
    assert sink.records == []
    sink.fail = False
    assert recover(tmp_path, sink) == 2
    assert [r["id"] for r in sink.records] == ["1", "2"]


def _failing_writer(flag: Path) -> list[str]:
    """The writer, failing every write with ENOSPC while ``flag`` exists (a full disk, then space again)."""
    code = (
        "import os, pathlib, sys\n"
        "from medops.serving import spool_writer\n"
        "real, flag = os.pwrite, pathlib.Path(sys.argv[1])\n"
        "def pwrite(*args):\n"
        "    if flag.exists():\n"
        "        raise OSError(28, 'No space left on device')\n"
        "    return real(*args)\n"
        "os.pwrite = pwrite\n"
        "sys.exit(spool_writer.main(sys.argv[2:]))\n"
    )
    return [sys.executable, "-c", code, str(flag)]


def test_a_failed_write_is_not_acknowledged(tmp_path: Path) -> None:
    flag = tmp_path / "disk-full"
    flag.touch()
    sink = Sink()
    spool = Spool(tmp_path / "spool", sink, seal_seconds=60, writer=_failing_writer(flag), sync=BEFORE_ANSWER)
    spool.start()
    with pytest.raises(SpoolUnavailable):
        spool.append_sync([{"id": "lost"}])
    flag.unlink()
    spool.append_sync([{"id": "kept"}])
    spool.close()
    assert [r["id"] for r in sink.records] == ["kept"]


@both_modes
def test_records_must_be_json(tmp_path: Path, mode: str) -> None:
    spool = Spool(tmp_path, Sink(), sync=mode)
    spool.start()
    with pytest.raises(ValueError):
        spool.append_sync([{"probability": float("nan")}])
    spool.close()


def test_a_full_segment_makes_the_next_one_start_from_zeros_written_ahead(tmp_path: Path) -> None:
    sink = Sink()
    spool = Spool(tmp_path, sink, seal_records=100, seal_seconds=60, drain_seconds=0.01, sync=BEFORE_ANSWER)
    spool.start()
    for i in range(100):  # the first segment fills: sealed for its size
        spool.append_sync([{"id": f"a{i}"}])
    deadline = time.monotonic() + 10
    while not _spares(spool.folder) and time.monotonic() < deadline:
        time.sleep(0.01)
    (spare,) = _spares(spool.folder)  # the next segment, under its number: zeros, no record
    assert spare.name == "00000002.open" and read_segment(spare) == []
    spool.append_sync([{"id": "b0"}, {"id": "b1"}])
    (segment,) = spool.folder.glob("*.open")
    assert segment == spare and segment.stat().st_size == SPARE_BYTES  # records overwrite its zeros
    assert [r["id"] for r in read_segment(segment)] == ["b0", "b1"]
    spool.flush()
    assert not any(spool.folder.glob(f"*{SEALED}"))
    spool.close()
    assert sorted(r["id"] for r in sink.records) == sorted([f"a{i}" for i in range(100)] + ["b0", "b1"])


def test_a_killed_spool_in_a_spare_keeps_what_precedes_the_first_zero(tmp_path: Path) -> None:
    folder = tmp_path / "dead"
    folder.mkdir()
    (folder / "LOCK").touch()
    # acknowledged lines, then zeros, then a page of a group the kill interrupted (never acknowledged)
    body = b'{"id":"a"}\n{"id":"b"}\n' + bytes(4096) + b'{"id":"late"}\n' + bytes(4096)
    (folder / "00000003.open").write_bytes(body)
    (folder / SPARE).write_bytes(bytes(4096))
    sink = Sink()
    assert recover(tmp_path, sink) == 2
    assert [r["id"] for r in sink.records] == ["a", "b"]
    assert not folder.exists()


@both_modes
def test_a_quiet_spool_writes_no_zeros(tmp_path: Path, mode: str) -> None:
    spool = Spool(tmp_path, Sink(), seal_seconds=0.05, drain_seconds=0.01, sync=mode)
    spool.start()
    for i in range(5):
        spool.append_sync([{"id": str(i)}])
        time.sleep(0.1)  # each segment sealed by age, not size
    assert not _spares(spool.folder) and not (spool.folder / SPARE).exists()
    spool.close()


def test_an_async_append_that_fails_is_not_acknowledged(tmp_path: Path) -> None:
    flag = tmp_path / "disk-full"
    flag.touch()
    spool = Spool(tmp_path / "spool", Sink(), seal_seconds=60, writer=_failing_writer(flag), sync=BEFORE_ANSWER)
    spool.start()

    async def main() -> list[object]:
        return await asyncio.gather(*(spool.append([{"id": str(i)}]) for i in range(3)), return_exceptions=True)

    assert all(isinstance(r, SpoolUnavailable) for r in asyncio.run(main()))
    flag.unlink()
    assert asyncio.run(main()) == [None, None, None]
    spool.close()


def test_a_killed_writer_fails_what_it_did_not_acknowledge_and_another_takes_over(tmp_path: Path) -> None:
    sink = Sink()
    spool = Spool(tmp_path, sink, seal_seconds=60, sync=BEFORE_ANSWER)
    spool.start()
    spool.append_sync([{"id": "before"}])
    assert spool._writer is not None
    os.kill(spool._writer.pid, signal.SIGSTOP)  # a stalled disk: the next group waits unacknowledged

    async def stalled() -> list[object]:
        loop = asyncio.get_running_loop()
        loop.call_later(0.2, os.kill, spool._writer.pid, signal.SIGKILL)  # type: ignore[union-attr]
        return await asyncio.gather(spool.append([{"id": "unacknowledged"}]), return_exceptions=True)

    (outcome,) = asyncio.run(stalled())
    assert isinstance(outcome, SpoolUnavailable)  # never told it was kept: the caller got no answer
    time.sleep(1.0)  # a writer is started again at most once a second
    spool.append_sync([{"id": "after"}])
    spool.close()
    ids = [r["id"] for r in sink.records]
    assert "before" in ids and "after" in ids and ids.count("before") == 1


def test_the_writer_holds_the_folder_so_it_is_not_recovered_under_it(tmp_path: Path) -> None:
    sink = Sink()
    spool = Spool(tmp_path, sink, seal_seconds=60, sync=BEFORE_ANSWER)
    spool.start()
    spool.append_sync([{"id": "x"}])
    assert spool._lock_file is not None and spool._writer is not None
    spool._lock_file.close()  # as if the server died: only the writer holds the lock now
    spool._lock_file = None
    other = Sink()
    assert recover(tmp_path, other) == 0  # the writer is alive: the folder is not taken
    spool.close()
    assert [r["id"] for r in sink.records] == ["x"]


@both_modes
def test_close_writes_what_was_handed_over(tmp_path: Path, mode: str) -> None:
    sink = Sink()
    spool = Spool(tmp_path, sink, seal_seconds=60, sync=mode)
    spool.start()

    async def main() -> None:
        await asyncio.gather(*(spool.append([{"id": str(i)}]) for i in range(50)))

    asyncio.run(main())
    spool.close()
    assert sorted(int(r["id"]) for r in sink.records) == list(range(50))


def test_a_writer_killed_with_a_frame_half_sent_leaves_the_next_writer_whole_frames(tmp_path: Path) -> None:
    sink = Sink()
    spool = Spool(tmp_path, sink, seal_seconds=60, sync=BEFORE_ANSWER)
    spool.start()
    assert spool._writer is not None
    os.kill(spool._writer.pid, signal.SIGSTOP)  # it reads nothing: the frames' pipe fills, the rest waits
    big = "x" * 10_000

    async def stuffed() -> list[object]:
        appends = [spool.append([{"id": f"big{i}", "pad": big}]) for i in range(300)]  # about 3 MB
        asyncio.get_running_loop().call_later(0.3, os.kill, spool._writer.pid, signal.SIGKILL)  # type: ignore[union-attr]
        return await asyncio.gather(*appends, return_exceptions=True)

    outcomes = asyncio.run(stuffed())
    assert all(isinstance(o, SpoolUnavailable) for o in outcomes)
    time.sleep(1.0)

    async def after() -> None:
        appends = asyncio.gather(*(spool.append([{"id": f"after{i}"}]) for i in range(5)))
        await asyncio.wait_for(appends, 20)  # a writer fed half a frame would wait for its rest forever

    asyncio.run(after())  # the new writer got whole frames only: every record acknowledged and readable
    spool.close()
    assert sorted(r["id"] for r in sink.records) == [f"after{i}" for i in range(5)]


def test_a_seal_that_fails_closes_its_segment_once_and_leaves_it_for_recovery(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from medops.serving.spool_segments import Segments

    segments = Segments(tmp_path, seal_records=2)
    segments._want_spare = True
    segments.prepare_spare()  # the next segment begins as zeros, so its seal cuts them off
    closed: list[int] = []
    real_close = os.close
    monkeypatch.setattr(os, "close", lambda fd: (closed.append(fd), real_close(fd)))

    def failing(*_args: object) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "ftruncate", failing)
    segments.write(b'{"id":"a"}\n{"id":"b"}\n')  # full at two records: retired
    with pytest.raises(OSError):
        segments.seal_retired()
    segments.seal_retired()  # nothing left to seal: the failed one is not retried on a closed descriptor
    assert len(closed) == 1
    (left,) = tmp_path.glob("*.open")
    assert [r["id"] for r in read_segment(left)] == ["a", "b"]  # what recovery drains


# --- background: written by the server into the file cache, synced by a process of its own ---------


def _sync_state(spool: Spool) -> tuple[int, int, int]:
    assert spool._sync_state is not None
    return read_state(spool._sync_state)


def test_background_keeps_a_group_in_the_file_cache_before_it_returns_and_syncs_it_soon(tmp_path: Path) -> None:
    spool = Spool(tmp_path, Sink(), seal_seconds=60, sync=BACKGROUND)
    spool.start()
    assert spool._writer is None and spool._syncer is not None  # this process writes; another one syncs

    async def main() -> None:
        kept = [spool.append([{"id": str(i)}]) for i in range(20)]
        (segment,) = [p for p in spool.folder.glob("*.open") if p.stat().st_size]
        # in the file before anything is awaited: what a kill -9 leaves
        assert [r["id"] for r in read_segment(segment)] == [str(i) for i in range(20)]
        await asyncio.gather(*kept)  # each already done: awaiting it does not wait

    _, rounds, syncs = _sync_state(spool)
    asyncio.run(main())
    assert spool.stats.groups == 20
    deadline = time.monotonic() + 10
    while _sync_state(spool)[1] < rounds + 2 and time.monotonic() < deadline:  # a whole round after the write
        time.sleep(0.005)
    assert _sync_state(spool)[2] > syncs  # then made durable by the syncer, without anyone waiting for it
    spool.close()


def test_background_makes_the_next_segment_ahead_so_no_request_makes_a_file(tmp_path: Path) -> None:
    sink = Sink()
    spool = Spool(tmp_path, sink, seal_records=10, seal_seconds=60, sync=BACKGROUND)
    spool.start()
    assert [p.name for p in spool.folder.glob("*.open")] == ["00000001.open"]  # made at start, empty
    made: list[str] = []
    real_open = os.open

    def watched(path: Any, flags: int, *args: Any) -> int:
        if flags & os.O_CREAT and Path(path).name[0].isdigit():
            made.append(Path(path).name)
        return real_open(path, flags, *args)

    for i in range(30):  # three segments' worth, each sealed for its size
        os.open = watched  # type: ignore[assignment]
        try:
            spool.append_sync([{"id": str(i)}])
        finally:
            os.open = real_open
        deadline = time.monotonic() + 10
        while i % 10 == 9 and not (spool.folder / f"{(i + 1) // 10 + 1:08d}.open").exists():
            assert time.monotonic() < deadline
            time.sleep(0.005)
    assert made == []  # the appends only opened segments the syncer had made
    spool.close()
    assert sorted(int(r["id"]) for r in sink.records) == list(range(30))


def test_background_a_refused_write_fails_its_requests_and_the_next_ones_are_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = Sink()
    spool = Spool(tmp_path, sink, seal_seconds=60, sync=BACKGROUND)
    spool.start()
    full = True
    real_pwrite = os.pwrite

    def pwrite(fd: int, data: bytes, offset: int) -> int:
        if full:
            raise OSError(28, "No space left on device")
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", pwrite)

    async def one(i: int) -> None:
        await spool.append([{"id": str(i)}])  # raises at once: the write was made, and refused, in the call

    async def main() -> list[object]:
        return await asyncio.gather(*(one(i) for i in range(3)), return_exceptions=True)

    assert all(isinstance(r, SpoolUnavailable) for r in asyncio.run(main()))  # no answer without its record
    full = False
    assert asyncio.run(main()) == [None, None, None]
    spool.close()
    assert sorted(r["id"] for r in sink.records) == ["0", "1", "2"]


def test_background_a_failed_sync_stops_the_log_keeping_anything(tmp_path: Path) -> None:
    spool = Spool(tmp_path, Sink(), seal_seconds=60, sync=BACKGROUND, syncer=FAILING_SYNCER)
    spool.start()
    deadline = time.monotonic() + 30
    while spool.keeping and time.monotonic() < deadline:
        time.sleep(0.005)
    assert not spool.keeping  # /readyz says so: the traffic goes elsewhere
    # the kernel may have dropped what it could not write: answering on would claim records it lost
    with pytest.raises(SpoolUnavailable):
        spool.append_sync([{"id": "after"}])

    async def main() -> None:
        await spool.append([{"id": "after, on the event loop"}])

    with pytest.raises(SpoolUnavailable):
        asyncio.run(main())
    spool.close()


def test_background_a_seal_whose_sync_fails_stops_the_log_keeping_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = Spool(tmp_path, Sink(), seal_records=2, seal_seconds=60, sync=BACKGROUND)
    spool.start()

    def failing(_fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", failing)
    spool.append_sync([{"id": "1"}, {"id": "2"}])  # a full segment: the drainer thread seals it at once
    deadline = time.monotonic() + 30
    while spool.keeping and time.monotonic() < deadline:
        time.sleep(0.005)
    assert not spool.keeping
    with pytest.raises(SpoolUnavailable):
        spool.append_sync([{"id": "after"}])
    monkeypatch.undo()
    spool.close()


def test_background_a_syncer_that_dies_is_started_again(tmp_path: Path) -> None:
    spool = Spool(tmp_path, Sink(), seal_seconds=60, drain_seconds=0.05, sync=BACKGROUND)
    spool.start()
    first = spool._syncer
    assert first is not None
    time.sleep(1.0)  # started again at most once a second
    first.kill()
    first.wait()
    deadline = time.monotonic() + 30
    while (spool._syncer is first or spool._syncer is None) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert spool._syncer is not first and spool._syncer.poll() is None
    assert spool.keeping
    _, rounds, syncs = _sync_state(spool)
    spool.append_sync([{"id": "kept after the restart"}])
    while _sync_state(spool)[2] == syncs and time.monotonic() < deadline:
        time.sleep(0.005)
    assert _sync_state(spool)[2] > syncs
    spool.close()


def test_background_records_survive_a_kill_9_of_the_process_that_wrote_them(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from medops.serving.spool import Spool\n"
        "spool = Spool(Path(sys.argv[1]), lambda records: None, seal_seconds=60, sync='background')\n"
        "spool.start()\n"
        "for i in range(200):\n"
        "    spool.append_sync([{'id': str(i)}])\n"
        "print('kept', flush=True)\n"
        "import time; time.sleep(60)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stdout.readline().strip() == "kept"
    os.kill(child.pid, signal.SIGKILL)  # no close, no seal, perhaps no sync yet
    child.wait(30)
    sink = Sink()
    assert recover(tmp_path, sink) == 200
    assert [r["id"] for r in sink.records] == [str(i) for i in range(200)]


def test_a_segment_made_ahead_in_background_has_its_name_synced_by_the_syncer_not_under_the_write_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A directory's sync waits on the journal; the lock it would hold is the one every group's write takes."""
    from medops.serving import spool_segments, spool_syncer
    from medops.serving.spool_segments import Segments

    synced: list[bool] = []  # per directory sync: was the write lock held?
    segments = Segments(tmp_path, dsync=False)
    monkeypatch.setattr(spool_segments, "fsync_dir", lambda _folder: synced.append(segments._lock.locked()))
    monkeypatch.setattr(spool_syncer, "fsync_dir", lambda _folder: synced.append(segments._lock.locked()))
    segments.prepare_spare()
    assert (tmp_path / f"{1:08d}.open").exists() and synced == []
    segments.write(b'{"id":"1"}\n')
    spool_syncer.Synced(tmp_path).round()
    assert synced == [False]  # the name made durable with the record, by the syncer, outside the lock
    dsync = Segments(tmp_path / "strict", dsync=True)
    (tmp_path / "strict").mkdir()
    monkeypatch.setattr(spool_segments, "fsync_dir", lambda _folder: synced.append(dsync._lock.locked()))
    dsync._want_spare = True  # as after a busy segment
    dsync.prepare_spare()
    assert synced == [False, True]  # before_answer: the name is on disk before any record in it is acknowledged
