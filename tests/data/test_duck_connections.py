"""A workspace's DuckDB databases: the sandbox holds, cursors share them, attached files go away."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from medops.data import duck
from medops.data.duck_connections import DuckConnections


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
            assert con.execute("SELECT current_setting('enable_progress_bar')").fetchall() == [(False,)]
        with connections.sandboxed() as con:
            assert con.execute("SELECT current_setting('TimeZone')").fetchall() == [("UTC",)]
    finally:
        connections.close()


def _attached(connections: DuckConnections) -> set[str]:
    with connections.reader() as con:
        rows = con.execute("SELECT database_name FROM duckdb_databases() WHERE NOT internal").fetchall()
    return {name for (name,) in rows} - {"memory"}


@pytest.mark.parametrize("on_disk", [True, False])
def test_an_attached_database_holds_its_tables_apart_and_goes_away(tmp_path: Path, on_disk: bool) -> None:
    connections = DuckConnections()
    try:
        first = connections.attach(tmp_path / "a.duckdb" if on_disk else None)
        second = connections.attach(tmp_path / "b.duckdb" if on_disk else None)
        for n, attached in enumerate((first, second)):
            attached.con.execute("CREATE TABLE seen (a UBIGINT)")  # the same name in each: no clash
            out = duck.query(attached.con, "INSERT INTO seen SELECT a FROM t", t=pa.table({"a": [n] * (n + 1)}))
            assert out.num_rows == 1
        assert first.con.execute("SELECT count(*) FROM seen").fetchall() == [(1,)]
        assert second.con.execute("SELECT count(*) FROM seen").fetchall() == [(2,)]
        assert _attached(connections) == {first.alias, second.alias}
        first.close()
        second.close()
        assert _attached(connections) == set()
        assert list(tmp_path.iterdir()) == []  # the files and their logs are removed
        assert connections.opened == 1  # both were the reader's
    finally:
        connections.close()


def test_the_contract_and_the_deidentification_run_in_the_sandbox(tmp_path: Path) -> None:
    """Their SQL is compiled from the project file: it computes over the chunk and reads nothing else."""
    from medops.data.contracts import Contract, ContractSpec
    from medops.data.deid import Deidentifier, Pseudonymizer

    secret = tmp_path / "secret.csv"
    secret.write_text("x\n1\n")
    connections = DuckConnections()
    contract = Contract(ContractSpec.model_validate({"table": "t", "columns": {"x": {"type": "int"}}}),
                        databases=connections)  # fmt: skip
    deid = Deidentifier({"x": "keep"}, Pseudonymizer(b"k" * 32), databases=connections)
    try:
        for con in (contract.con, deid.con):
            with pytest.raises(duckdb.PermissionException):
                con.execute(f"SELECT * FROM read_csv('{secret}')").fetchall()
        assert connections.opened == 1  # both on the workspace's sandboxed database
    finally:
        contract.close()
        deid.close()
        connections.close()


def test_an_attached_file_goes_even_when_the_databases_closed_first(tmp_path: Path) -> None:
    """An ingest cut short by the workspace closing: its working file is still removed."""
    connections = DuckConnections()
    attached = connections.attach(tmp_path / "keys.duckdb")
    attached.con.execute("CREATE TABLE seen (a UBIGINT)")
    connections.close()
    attached.close()
    assert list(tmp_path.iterdir()) == []
