"""The in-process DuckDB that checks and de-identifies ingest chunks.

Ingest runs its per-chunk work as SQL over Arrow tables: DuckDB reads them without a copy,
runs on every core and keeps text in C++ rather than as Python objects (see
docs/architecture.md for the measurements behind the choice). Every connection works in
UTC, so a timestamp without an offset means UTC, as it does for the rest of medops, and
has a memory limit.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

MEMORY_LIMIT = "1GB"
BATCH_ROWS = 8192


def connect(database: Path | None = None, memory_limit: str = MEMORY_LIMIT) -> duckdb.DuckDBPyConnection:
    """In memory, or in ``database`` (a file) when what it holds may outgrow the memory limit.

    Work that outgrows the limit spills to the system's temp folder, never to the current
    folder (DuckDB's default for an in-memory database), which may be a user's project.
    """
    config: dict[str, str | bool | int | float | list[str]] = {
        "memory_limit": memory_limit,
        "temp_directory": str(Path(tempfile.gettempdir()) / "medops-duckdb"),
    }
    con = duckdb.connect(str(database) if database else ":memory:", config=config)
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET enable_progress_bar = false")  # the CLI draws its own; DuckDB's would interleave
    return con


def sandbox(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """No file or network access from here on: for SQL written in a project file, which may
    compute over the tables it is given but not read (or write) anything else. It can't be
    switched back on for this connection."""
    con.execute("SET enable_external_access = false")
    return con


def discard(*cons: duckdb.DuckDBPyConnection | None, database: Path | None = None) -> None:
    """Close the connections and remove their working database file (and its log), if any."""
    for con in cons:
        if con is not None:
            con.close()
    if database is not None:
        for path in (database, database.with_name(database.name + ".wal")):
            path.unlink(missing_ok=True)


def query(
    con: duckdb.DuckDBPyConnection,
    sql: str,
    params: dict[str, Any] | None = None,
    *,
    unordered: bool = False,
    **tables: pa.Table | ds.Dataset,
) -> pa.Table:
    """Run ``sql`` over the given Arrow tables or datasets (by name) and return the result as Arrow.

    The result's rows are in the table's order, so its columns can be put beside the table's own:
    a table is scanned as one batch by one thread. Threads scanning batches of one table in
    parallel were seen to return the rows of a projection out of order (values under another
    row's code), whatever ``preserve_insertion_order`` says. A query whose result does not depend
    on the order (an aggregate, a join on an explicit row number) asks for ``unordered`` and gets
    one batch per thread; a row-wise query that must be fast goes through ``rows``, which scans in
    parallel and puts the rows back by number. A dataset (Parquet files) is scanned lazily, in
    parallel, with only the columns the query uses: never for a result read by position.
    """
    for name, table in tables.items():
        if isinstance(table, ds.Dataset):
            con.register(name, table)
        else:
            con.register(name, _split(table) if unordered else table.combine_chunks())
    try:
        relation = con.sql(sql, params=params or None)
        return relation.to_arrow_table() if relation is not None else pa.table({})
    finally:
        for name in tables:
            con.unregister(name)


ROW = "_medops_row"  # the row number a row-wise query carries through, see ``rows``


def rows(
    con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any] | None = None, *, name: str, table: pa.Table
) -> pa.Table:
    """A row-wise ``sql`` over ``table`` (registered as ``name``), scanned in parallel, its result in the
    table's order: the table gets a ROW column, which ``sql`` must select, and the result is put back in
    ROW order when the threads returned it otherwise (they do, see ``query``), then ROW dropped."""
    numbers = np.arange(table.num_rows, dtype=np.int64)
    out = query(con, sql, params, unordered=True, **{name: table.append_column(ROW, pa.array(numbers))})
    order = out.column(ROW).to_numpy()
    if len(order) != len(numbers):
        raise AssertionError(f"a row-wise query returned {len(order)} rows for {len(numbers)}")
    if not np.array_equal(order, numbers):
        out = out.take(pa.array(np.argsort(order, kind="stable")))
    return out.drop_columns([ROW])


def _split(table: pa.Table) -> pa.Table:
    """The table as several record batches (zero-copy slices): DuckDB scans one batch per thread."""
    if table.num_rows < 2 * BATCH_ROWS:
        return table
    return pa.Table.from_batches(table.to_batches(max_chunksize=BATCH_ROWS), schema=table.schema)


def is_text(kind: pa.DataType) -> bool:
    return bool(pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_null(kind))


def parse_timestamps(con: duckdb.DuckDBPyConnection, values: pa.ChunkedArray | pa.Array) -> tuple[pa.Array, pa.Array]:
    """Timestamps (UTC) from text or dates, and a mask of the non-blank values that are none.

    ISO 8601 goes through DuckDB's cast; the few other spellings (``3/4/2025``) that pandas
    understands get a second chance there, so a file of US dates is slower, not refused.
    """
    table = pa.table({"x": values})
    if is_text(values.type):
        sql = (
            "SELECT TRY_CAST(NULLIF(trim(x), '') AS TIMESTAMPTZ) AS v, "
            "(x IS NOT NULL AND trim(x) <> '' AND v IS NULL) AS bad FROM t"
        )
    else:
        sql = "SELECT TRY_CAST(x AS TIMESTAMPTZ) AS v, (x IS NOT NULL AND v IS NULL) AS bad FROM t"
    out = query(con, sql, t=table)
    parsed, bad = out.column("v").combine_chunks(), out.column("bad").combine_chunks()
    if not is_text(values.type) or not pc.any(bad).as_py():
        return parsed, bad
    where = pc.indices_nonzero(bad)
    retry = pd.to_datetime(
        pd.Series(pc.take(values, where).to_pylist(), dtype="string"), errors="coerce", utc=True, format="mixed"
    )
    fixed = pa.array(retry.dt.as_unit("us"), type=parsed.type)
    return _patch(parsed, where, fixed), _patch(bad, where, pc.is_null(fixed))


def _patch(base: pa.Array, where: pa.Array, values: pa.Array) -> pa.Array:
    """``base`` with the positions ``where`` replaced by ``values``."""
    positions = np.full(len(base), -1, dtype=np.int64)
    positions[where.to_numpy()] = np.arange(len(where))
    mask = pa.array(positions >= 0)
    replacement = pc.take(values, pa.array(np.where(positions >= 0, positions, 0)))
    return pc.if_else(mask, replacement, base)
