"""Where a window's rows come from, as chunks of feature columns and scores.

The prediction log: the ``predictions`` table's rows streamed as Arrow batches (so memory holds
one batch), whose JSON texts DuckDB parses per batch into typed columns; no row becomes a Python
object on the way. A value the log holds as the wrong type (a text where a number belongs) is
missing here, as it would be to the model.

A dataset version scored in batch: its stored Parquet file read in row batches of the features
the profile knows, each batch scored again by the version's verified bundle, as `medops score`
scored it (the scores of a bundle depend only on its rows). Rows the version would refuse as out
of its ranges are scored all the same, for the score distribution, and counted as out of range.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from medops.data.duck_connections import DuckConnections, given_or_own
from medops.data.prefetch import prefetch
from medops.data.sql_expr import literal
from medops.monitoring.profile import ReferenceProfile
from medops.serving.prediction_log import PredictionFilter, text_pages

if TYPE_CHECKING:
    from medops.registry.predictor import Predictor
    from medops.store.database import Database

DATASET_CHUNK_ROWS = 100_000
# DuckDB parses a page's JSON on one thread per part of it (an Arrow batch): a store's read hands over
# batches of 40,000 to 65,536 rows, so pages of about 200,000 rows keep both cores of a small machine
# parsing (1M documents: 1.03 us each from single batches, 0.56 from groups of seven)
PARSE_ROWS = 196_608


@dataclass(frozen=True)
class Chunk:
    """A page of a window: feature columns by name, the scores, and each row's time and entity."""

    columns: dict[str, Any]
    scores: np.ndarray
    at: Any  # pyarrow timestamps (UTC); None for a dataset's rows
    entity: Any  # pyarrow strings: the logged "key=pseudonym", or null; None for a dataset's rows


def parse_sql(profile: ReferenceProfile) -> str:
    """The SELECT that turns a page's JSON texts into a struct of the profiled features, and the score.

    One ``json_transform`` per text: each document is parsed once whatever the number of features
    (a ``json_extract`` per feature parsed it once per feature, eleven times slower on 20 features)."""
    shape = {name: "DOUBLE" if feature.kind == "numeric" else "VARCHAR" for name, feature in profile.features.items()}
    return (
        f"SELECT json_transform(inputs, {literal(json.dumps(shape))}) AS features, "
        """json_transform(output, '{"probability": "DOUBLE"}').probability AS score, "at", "entity" FROM page"""
    )


def prediction_chunks(
    db: Database,
    profile: ReferenceProfile,
    model: str,
    version: int,
    start: datetime,
    end: datetime,
    databases: DuckConnections | None = None,
) -> Iterator[Chunk]:
    """The version's logged predictions in [start, end), page by page. ``databases``: the workspace's
    DuckDB databases; without them (a worker's task), the call opens its own."""
    where = PredictionFilter(model=model, version=version, since=start, until=end)
    sql = parse_sql(profile)
    names = list(profile.features)
    with given_or_own(databases) as duck, duck.reader() as con:
        # the next page is fetched (the driver's C, without the interpreter) while DuckDB parses this one
        for page in prefetch(_grouped(text_pages(db, where), PARSE_ROWS)):
            con.register("page", page)
            parsed = con.sql(sql).to_arrow_table()
            con.unregister("page")
            features = parsed.column("features").combine_chunks()
            columns = {name: features.field(i) for i, name in enumerate(names)}
            scores = parsed.column("score").to_numpy(zero_copy_only=False).astype(float)
            yield Chunk(columns, scores, parsed.column("at"), parsed.column("entity"))


def _grouped(pages: Iterator[Any], rows: int) -> Iterator[Any]:
    """The pages joined (without a copy) into tables of at least ``rows`` rows, the last one smaller."""
    import pyarrow as pa

    held: list[Any] = []
    count = 0
    for page in pages:
        held.append(page)
        count += page.num_rows
        if count >= rows:
            yield pa.concat_tables(held)
            held, count = [], 0
    if held:
        yield pa.concat_tables(held)


def dataset_chunks(
    profile: ReferenceProfile,
    predictor: Predictor,
    path: Path,
    chunk_rows: int = DATASET_CHUNK_ROWS,
    row_groups: Sequence[int] | None = None,
) -> Iterator[Chunk]:
    """A dataset version's rows (of ``row_groups`` only, when given), ``chunk_rows`` at a time, with the
    version's scores."""
    import pyarrow.parquet as pq

    from medops.serving.batch import score_chunk

    reader = pq.ParquetFile(path)
    present = [name for name in profile.features if name in reader.schema_arrow.names]
    needed = [name for name in predictor.features if name in reader.schema_arrow.names]
    columns = list(dict.fromkeys([*present, *needed]))
    groups = list(range(reader.num_row_groups)) if row_groups is None else list(row_groups)
    for batch in reader.iter_batches(batch_size=chunk_rows, columns=columns, row_groups=groups):
        # a monitor counts what the version would refuse (out of its ranges), it does not stop there
        probability, _, _ = score_chunk(predictor, batch, check=False)
        yield Chunk({name: batch.column(name) for name in present}, probability, None, None)
