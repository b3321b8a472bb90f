"""One pair of DuckDB databases per workspace: reused by every call, sandboxed apart, closed with it."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from medops.features import FeatureStore
from medops.features.connections import DuckConnections, duck
from tests.factories import labels_frame

pytestmark = pytest.mark.usefixtures("pseudonym_key")


def test_every_call_of_every_store_on_a_workspace_uses_its_two_databases(store: FeatureStore) -> None:
    store.apply("alice")
    store.training_table(labels_frame(), ["vitals", "people", "age"], timestamp="at")
    with FeatureStore(store.ws, store.features, executor="local", online_store="sqlite") as other:
        other.materialize("admin")
        assert other.check("admin").ok
        assert other.duck is store.duck
    assert store.duck.opened == 2  # the file reader and the sandbox, once each


def test_the_databases_close_with_the_workspace(store: FeatureStore) -> None:
    connections = store.duck
    with connections.reader() as con:
        assert con.execute("SELECT 1").fetchall() == [(1,)]
    store.ws.close()
    assert duck(store.ws) is not connections  # a workspace used again opens new ones


def test_the_sandbox_holds_and_does_not_reach_the_reader(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"x": [1, 2]}), path)
    connections = DuckConnections()
    try:
        with connections.sandboxed() as con:
            with pytest.raises(duckdb.PermissionException):
                con.execute(f"SELECT * FROM read_parquet('{path}')").fetchall()
            with pytest.raises(duckdb.Error):
                con.execute("SET enable_external_access = true")
        with connections.reader() as con:
            assert con.execute(f"SELECT sum(x) FROM read_parquet('{path}')").fetchall() == [(3,)]
            assert con.execute("SELECT current_setting('TimeZone')").fetchall() == [("UTC",)]
        with connections.sandboxed() as con:
            assert con.execute("SELECT current_setting('TimeZone')").fetchall() == [("UTC",)]
    finally:
        connections.close()


def test_threads_share_the_databases_with_a_cursor_each(store: FeatureStore) -> None:
    store.apply("alice")
    labels = labels_frame()
    expected = store.training_table(labels, ["vitals", "people", "age"], timestamp="at")
    with ThreadPoolExecutor(4) as pool:
        results = list(
            pool.map(lambda _: store.training_table(labels, ["vitals", "people", "age"], timestamp="at"), range(8))
        )
    assert all(r.equals(expected) for r in results)
    assert store.duck.opened == 2
