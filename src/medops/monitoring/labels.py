"""The outcomes monitoring joins to logged predictions: a dataset of the workspace, read by DuckDB.

The prediction log keeps real times (when each answer was given). A label feed whose time columns
were date-shifted per patient at ingest (``shift_dates``) can't be matched to them: every patient's
dates moved by a secret offset of up to half a year. Such a feed is refused with what to change
(ingest its event and availability times with ``keep``: a decision about real dates that the
project file states and its reviewers see), rather than joined wrongly.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from medops.data.datasets import get as get_dataset
from medops.data.duck_connections import duck
from medops.data.sql_expr import quote_ident
from medops.errors import InvalidInput
from medops.monitoring.spec import PerformanceSpec
from medops.platform import Platform


def _shifted(details: dict[str, Any]) -> set[str]:
    columns = (details.get("deid") or {}).get("columns") or []
    return {c["column"] for c in columns if c.get("action") == "shift_dates"}


def load(ws: Platform, spec: PerformanceSpec, start: datetime, end: datetime, match_within: timedelta) -> pd.DataFrame:
    """The labels whose event time falls near the window: ``entity``, ``time``, ``label`` (0/1), ``available``."""
    info = get_dataset(ws.db, spec.labels)
    where = f"performance.labels: {spec.labels}@{info.short}"
    shifted = _shifted(info.details) & {spec.time, *([spec.available] if spec.available else [])}
    if shifted:
        raise InvalidInput(
            f"{where}: {', '.join(sorted(shifted))} was date-shifted per patient at ingest, so it can't be matched "
            "to the real times of logged predictions",
            code="labels_date_shifted",
            hint="ingest the outcome feed's event and availability times with keep",
        )
    path = ws.artifacts.local_path(info.version)
    available = quote_ident(spec.available) if spec.available else quote_ident(spec.time)
    sql = (
        f"SELECT CAST({quote_ident(spec.entity)} AS VARCHAR) AS entity, {quote_ident(spec.time)} AS time, "
        f"{quote_ident(spec.label)} AS label, {available} AS available FROM read_parquet(?) "
        f"WHERE {quote_ident(spec.time)} >= ? AND {quote_ident(spec.time)} < ?"
    )
    with duck(ws).reader() as con:
        names = [r[0] for r in con.execute("DESCRIBE SELECT * FROM read_parquet(?)", [str(path)]).fetchall()]
        for column in {spec.entity, spec.label, spec.time, *([spec.available] if spec.available else [])}:
            if column not in names:
                raise InvalidInput(f"{where}: no column {column!r}", hint=f"its columns: {', '.join(names)}")
        frame = con.execute(sql, [str(path), start - match_within, end + match_within]).df()
    for column in ("time", "available"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    frame["label"] = _outcome(frame["label"], where, spec.label)
    return frame


def _outcome(values: pd.Series, where: str, column: str) -> pd.Series:
    """0/1 from numbers or booleans; missing stays missing (an outcome not known yet)."""
    if values.dtype == bool or str(values.dtype) == "boolean":
        return values.astype("Float64").astype(float)
    numbers = pd.to_numeric(values, errors="coerce")
    odd = numbers.notna() & ~numbers.isin([0, 1]) | (numbers.isna() & values.notna())
    if odd.any():
        raise InvalidInput(f"{where}: column {column!r} holds values other than 0 and 1 (row {int(np.argmax(odd))})")
    return numbers.astype(float)
