"""Bulk reads as Arrow: the same rows SQLAlchemy reads, typed, from either backend, read-only."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from medops.errors import StoreError
from medops.serving import prediction_log
from medops.serving.prediction_log import PredictionFilter, text_pages
from medops.store.arrow_reads import arrow_batches
from medops.workspace import Workspace

START = datetime(2026, 10, 1, tzinfo=UTC)


def _log(ws: Workspace, count: int) -> list[dict[str, object]]:
    records = [
        {
            "id": str(uuid.uuid4()),
            "at": (START + timedelta(minutes=7 * i)).isoformat(),
            "model": "m" if i % 3 else "other",
            "version": 1 + i % 2,
            "bundle_sha256": "0" * 64,
            "variant": "champion",
            "request_id": uuid.uuid4().hex,
            "caller": "ehr",
            "entity": None if i % 4 == 0 else f"patient_id=pat_{i:04d}",  # the first rows have none
            "inputs": json.dumps({"age": 40 + i % 50, "sex": "F" if i % 2 else "M"}),
            "output": json.dumps({"probability": i / count}),
            "explanation": None,
            "latency_ms": 1.0,
        }
        for i in range(count)
    ]
    prediction_log.store(ws)(records)
    return records


def test_pages_hold_exactly_the_rows_the_filter_names(workspace: Workspace) -> None:
    records = _log(workspace, 400)
    since, until = START + timedelta(hours=3), START + timedelta(hours=30)
    where = PredictionFilter(model="m", version=2, since=since, until=until)
    pages = list(text_pages(workspace.db, where))
    table = pa.concat_tables(pages)
    assert table.schema.field("at").type == pa.timestamp("us", tz="UTC")
    wanted = [
        r for r in records
        if r["model"] == "m" and r["version"] == 2 and since <= datetime.fromisoformat(str(r["at"])) < until
    ]  # fmt: skip
    assert len(wanted) > 20 and table.num_rows == len(wanted) == prediction_log.count(workspace, where)
    got = sorted(zip(table.column("at").to_pylist(), table.column("entity").to_pylist(),
                     table.column("inputs").to_pylist(), strict=True))  # fmt: skip
    expected = sorted((datetime.fromisoformat(str(r["at"])), r["entity"], r["inputs"]) for r in wanted)
    assert got == expected  # times to the microsecond, missing entities as nulls, texts as stored


def test_a_read_is_read_only_and_its_failures_are_medops_errors(workspace: Workspace, tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="bulk read .* failed"):
        list(arrow_batches(workspace.db, "INSERT INTO predictions (id) VALUES ('x')"))
    if workspace.db.dialect == "postgresql":  # read-only by the session, not by the statement
        with pytest.raises(StoreError, match="read-only transaction"):
            list(arrow_batches(workspace.db, "CREATE TABLE sneaky AS SELECT 1 AS n"))
        settings = (
            "SELECT current_setting('transaction_read_only') AS ro, current_setting('standard_conforming_strings') AS s"
        )
        (batch,) = arrow_batches(workspace.db, settings)
        assert batch.to_pylist() == [{"ro": "on", "s": "on"}]
    with pytest.raises(StoreError, match="bulk read .* failed"):
        list(arrow_batches(workspace.db, "SELECT nothing FROM nowhere"))
    assert [b.num_rows for b in arrow_batches(workspace.db, "SELECT COUNT(*) AS n FROM predictions")] == [1]


def test_a_sqlite_workspace_in_a_folder_with_an_odd_name(tmp_path: Path) -> None:
    from tests.conftest import new_workspace

    ws = new_workspace(tmp_path / "site #1? 50% done")
    try:
        _log(ws, 12)
        pages = list(text_pages(ws.db, PredictionFilter()))
        assert sum(p.num_rows for p in pages) == 12
    finally:
        ws.close()


def test_a_parameter_is_a_value_never_sql(workspace: Workspace) -> None:
    """On PostgreSQL the parameters are written into the query (the driver streams only unbound queries):
    a quote in a value stays inside its literal."""
    _log(workspace, 20)
    sneaky = PredictionFilter(entity="patient_id=x' OR '1'='1")
    assert sum(p.num_rows for p in text_pages(workspace.db, sneaky)) == 0
    quoted = list(arrow_batches(workspace.db, "SELECT ? AS v, ? AS n", ["it's \\' OR 1=1 --", 7]))
    assert quoted[0].column("v").to_pylist() == ["it's \\' OR 1=1 --"] and quoted[0].column("n").to_pylist() == [7]
    if workspace.db.dialect == "postgresql":
        with pytest.raises(StoreError, match="NUL"):
            list(arrow_batches(workspace.db, "SELECT ? AS v", ["a\x00b"]))
