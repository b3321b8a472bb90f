"""Point-in-time joins: each label row sees only what was known at its own timestamp.

For a label at time t and a view's feature table, a row is usable when its entity matches,
its event time is at or before t, and (by default) it was known by t: its created time is
at or before t too, so a late backfill never reaches a label that could not have seen it.

- Latest-value features take the usable row with the latest event time (ties: the later
  created time, then the later source row), then drop values older than the TTL. DuckDB's
  ASOF JOIN does it in one pass. With the backfill guard on, the ASOF key is the time a
  row became known, and each key carries the latest event known by then (a running max
  computed with the feature table), so the one-inequality ASOF join still answers a
  two-inequality question.
- Aggregates (count, sum, mean, min, max, days_since_last) group the usable rows inside
  each feature's window; coverage unites [event, event + days) intervals inside its window
  (overlaps count once), which is the proportion of days covered.

Label rows are never merged or dropped: each keeps its ``_row`` number, duplicates included.

The join's SQL is built here from feature and entity names (checked against
``[a-z][a-z0-9_]*`` and quoted), durations and numbers; the project file's expressions ran
when the table was built. So the join may run on a connection that reads files, and
reads a stored table with DuckDB's own Parquet reader (see ``connections``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds

from medops.data.duck import query
from medops.features.offline import ENTITY
from medops.features.views import Feature, FeatureView
from medops.features.views import _quote as quote

ROW = "_row"
TIME = "event_timestamp"
EVENT_TIME = "_event_time"


@dataclass(frozen=True)
class JoinOptions:
    """``backfill_guard``: ignore rows created after the label time (the default)."""

    backfill_guard: bool = True


def _seconds(delta: timedelta) -> str:
    return f"to_microseconds({int(delta.total_seconds() * 1_000_000)})"


def latest_sql(view: FeatureView, labels_entity: str, options: JoinOptions) -> str:
    """ASOF join of the labels to the view's latest values (and the event time they carry)."""
    names = [f.name for f in view.latest]
    ent = quote(labels_entity)
    if view.timestamp is None:  # static attributes: the last row per entity, no time involved
        cols = ", ".join(f"f.{quote(n)}" for n in names)
        return (
            f"WITH f AS (SELECT * FROM feats QUALIFY row_number() OVER (PARTITION BY {ENTITY} ORDER BY _seq DESC) = 1) "
            f"SELECT l.{ROW}, CAST(NULL AS TIMESTAMPTZ) AS {EVENT_TIME}{', ' + cols if cols else ''} "
            f"FROM labels l LEFT JOIN f ON l.{ent} = f.{ENTITY}"
        )
    ttl = f"l.{TIME} - f._ts <= {_seconds(view.ttl)}" if view.ttl else "TRUE"
    picked = ", ".join(f"CASE WHEN {ttl} THEN f.{quote(n)} END AS {quote(n)}" for n in names)
    if options.backfill_guard and view.created:
        # The table carries, for each moment a row became known, the position of the latest
        # event known by then (see offline.finish_table): ASOF on that moment, then fetch
        # the row at that position for each label.
        fetched = ", ".join(f"CASE WHEN {ttl} THEN f.{quote(n)} END AS {quote(n)}" for n in names)
        return (
            f"WITH k AS (SELECT {ENTITY}, _c AS _k, _best FROM feats WHERE _known_last), "
            f"a AS (SELECT l.{ROW}, l.{TIME}, k._best FROM labels l ASOF LEFT JOIN k "
            f"ON l.{ent} = k.{ENTITY} AND l.{TIME} >= k._k) "
            f"SELECT l.{ROW}, f._ts AS {EVENT_TIME}{', ' + fetched if fetched else ''} "
            "FROM a l LEFT JOIN feats f ON f._pos = l._best"
        )
    cols = "".join(f", {quote(n)}" for n in names)
    source = f"SELECT {ENTITY}, _ts AS _k, _ts{cols} FROM feats WHERE _latest"
    return (
        f"WITH f AS ({source}) "
        f"SELECT l.{ROW}, f._ts AS {EVENT_TIME}{', ' + picked if picked else ''} "
        f"FROM labels l ASOF LEFT JOIN f ON l.{ent} = f.{ENTITY} AND l.{TIME} >= f._k"
    )


def _usable(options: JoinOptions) -> str:
    guard = f" AND e._c <= l.{TIME}" if options.backfill_guard else ""
    return f"e._ts <= l.{TIME}{guard}"


