"""The offline store: a view's feature table, computed from its source dataset with DuckDB.

A feature table holds one row per source event: the entity id, the event time (``_ts``),
the time the row became known (``_c``, from the view's ``created`` column, else the event
time), a sequence number that fixes the order of events sharing a time (``_seq``, the row's
place in the source), whether it is the row a latest-value lookup takes among the rows of
its entity sharing its event time (``_latest``), and one column per feature: its value for a latest-value feature,
the aggregate's input (NULL when the feature's filter excludes the row) otherwise.
Aggregation happens at query time, at each label's own timestamp (see ``pit``).

Rows are sorted by (entity, _ts, _c, _seq), so the same source and definition give the
same bytes, whether computed in one piece or in partitions.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from medops.data.duck import query, sandbox
from medops.features.views import FeatureView, FeatureViewError, python_column, run_python
from medops.features.views import _quote as quote

ROW_GROUP_ROWS = 65_536
ENTITY = "entity_id"
SEQ = "__medops_seq"


def check_view(con: duckdb.DuckDBPyConnection, view: FeatureView, schema: pa.Schema) -> None:
    """Bind every expression of the view against the source's columns; name the field that fails."""
    sandbox(con)  # expressions from the project file compute; they read nothing else
    empty = schema.empty_table()
    for field, column in (("entity", view.entity), ("timestamp", view.timestamp), ("created", view.created)):
        if column is not None and column not in schema.names:
            raise FeatureViewError(
                f"view {view.name}, {field}: source {view.source} has no column {column!r}",
                hint=f"its columns: {', '.join(schema.names)}",
            )
    for field, column in (("timestamp", view.timestamp), ("created", view.created)):
        if column is not None:
            kind = schema.field(column).type
            if not (pa.types.is_timestamp(kind) or pa.types.is_date(kind)):
                raise FeatureViewError(f"view {view.name}, {field}: column {column!r} is {kind}, not a timestamp")
    python = {python_column(f.name): pa.float64() for f in view.features if f.fn is not None}
    for name, kind in python.items():
        empty = empty.append_column(name, pa.array([], kind))
    checks: list[tuple[str, str]] = []
    if view.filter:
        checks.append(("filter", f"SELECT ({view.filter})::BOOLEAN FROM src"))
    for feature in view.features:
        if feature.fn is None and feature.expr is None and feature.agg is None and feature.name not in schema.names:
            raise FeatureViewError(
                f"view {view.name}, features.{feature.name}: source {view.source} has no column {feature.name!r}",
                hint="give the feature an expr, or name it after a column",
            )
        if feature.filter:
            checks.append((f"features.{feature.name}.filter", f"SELECT ({feature.filter})::BOOLEAN FROM src"))
        checks.append((f"features.{feature.name}", f"SELECT {feature.input_sql} FROM src"))
        if feature.agg in ("sum", "mean", "coverage"):
            checks.append((f"features.{feature.name}", f"SELECT sum({feature.input_sql}) FROM src"))
    for field, sql in checks:
        try:
            query(con, sql + " LIMIT 0", src=empty)
        except duckdb.Error as exc:
            raise FeatureViewError(f"view {view.name}, {field}: {_duck_message(exc)}") from None


def _duck_message(exc: duckdb.Error) -> str:
    """DuckDB's first line, without the class name and the caret drawing."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return re.sub(r"^[A-Za-z ]+ Error: ", "", text)


def add_python_features(view: FeatureView, source: pa.Table) -> pa.Table:
    """Run the view's Python features over the source frame; their values join the SQL as columns."""
    python = [f for f in view.features if f.fn is not None]
    if not python:
        return source
    frame = source.to_pandas(types_mapper=pd.ArrowDtype)
    for feature in python:
        assert feature.fn is not None
        array = run_python(feature.fn, frame, f"view {view.name}, features.{feature.name}")
        source = source.append_column(python_column(feature.name), array)
    return source


