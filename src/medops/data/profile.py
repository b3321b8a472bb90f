"""A statistical profile per column of a Parquet file, computed by DuckDB in one scan.

Stored with every dataset version and compared by ``medops data diff``: missing share,
distinct count, min/max, mean/std and quantiles for numbers and times, top values for
categories. DuckDB streams the file, so profiling follows the row group, not the file.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from medops.data.duck_connections import DuckConnections, given_or_own

# Up to this many rows the ``exact`` columns are counted exactly and quantiles are exact; a larger
# table keeps the profile's memory bounded (an exact count holds every distinct value, an exact
# quantile every value: 5M rows of 10 numbers outgrew the limit) and marks the estimates instead.
EXACT_MAX_ROWS = 500_000
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
TOP_VALUES = 5
TOP_MAX_DISTINCT = 1000
TEXT_SHOWN = 60
_NUMERIC = (
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "HUGEINT",
    "FLOAT",
    "DOUBLE",
    "DECIMAL",
    "UTINYINT",
    "USMALLINT",
)
_TIME = ("TIMESTAMP", "DATE")


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _kind(duck_type: str) -> str:
    t = duck_type.upper()
    if t.startswith(_NUMERIC) or t.startswith("UINTEGER") or t.startswith("UBIGINT"):
        return "number"
    if t.startswith(_TIME):
        return "time"
    if t == "BOOLEAN":
        return "bool"
    return "text"


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    return str(value)


def profile_parquet(
    path: Path, exact: Collection[str] = (), *, databases: DuckConnections | None = None
) -> dict[str, dict[str, Any]]:
    """Profile every column of the Parquet file at ``path``.

    Distinct counts are HyperLogLog estimates (within a few percent, memory bounded) and say so
    (``distinct_exact: false``), except for the ``exact`` columns (the patient id: how many patients
    is a number people quote), counted exactly in tables of up to EXACT_MAX_ROWS rows. Quantiles are
    exact up to EXACT_MAX_ROWS rows, and t-digest estimates above (``quantiles_exact: false``).
    ``databases``: the workspace's DuckDB databases; without them, the call opens its own.
    """
    large = pq.ParquetFile(path).metadata.num_rows > EXACT_MAX_ROWS
    if large:
        exact = ()
    quantile = "approx_quantile" if large else "quantile_cont"  # a t-digest: bounded memory, within a rank or so
    # exact distinct counts of ids spill to disk past the memory limit
    with given_or_own(databases) as duck, duck.reader() as con:
        source = f"read_parquet('{str(path).replace(chr(39), chr(39) * 2)}')"
        columns = con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()
        kinds = {name: (_kind(str(t)), str(t)) for name, t, *_ in columns}
        select: list[str] = ["count(*)"]
        for name, (kind, _t) in kinds.items():
            q = _quote(name)
            select += [f"count({q})", f"count(DISTINCT {q})" if name in exact else f"approx_count_distinct({q})"]
            if kind == "number":
                qs = ", ".join(str(x) for x in QUANTILES)
                select += [f"min({q})", f"max({q})", f"avg({q})", f"stddev_samp({q})", f"{quantile}({q}, [{qs}])"]
            elif kind == "time":
                select += [f"min({q})", f"max({q})"]
            elif kind == "text":
                select += [f"min(length({q}))", f"max(length({q}))"]
        row = con.execute(f"SELECT {', '.join(select)} FROM {source}").fetchone()
        assert row is not None
        values = iter(row)
        total = int(next(values))
        out: dict[str, dict[str, Any]] = {}
        for name, (kind, duck_type) in kinds.items():
            present, distinct = int(next(values)), int(next(values))
            stats: dict[str, Any] = {
                "type": duck_type.lower(),
                "kind": kind,
                "count": present,
                "missing_share": round((total - present) / total, 6) if total else 0.0,
                "distinct": distinct,
                "distinct_exact": name in exact,
            }
            if kind == "number":
                low, high, mean, std, quantiles = (next(values) for _ in range(5))
                stats.update(min=_plain(low), max=_plain(high), mean=_plain(mean), std=_plain(std))
                stats["quantiles"] = (
                    {f"p{round(q * 100):02d}": _plain(v) for q, v in zip(QUANTILES, quantiles, strict=True)}
                    if quantiles is not None
                    else {}
                )
                if large:
                    stats["quantiles_exact"] = False
            elif kind == "time":
                low, high = next(values), next(values)
                stats.update(min=_plain(low), max=_plain(high))
            elif kind == "text":
                shortest, longest = next(values), next(values)
                stats.update(min_length=shortest, max_length=longest)
            if kind in ("text", "bool") and 0 < distinct <= TOP_MAX_DISTINCT:
                q = _quote(name)
                top = con.execute(
                    f"SELECT {q}, count(*) AS n FROM {source} WHERE {q} IS NOT NULL "
                    f"GROUP BY {q} ORDER BY n DESC, {q} LIMIT {TOP_VALUES}"
                ).fetchall()
                stats["top"] = [[_shown(v), int(n)] for v, n in top]
            out[name] = stats
        return out


def _shown(value: Any) -> Any:
    plain = _plain(value)
    if isinstance(plain, str) and len(plain) > TEXT_SHOWN:
        return plain[: TEXT_SHOWN - 1] + "…"
    return plain
