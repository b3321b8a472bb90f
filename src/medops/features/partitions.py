"""Feature tables and point-in-time joins, split by entity hash when the executor is a cluster.

Each task is a plain function of picklable arguments (a view, a Parquet path, an Arrow
table, a partition number), so the same code runs in this process or on a Dask worker.
Partition i holds the entities whose DuckDB ``hash`` is i modulo the partition count;
sorting the concatenated parts gives the single-process result exactly.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from medops.data.duck import connect, query
from medops.features.executor import Executor
from medops.features.offline import ENTITY, SEQ, build_feature_table, build_rows, finish_table
from medops.features.pit import ROW, JoinOptions, join_view
from medops.features.views import FeatureView
from medops.features.views import _quote as quote


def _sql_path(path: Path | str) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def table_part(view: FeatureView, source: str, part: int, parts: int) -> pa.Table:
    """The feature table of one partition of the source (row numbers are the file's own)."""
    con = connect()
    try:
        rows = con.sql(
            f"SELECT * EXCLUDE (file_row_number), file_row_number AS {SEQ} "
            f"FROM read_parquet({_sql_path(source)}, file_row_number = true) "
            f"WHERE hash(CAST({quote(view.entity)} AS VARCHAR)) % {parts} = {part}"
        ).to_arrow_table()
        return build_rows(con, view, rows)
    finally:
        con.close()


def table_partitioned(
    executor: Executor, view: FeatureView, source: Path, con: duckdb.DuckDBPyConnection | None = None
) -> pa.Table:
    """The view's whole feature table, in (entity, time, created, row) order.

    ``con`` (a sandboxed cursor of the workspace's database) runs the local work; without
    it, a connection is opened for the call."""
    with _connection(con) as use:
        if executor.partitions == 1:
            return build_feature_table(use, view, pq.read_table(source))
        parts = executor.map(
            table_part, [(view, str(source), i, executor.partitions) for i in range(executor.partitions)]
        )
        rows = query(use, f"SELECT * FROM t ORDER BY {ENTITY}, _ts, _c, _seq", t=pa.concat_tables(parts))
        return finish_table(use, view, rows)


def join_part(
    view: FeatureView, keys: pa.Table, feats: str, entity: str, options: JoinOptions, part: int, parts: int
) -> pa.Table:
    """One partition's point-in-time join: its labels against its entities' feature rows."""
    con = connect()
    try:
        rows = con.sql(
            f"SELECT * FROM read_parquet({_sql_path(feats)}) WHERE hash({ENTITY}) % {parts} = {part}"
        ).to_arrow_table()
        return join_view(con, view, keys, rows, entity, options)
    finally:
        con.close()


def join_partitioned(
    executor: Executor,
    view: FeatureView,
    keys: pa.Table,
    feats: Path,
    entity: str,
    options: JoinOptions,
    con: duckdb.DuckDBPyConnection | None = None,
) -> pa.Table:
    """``_row``, ``_event_time`` and the view's features for every key row, in ``_row`` order.

    ``con`` (a cursor of the workspace's file-reading database) runs the local work; without
    it, a connection is opened for the call."""
    position = keys.schema.get_field_index(entity)
    if position >= 0 and not pa.types.is_string(keys.schema.field(position).type):
        keys = keys.set_column(position, entity, pc.cast(keys.column(entity), pa.string()))  # ids are text
    with _connection(con) as use:
        if executor.partitions == 1:
            # DuckDB's own reader is the faster scan, but its threads hand rows to a sum or mean in
            # another order than an Arrow dataset scan does, and a float sum's last bit follows the
            # order: views with aggregates keep the Arrow scan, so their training sets keep their bytes.
            source = ds.dataset(feats, format="parquet") if view.aggregates else Path(feats)
            return join_view(use, view, keys, source, entity, options)
        n = executor.partitions
        bucket = query(use, f"SELECT hash({quote(entity)}) % {n} AS b FROM k", k=keys).column("b")
        args = []
        for i in range(n):
            mask = pc.equal(bucket, pa.scalar(i, bucket.type))
            args.append((view, keys.filter(mask), str(feats), entity, options, i, n))
        parts = executor.map(join_part, args)
        return query(use, f"SELECT * FROM t ORDER BY {ROW}", t=pa.concat_tables(parts))


@contextmanager
def _connection(con: duckdb.DuckDBPyConnection | None) -> Iterator[duckdb.DuckDBPyConnection]:
    """The cursor given, or a connection of the call's own (closed after it)."""
    if con is not None:
        yield con
        return
    own = connect()
    try:
        yield own
    finally:
        own.close()
