"""A window's rows from the log: pages grouped for parsing give the same window as pages parsed one by one."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest

from medops.caller import Caller
from medops.monitoring import sources
from medops.services import Services
from medops.store import arrow_reads
from medops.workspace import Workspace
from tests.monitoring.conftest import NOVEMBER, OCTOBER

pytestmark = pytest.mark.usefixtures("pseudonym_key")


def test_pages_are_joined_without_losing_or_reordering_rows() -> None:
    pages = [
        pa.table({"n": list(range(start, start + size))}) for start, size in ((0, 3), (3, 4), (7, 5), (12, 2), (14, 1))
    ]
    grouped = list(sources._grouped(iter(pages), 6))
    assert [t.num_rows for t in grouped] == [7, 7, 1]  # 3+4 and 5+2 reach 6; the last page is what is left
    assert [v for t in grouped for v in t.column("n").to_pylist()] == list(range(15))
    assert list(sources._grouped(iter([]), 6)) == []


def test_a_window_is_the_same_however_its_pages_are_grouped(
    monitored: tuple[Workspace, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    ws, _ = monitored
    service = Services(ws).monitoring
    monkeypatch.setattr(arrow_reads, "SQLITE_BATCH_ROWS", 64)  # many pages from SQLite (PostgreSQL's are by size)
    documents = []
    for parse_rows in (1, 200):  # each page alone; pages joined into groups of at least 200 rows
        monkeypatch.setattr(sources, "PARSE_ROWS", parse_rows)
        (window,) = service.run(Caller("ming"), "readmission", since=OCTOBER, until=NOVEMBER).windows
        assert window.rows == 900
        documents.append(service.show(Caller("ming"), window.id)[1])
    first, second = documents
    # the same counts and verdicts; a statistic summed over chunks in another order may differ in its last bit
    assert _rounded(first["features"]) == _rounded(second["features"])
    assert _rounded(first["prediction"]) == _rounded(second["prediction"])
    assert [f["drifted"] for f in first["features"].values()] == [f["drifted"] for f in second["features"].values()]


def _rounded(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    if isinstance(value, float):
        return float(f"{value:.12g}")
    return value
