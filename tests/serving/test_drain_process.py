"""A busy server's spool is drained by a process of its own, into SQLite or PostgreSQL; a quiet one
by its thread. Nothing is lost when that process ends, whenever it ends."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from medops.serving.prediction_log import open_spool
from medops.serving.spool import Spool
from medops.store.schema import Prediction
from medops.workspace import Workspace


def _records(n: int) -> list[dict[str, Any]]:
    return [
        {
            "id": str(uuid.uuid4()),
            "at": "2026-12-03T09:00:00.000001+00:00",
            "model": "readmission",
            "version": 1,
            "bundle_sha256": "0" * 64,
            "variant": "champion",
            "request_id": uuid.uuid4().hex,
            "caller": "pat",
            "entity": None,
            "inputs": '{"age":61}',
            "output": '{"probability":0.25,"decision":0,"threshold":0.4}',
            "explanation": None,
            "latency_ms": 0.4,
        }
        for _ in range(n)
    ]


def _logged(ws: Workspace) -> int:
    with ws.db.read() as session:
        return int(session.scalar(select(func.count()).select_from(Prediction)) or 0)


def _until(check: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_busy_spool_is_drained_by_its_process(workspace: Workspace) -> None:
    spool = open_spool(workspace)
    spool.seal_records, spool.drain_seconds = 50, 0.05
    spool.offload_bytes = 1  # any sealed segment is busy enough for a process
    spool.start()
    spool.append_sync(_records(50))  # a full segment: busy enough for a process
    _until(lambda: spool._offloaded is not None)
    process = spool._offloaded.process  # type: ignore[union-attr]
    _until(lambda: _logged(workspace) == 50)  # drained by the process: the thread no longer drains
    assert spool.stats.drained == 0 and process.is_alive()
    spool.append_sync(_records(7))
    spool.close()  # the process's last drain, then the server's for anything left
    assert _logged(workspace) == 57
    assert not process.is_alive()


def test_the_thread_drains_again_when_the_process_ends(workspace: Workspace) -> None:
    spool = open_spool(workspace)
    spool.seal_records, spool.drain_seconds = 20, 0.05
    spool.offload_bytes = 1
    spool.start()
    spool.append_sync(_records(20))
    _until(lambda: spool._offloaded is not None)
    process = spool._offloaded.process  # type: ignore[union-attr]
    _until(lambda: _logged(workspace) == 20)
    process.kill()  # killed between two drains
    process.join()
    spool.append_sync(_records(20))
    _until(lambda: _logged(workspace) == 40)
    assert spool._offloaded is None and spool.stats.drained == 20
    spool.close()


def test_a_segment_of_few_large_lines_is_busy(tmp_path: Path) -> None:
    """Busy is told by bytes, not lines: a line may hold a whole request of many rows."""
    started: list[Path] = []

    def offload(folder: Path) -> Any:
        started.append(folder)
        return None  # no process after all: the thread drains, as when one can't start

    spool = Spool(tmp_path, lambda records: None, seal_seconds=0.05, drain_seconds=0.02)
    spool.offload = offload
    spool.start()
    big = [dict(r, inputs=json.dumps({"rows": ["x" * 100] * 2_000})) for r in _records(3)]  # 600 KB in 3 lines
    spool.append_sync(big)
    _until(lambda: started != [])
    spool.close()


def test_a_quiet_spool_starts_no_process(tmp_path: Path) -> None:
    drained: list[dict[str, Any]] = []
    started: list[Path] = []

    def offload(folder: Path) -> Any:
        started.append(folder)

    spool = Spool(tmp_path, drained.extend, seal_seconds=0.05, drain_seconds=0.02)
    spool.offload = offload
    spool.start()
    spool.append_sync(_records(3))
    _until(lambda: len(drained) == 3)
    spool.close()
    assert started == []


def test_a_line_that_is_no_prediction_record_is_skipped_not_fatal(
    workspace: Workspace, caplog: pytest.LogCaptureFixture
) -> None:
    # an edited or foreign segment left in the spool must not keep the next server from starting
    from medops.serving.prediction_log import recover, spool_root

    folder = spool_root(workspace) / "dead"
    folder.mkdir(parents=True)
    (folder / "LOCK").touch()
    good = _records(2)
    lines = [json.dumps(good[0]), json.dumps({"x": 1}), json.dumps(["not", "a", "record"]), json.dumps(good[1])]
    (folder / "00000001.log").write_text("\n".join(lines) + "\n")
    with caplog.at_level("ERROR", logger="medops.spool"):
        assert recover(workspace) == 4  # lines read
    assert _logged(workspace) == 2
    assert "no field 'id'" in caplog.text and "TypeError" in caplog.text
    assert not folder.exists()
