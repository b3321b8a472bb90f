"""The spool keeps every acknowledged record, whatever happens after the acknowledgement."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from medops.serving.spool import SEALED, Spool, SpoolUnavailable, read_segment, recover


class Sink:
    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.fail = False

    def __call__(self, records: list[dict[str, Any]]) -> None:
        if self.fail:
            raise ConnectionError("database down")
        self.records.extend(records)


def test_groups_are_fsynced_and_drained(tmp_path: Path) -> None:
    sink = Sink()
    spool = Spool(tmp_path, sink, seal_seconds=60)
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


def test_async_append_waits_for_the_write(tmp_path: Path) -> None:
    sink = Sink()
    spool = Spool(tmp_path, sink, seal_seconds=60)
    spool.start()

    async def main() -> None:
        await asyncio.gather(*(spool.append([{"id": str(i)}]) for i in range(20)))

    asyncio.run(main())
    written = [r for p in spool.folder.glob("*.open") for r in read_segment(p)]
    assert len(written) == 20  # on disk before append returned, not yet in the sink
    assert spool.stats.groups == 1  # handed over in one turn of the loop: one write, one fsync
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


def test_a_live_spool_is_not_taken(tmp_path: Path) -> None:
    sink = Sink()
    spool = Spool(tmp_path, sink, seal_seconds=60)
    spool.start()
    spool.append_sync([{"id": "x"}])
    other = Sink()
    assert recover(tmp_path, other) == 0 and other.records == []
    spool.close()
    assert [r["id"] for r in sink.records] == ["x"]


def test_sink_down_keeps_segments_until_it_is_back(tmp_path: Path) -> None:
    sink = Sink()
    sink.fail = True
    spool = Spool(tmp_path, sink, seal_seconds=60)
    spool.start()
    spool.append_sync([{"id": "1"}, {"id": "2"}])
    with pytest.raises(ConnectionError):
        spool.flush()
    spool.close()  # the sink is still down: the sealed segment stays for recovery
    assert sink.records == []
    sink.fail = False
    assert recover(tmp_path, sink) == 2
    assert [r["id"] for r in sink.records] == ["1", "2"]


def test_a_failed_write_is_not_acknowledged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spool = Spool(tmp_path, Sink(), seal_seconds=60)
    spool.start()

    def full(_fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(SpoolUnavailable):
        spool.append_sync([{"id": "lost"}])
    monkeypatch.undo()
    spool.append_sync([{"id": "kept"}])
    spool.close()


def test_records_must_be_json(tmp_path: Path) -> None:
    spool = Spool(tmp_path, Sink())
    spool.start()
    with pytest.raises(ValueError):
        spool.append_sync([{"probability": float("nan")}])
    spool.close()
