"""On-demand features: computed from the assembled row, by one function for training and serving.

A training set and a live request both end in a table of view features, request fields
and ``event_timestamp``; ``compute`` adds the on-demand columns to such a table, one row
or a million, with the same SQL or Python code. That is the train/serve consistency the
check (``medops features check``) tests, by computing a sample both ways.
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb
import pandas as pd
import pyarrow as pa

from medops.data.duck import query, sandbox
from medops.features.views import FeatureViewError, OnDemandFeature, run_python
from medops.features.views import _quote as quote


def check_inputs(features: Sequence[OnDemandFeature], columns: Sequence[str]) -> None:
    for feature in features:
        missing = [c for c in feature.inputs if c not in columns]
        if missing:
            raise FeatureViewError(
                f"on_demand.{feature.name}: input {missing[0]!r} is neither a requested feature nor a request field",
                hint="request the feature it needs, or pass the field with the labels or the request",
            )


def compute(con: duckdb.DuckDBPyConnection, features: Sequence[OnDemandFeature], table: pa.Table) -> pa.Table:
    """``table`` with one column added per on-demand feature, in order."""
    sandbox(con)  # expressions from the project file compute; they read nothing else
    check_inputs(features, table.column_names)
    for feature in features:
        if feature.fn is not None:
            frame = table.to_pandas(types_mapper=pd.ArrowDtype)
            array = run_python(feature.fn, frame, f"on_demand.{feature.name}")
        else:
            try:
                array = query(con, f"SELECT ({feature.expr}) AS v FROM t", t=table).column("v")
            except duckdb.Error as exc:
                line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise FeatureViewError(f"on_demand.{feature.name}: {line}") from None
        if feature.name in table.column_names:
            table = table.drop_columns([feature.name])
        table = table.append_column(quote(feature.name).strip('"'), array)
    return table
