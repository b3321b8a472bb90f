"""Where a window's rows come from, as chunks of feature columns and scores.

The prediction log: pages of the ``predictions`` table (time order, keyset-paged, so memory holds
one page), whose JSON texts DuckDB parses per page into typed columns; no row becomes a Python
object on the way. A value the log holds as the wrong type (a text where a number belongs) is
missing here, as it would be to the model.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from medops.data import duck
from medops.data.sql_expr import literal
from medops.monitoring.profile import ReferenceProfile
from medops.platform import Platform
from medops.serving.prediction_log import PredictionFilter, text_pages


@dataclass(frozen=True)
class Chunk:
    """A page of a window: feature columns by name, the scores, and each row's time and entity."""

    columns: dict[str, Any]
    scores: np.ndarray
    at: Any  # pyarrow timestamps (UTC)
    entity: Any  # pyarrow strings: the logged "key=pseudonym", or null


def _path(name: str) -> str:
    """The JSON path of a top-level key, as a SQL literal (any character in the name is safe)."""
    return literal("$." + json.dumps(name))


def parse_sql(profile: ReferenceProfile) -> str:
    """The SELECT that turns a page's JSON texts into one column per profiled feature, and the score."""
    columns = []
    for i, (name, feature) in enumerate(profile.features.items()):
        if feature.kind == "numeric":
            columns.append(f"TRY_CAST(json_extract(inputs, {_path(name)}) AS DOUBLE) AS c{i}")
        else:
            columns.append(f"json_extract_string(inputs, {_path(name)}) AS c{i}")
    columns.append("TRY_CAST(json_extract(output, '$.probability') AS DOUBLE) AS score")
    columns += ['"at"', '"entity"']
    return "SELECT " + ", ".join(columns) + " FROM page"


def prediction_chunks(
    ws: Platform, profile: ReferenceProfile, model: str, version: int, start: datetime, end: datetime
) -> Iterator[Chunk]:
    """The version's logged predictions in [start, end), page by page."""
    where = PredictionFilter(model=model, version=version, since=start, until=end)
    sql = parse_sql(profile)
    names = list(profile.features)
    con = duck.connect()
    try:
        for page in text_pages(ws, where):
            con.register("page", page)
            parsed = con.sql(sql).to_arrow_table()
            con.unregister("page")
            columns = {name: parsed.column(f"c{i}").combine_chunks() for i, name in enumerate(names)}
            scores = parsed.column("score").to_numpy(zero_copy_only=False).astype(float)
            yield Chunk(columns, scores, parsed.column("at"), parsed.column("entity"))
    finally:
        con.close()