def aggregate_sql(view: FeatureView, labels_entity: str, options: JoinOptions) -> str | None:
    """One grouped range join for every windowed aggregate and days_since_last of the view."""
    features = [f for f in view.aggregates if f.agg != "coverage"]
    if not features:
        return None
    parts = []
    bounds: list[timedelta | None] = []
    for f in features:
        col = f"e.{quote(f.name)}"
        if f.agg == "days_since_last":
            within = f" AND l.{TIME} - e._ts <= {_seconds(view.ttl)}" if view.ttl else ""
            last = f"max(e._ts) FILTER (WHERE {col} IS NOT NULL{within})"
            parts.append(f"(epoch(l.{TIME}) - epoch({last})) / 86400.0 AS {quote(f.name)}")
            bounds.append(view.ttl)
            continue
        assert f.window is not None
        fn = {"count": "count", "sum": "sum", "mean": "avg", "min": "min", "max": "max"}[str(f.agg)]
        parts.append(f"{fn}({col}) FILTER (WHERE e._ts > l.{TIME} - {_seconds(f.window)}) AS {quote(f.name)}")
        bounds.append(f.window)
    bound = ""
    if all(b is not None for b in bounds):
        widest = max(b for b in bounds if b is not None)
        bound = f" AND e._ts > l.{TIME} - {_seconds(widest)}"
    return (
        f"SELECT l.{ROW}, {', '.join(parts)} FROM labels l JOIN feats e "
        f"ON l.{quote(labels_entity)} = e.{ENTITY} AND {_usable(options)}{bound} GROUP BY l.{ROW}, l.{TIME}"
    )


def coverage_sql(view: FeatureView, feature: Feature, labels_entity: str, options: JoinOptions) -> str:
    """Share of the window covered by the union of [event, event + value days) intervals."""
    assert feature.window is not None
    window = feature.window.total_seconds()
    col = f"e.{quote(feature.name)}"
    return (
        f"WITH iv AS (SELECT l.{ROW}, greatest(epoch(e._ts), epoch(l.{TIME}) - {window}) AS s, "
        f"least(epoch(e._ts) + {col} * 86400.0, epoch(l.{TIME})) AS en "
        f"FROM labels l JOIN feats e ON l.{quote(labels_entity)} = e.{ENTITY} AND {_usable(options)} "
        f"AND {col} > 0 AND epoch(e._ts) + {col} * 86400.0 > epoch(l.{TIME}) - {window}), "
        f"o AS (SELECT {ROW}, s, en, max(en) OVER (PARTITION BY {ROW} ORDER BY s, en "
        "ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS prev FROM iv) "
        f"SELECT {ROW}, sum(greatest(0, en - greatest(s, coalesce(prev, s)))) / {window} AS {quote(feature.name)} "
        f"FROM o GROUP BY {ROW}"
    )


@contextmanager
def _feats(con: duckdb.DuckDBPyConnection, feats: pa.Table | ds.Dataset | Path) -> Iterator[None]:
    """The feature table as ``feats`` for the block: a Parquet file through DuckDB's own reader
    (faster than an Arrow dataset scan), or the Arrow data given."""
    if isinstance(feats, Path):
        path = "'" + str(feats).replace("'", "''") + "'"
        con.execute(f"CREATE OR REPLACE TEMP VIEW feats AS SELECT * FROM read_parquet({path})")
        try:
            yield
        finally:
            con.execute("DROP VIEW IF EXISTS feats")
        return
    con.register("feats", feats)
    try:
        yield
    finally:
        con.unregister("feats")


def join_view(
    con: duckdb.DuckDBPyConnection,
    view: FeatureView,
    labels: pa.Table,
    feats: pa.Table | ds.Dataset | Path,
    labels_entity: str,
    options: JoinOptions = JoinOptions(),
) -> pa.Table:
    """``_row``, ``_event_time`` and the view's features for every label row, in ``_row`` order."""
    latest = latest_sql(view, labels_entity, options)
    with _feats(con, feats):
        if not view.aggregates:  # one query, sorted inside it
            return query(con, f"{latest} ORDER BY l.{ROW}", labels=labels)
        result = query(con, latest, labels=labels)
        pieces = []
        agg = aggregate_sql(view, labels_entity, options)
        if agg:
            pieces.append(query(con, agg, labels=labels))
        for feature in view.aggregates:
            if feature.agg == "coverage":
                pieces.append(query(con, coverage_sql(view, feature, labels_entity, options), labels=labels))
    joins = " ".join(f"LEFT JOIN p{i} USING ({ROW})" for i in range(len(pieces)))
    cols = []
    for feature in view.features:
        name = quote(feature.name)
        if feature.agg in ("count", "coverage"):
            cols.append(f"coalesce({name}, 0) AS {name}")  # no usable row: none counted, nothing covered
        else:
            cols.append(name)
    sql = f"SELECT {ROW}, {EVENT_TIME}, {', '.join(cols)} FROM r {joins} ORDER BY {ROW}"
    return query(con, sql, r=result, **{f"p{i}": p for i, p in enumerate(pieces)})