def feature_table_sql(view: FeatureView) -> str:
    """The SELECT that turns source rows into the view's feature table."""
    ts = f"CAST({quote(view.timestamp)} AS TIMESTAMPTZ)" if view.timestamp else "CAST(NULL AS TIMESTAMPTZ)"
    created = f"CAST({quote(view.created)} AS TIMESTAMPTZ)" if view.created else ts
    columns = ", ".join(f"{f.input_sql} AS {quote(f.name)}" for f in view.features)
    where = [f"{quote(view.entity)} IS NOT NULL"]
    if view.timestamp:
        where.append(f"{quote(view.timestamp)} IS NOT NULL")
    if view.filter:
        where.append(f"({view.filter})")
    rows = (
        f"SELECT CAST({quote(view.entity)} AS VARCHAR) AS {ENTITY}, {ts} AS _ts, "
        f"greatest({ts}, coalesce({created}, {ts})) AS _c, {SEQ} AS _seq, {columns} "
        f"FROM src WHERE {' AND '.join(where)}"
    )
    # _latest marks the row a latest-value lookup takes among rows sharing entity and event
    # time (the later created, then the later source row): computed once here, not per join.
    return (
        f"SELECT *, row_number() OVER (PARTITION BY {ENTITY}, _ts ORDER BY _c DESC, _seq DESC) = 1 AS _latest "
        f"FROM ({rows}) ORDER BY {ENTITY}, _ts, _c, _seq"
    )


def build_rows(con: duckdb.DuckDBPyConnection, view: FeatureView, source: pa.Table) -> pa.Table:
    """The feature rows of some entities' source rows (all rows of each entity), sorted."""
    check_view(con, view, source.schema)  # sandboxes the connection
    source = add_python_features(view, source)
    try:
        return query(con, feature_table_sql(view), src=with_seq(source)).replace_schema_metadata(None)
    except duckdb.Error as exc:
        raise FeatureViewError(f"view {view.name}: computing its features failed: {_duck_message(exc)}") from None


def finish_table(con: duckdb.DuckDBPyConnection, view: FeatureView, rows: pa.Table) -> pa.Table:
    """Add what the backfill guard needs, once per view version rather than once per join.

    With a ``created`` column, a label at t may use rows known by t (``_c <= t``) and takes
    the one among them with the latest event. ``_pos`` numbers the sorted rows, so within an
    entity a higher position is a later (event, created, row); ``_best`` is the highest
    position among the entity's rows known no later than this row (a running max in order
    of knowing); ``_known_last`` marks the last row known at each moment. A join then needs
    one ASOF lookup on those moments and one fetch by position.
    """
    if view.created is None or view.timestamp is None:
        return rows
    numbered = rows.append_column("_pos", pa.array(np.arange(rows.num_rows, dtype=np.int64)))
    sql = (
        f"SELECT *, max(_pos) OVER (PARTITION BY {ENTITY} ORDER BY _c, _ts, _seq "
        "ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS _best, "
        f"_pos = max(_pos) OVER (PARTITION BY {ENTITY}, _c) AS _known_last FROM t ORDER BY _pos"
    )
    return query(con, sql, t=numbered)


def build_feature_table(con: duckdb.DuckDBPyConnection, view: FeatureView, source: pa.Table) -> pa.Table:
    """The view's feature table from its (verified, de-identified) source rows, in one piece."""
    return finish_table(con, view, build_rows(con, view, source))


def with_seq(source: pa.Table, start: int = 0) -> pa.Table:
    """Number the source rows in their stored order (before any partitioning) to break time ties."""
    if SEQ in source.column_names:
        return source
    return source.append_column(SEQ, pa.array(np.arange(start, start + source.num_rows, dtype=np.int64)))


def write_table(table: pa.Table, path: Path) -> None:
    """Parquet with fixed row groups and no pandas metadata: the same rows give the same bytes."""
    text = [f.name for f in table.schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
    pq.write_table(  # dictionaries pay for repeated text (ids, codes), not for measurements
        table.replace_schema_metadata(None),
        path,
        row_group_size=ROW_GROUP_ROWS,
        compression="snappy",
        use_dictionary=text,
    )


def feature_stats(con: duckdb.DuckDBPyConnection, view: FeatureView, table: pa.Table) -> dict[str, Any]:
    """Row and entity counts, the event-time range, and each feature's missing share."""
    names = view.feature_names
    parts = ", ".join(f"avg(({quote(n)} IS NULL)::INT) AS {quote(n)}" for n in names)
    sql = (
        f"SELECT count(*) AS rows, count(DISTINCT {ENTITY}) AS entities, min(_ts) AS first, max(_ts) AS last, "
        f"{parts} FROM t"
    )
    row = query(con, sql, t=table).to_pylist()[0]
    return {
        "rows": row["rows"],
        "entities": row["entities"],
        "first_event": row["first"].isoformat() if row["first"] is not None else None,
        "last_event": row["last"].isoformat() if row["last"] is not None else None,
        "missing_share": {n: (round(float(row[n]), 6) if row[n] is not None else None) for n in names},
    }
