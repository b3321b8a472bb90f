"""The prediction file of batch scoring: its columns, and a writer whose bytes depend only on the predictions.

Columns: ``row`` (the input row's position), the kept dataset columns, ``probability``,
``decision``, ``out_of_range``, ``model``, ``version`` and ``bundle_sha256`` (the model and the
bundle hash as one shared string each: dictionary columns in Parquet).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa


class PredictionWriter:
    """The prediction file, written in tables of exactly ``chunk_rows`` rows (the last one shorter).

    Rows are numbered as they come, so the file's bytes depend only on the predictions and the
    chunk size, never on how the input was split to score it: local and partitioned scoring of
    one input write the same file, with the same SHA-256 (the same prediction set in lineage).
    """

    def __init__(
        self, path: Path, out_format: str, keep: list[str], model: str, version: int, sha: str, chunk_rows: int
    ) -> None:
        self.path, self.out_format, self.keep = path, out_format, keep
        self.model, self.version, self.sha, self.chunk_rows = model, version, sha, chunk_rows
        self.rows = 0  # written, and numbered
        self._pending: list[tuple[pa.Table | None, np.ndarray, np.ndarray, np.ndarray]] = []
        self._pending_rows = 0
        self._writer: Any = None
        self._closed = False

    def write(
        self, kept: pa.RecordBatch | pa.Table | None, probability: np.ndarray, decision: np.ndarray, flags: np.ndarray
    ) -> None:
        """Append scored rows; ``kept`` holds at least the kept columns (others are ignored)."""
        table = None
        if self.keep and kept is not None:
            table = (pa.Table.from_batches([kept]) if isinstance(kept, pa.RecordBatch) else kept).select(self.keep)
        self._pending.append((table, probability, decision, flags))
        self._pending_rows += len(probability)
        while self._pending_rows >= self.chunk_rows:
            self._flush(self.chunk_rows)

    def _flush(self, n: int) -> None:
        kept = pa.concat_tables([p[0] for p in self._pending]) if self.keep else None
        if len(self._pending) == 1:  # the usual case, a whole chunk: no copy
            _, probability, decision, flags = self._pending[0]
        else:
            probability, decision, flags = (np.concatenate([p[i] for p in self._pending]) for i in (1, 2, 3))
        head = None if kept is None else kept.slice(0, n).combine_chunks()
        table = prediction_table(
            head, self.keep, self.rows, probability[:n], decision[:n], flags[:n], self.model, self.version, self.sha
        )
        if self._writer is None:
            self._writer = _writer(self.path, self.out_format, table.schema)
        self._writer.write_table(table)
        self.rows += n
        self._pending_rows -= n
        rest = None if kept is None else kept.slice(n)
        self._pending = [(rest, probability[n:], decision[n:], flags[n:])] if self._pending_rows else []

    def close(self) -> None:
        """Write what is pending (an empty input: an empty file with the columns all the same)."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._pending_rows:
                self._flush(self._pending_rows)
            if self._writer is None:
                empty = np.empty(0)
                table = prediction_table(
                    None, (), 0, empty, empty.astype(np.int8), empty.astype(bool), self.model, self.version, self.sha
                )
                self._writer = _writer(self.path, self.out_format, table.schema)
        finally:
            if self._writer is not None:
                self._writer.close()

    def abort(self) -> None:
        """Stop without writing what is pending (the file is then discarded)."""
        if not self._closed:
            self._closed = True
            if self._writer is not None:
                self._writer.close()


def prediction_table(
    batch: pa.RecordBatch | pa.Table | None,
    keep: list[str] | tuple[str, ...],
    first_row: int,
    probability: np.ndarray,
    decision: np.ndarray,
    out_of_range: np.ndarray,
    model: str,
    version: int,
    sha: str,
) -> pa.Table:
    n = len(probability)
    columns: dict[str, pa.Array] = {"row": pa.array(np.arange(first_row, first_row + n, dtype=np.int64))}
    for column in keep:
        assert batch is not None
        columns[column] = batch.column(column)
    zeros = pa.array(np.zeros(n, dtype=np.int32))
    columns.update(
        {
            "probability": pa.array(np.asarray(probability, dtype=np.float64)),
            "decision": pa.array(decision),
            "out_of_range": pa.array(out_of_range),
            "model": pa.DictionaryArray.from_arrays(zeros, pa.array([model])),
            "version": pa.array(np.full(n, version, dtype=np.int32)),
            "bundle_sha256": pa.DictionaryArray.from_arrays(zeros, pa.array([sha])),
        }
    )
    return pa.table(columns)


class _CsvWriter:
    """Arrow's CSV writer, given plain strings (it writes no dictionary columns)."""

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        from pyarrow import csv

        self.schema = pa.schema(
            [f.with_type(f.type.value_type) if pa.types.is_dictionary(f.type) else f for f in schema]
        )
        self.writer = csv.CSVWriter(str(path), self.schema)

    def write_table(self, table: pa.Table) -> None:
        self.writer.write_table(table.cast(self.schema))

    def close(self) -> None:
        self.writer.close()


def _writer(path: Path, out_format: str, schema: pa.Schema) -> Any:
    if out_format == "csv":
        return _CsvWriter(path, schema)
    import pyarrow.parquet as pq

    # dictionary pages for the two shared strings only: trying them on a million distinct row numbers and
    # probabilities costs a third of the write and only grows the file
    return pq.ParquetWriter(str(path), schema, use_dictionary=["model", "bundle_sha256"])
