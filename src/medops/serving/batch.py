"""Batch scoring: a file or a dataset version through a registered model, in bounded memory.

The input is read in chunks of at most ``chunk_rows`` rows (Parquet row batches, or CSV
blocks cut to size), each chunk is checked and scored by the Predictor, and its predictions
are appended to the output as they come, so memory holds one chunk whatever the input's size.
The output is written beside its final name and renamed into place only when every row was
scored: a refused row leaves no partial prediction file.

Identifiers. A file given to ``medops score`` may hold raw identifiers (names, record numbers);
none of its columns is copied to the output. Each prediction carries ``row``, its position in
the input, which joins it back to the file by whoever holds the file. A medops dataset is
de-identified at ingest, so its columns named with ``keep`` may be copied through.

Lineage and audit: the prediction set is the node ``predictions:<SHA-256 of the output>``; the
input (``dataset:NAME@VERSION`` or ``file:<SHA-256>``) and the model version
(``model:NAME:VERSION``) each get an edge to it, written in the same transaction as the audit
event ``predictions.score``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from medops.data.sources import file_sha256
from medops.errors import Conflict, InvalidInput
from medops.identity.roles import Role
from medops.store.lineage import Edge, add_edges, file_node

if TYPE_CHECKING:
    from medops.platform import Platform
    from medops.registry.predictor import Predictor

DEFAULT_CHUNK_ROWS = 100_000
SCORE_ROLES = {Role.DATA_SCIENTIST, Role.ML_ENGINEER, Role.ADMIN}
PARQUET_SUFFIXES = (".parquet", ".pq")
CSV_BLOCK_BYTES = 8 << 20  # what the CSV reader parses at once; its batches are then cut to chunk_rows


@dataclass(frozen=True)
class ScoreInput:
    """What is scored: a file, or a dataset version (``dataset`` is then ``NAME@VERSION``)."""

    path: Path
    format: str  # "parquet" or "csv"
    node: str  # its lineage node
    dataset: str | None = None
    rows: int | None = None  # when known beforehand (Parquet, datasets): the progress bar's total


@dataclass(frozen=True)
class ScoreResult:
    model: str
    version: int
    bundle_sha256: str
    input: str  # the input's lineage node
    output: Path
    output_sha256: str
    rows: int
    chunks: int
    positives: int
    flagged: int  # rows scored outside the trained ranges (models whose policy is to flag)
    kept: list[str] = field(default_factory=list)

    @property
    def node(self) -> str:
        return predictions_node(self.output_sha256)

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "bundle_sha256": self.bundle_sha256,
            "input": self.input,
            "output": str(self.output),
            "output_sha256": self.output_sha256,
            "predictions": self.node,
            "rows": self.rows,
            "chunks": self.chunks,
            "positives": self.positives,
            "flagged": self.flagged,
            "kept": self.kept,
        }


def predictions_node(sha256: str) -> str:
    return f"predictions:{sha256}"


def file_input(path: Path) -> ScoreInput:
    """A Parquet or CSV file to score, named in lineage by its content's SHA-256."""
    fmt = _format(path, "input")
    if not path.is_file():
        raise InvalidInput(f"input file {path} does not exist")
    return ScoreInput(path, fmt, file_node(file_sha256(path)), rows=parquet_rows(path) if fmt == "parquet" else None)


def parquet_rows(path: Path) -> int:
    import pyarrow.parquet as pq

    return int(_parquet(path, lambda: pq.ParquetFile(path).metadata.num_rows))


def read_chunks(source: ScoreInput, chunk_rows: int, columns: list[str] | None = None) -> Iterator[pa.RecordBatch]:
    """The input's rows, at most ``chunk_rows`` at a time: no more is ever in memory.

    ``columns``: read only these (those the file has; a missing one is reported by whoever needs it).
    """
    if chunk_rows < 1:
        raise InvalidInput("the chunk size is a positive number of rows")
    path = source.path
    if source.format == "parquet":
        import pyarrow.parquet as pq

        reader = _parquet(path, lambda: pq.ParquetFile(path))
        present = None if columns is None else [c for c in columns if c in reader.schema_arrow.names]
        yield from _checked_batches(lambda: reader.iter_batches(batch_size=chunk_rows, columns=present), path)
        return
    from pyarrow import csv

    stream = _parquet(
        path,
        lambda: csv.open_csv(
            path,
            read_options=csv.ReadOptions(block_size=CSV_BLOCK_BYTES),
            convert_options=csv.ConvertOptions(strings_can_be_null=True),
        ),
    )
    for batch in _checked_batches(lambda: stream, path):
        if columns is not None:
            batch = batch.select([c for c in columns if c in batch.schema.names])
        for start in range(0, batch.num_rows, chunk_rows):
            yield batch.slice(start, chunk_rows)


def score(
    ws: Platform,
    predictor: Predictor,
    bundle_sha256: str,
    source: ScoreInput,
    output: Path,
    *,
    actor: str,
    keep: list[str] | tuple[str, ...] = (),
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    overwrite: bool = False,
    reason: str | None = None,
    on_chunk: Callable[[int], None] | None = None,
) -> ScoreResult:
    """Score every row of ``source`` into ``output``; record the prediction set's lineage and audit event.

    ``bundle_sha256`` is the registered version's artifact digest: written on every prediction.

    ``on_chunk`` is called with each chunk's row count once it is written (a progress bar).
    """
    meta = predictor.bundle.metadata
    name, version = str(meta["model"]), int(meta["version"])
    ws.users.require_role(actor, "predictions.score", SCORE_ROLES)  # refused before any row is read
    out_format = _format(output, "output")
    if keep and source.dataset is None:
        raise InvalidInput(
            "columns are copied into predictions from a dataset only: a file's columns may hold raw identifiers",
            code="identifiers_not_copied",
            hint="join the output back to the file by its 'row' column, or ingest the file as a dataset first",
        )
    if output.exists() and not overwrite:
        raise Conflict(f"{output} exists already", code="output_exists", hint="choose another path")
    output.parent.mkdir(parents=True, exist_ok=True)
    temporary = output.with_name(f".{output.name}.{os.getpid()}.partial")
    sha = bundle_sha256
    rows = chunks = positives = flagged = 0
    writer: Any = None
    try:
        # only the model's features and the kept columns are read: less to decode, and no identifier in memory
        for batch in read_chunks(source, chunk_rows, [*predictor.features, *keep]):
            missing = [c for c in keep if c not in batch.schema.names]
            if missing:
                raise InvalidInput(f"the input has no column {missing[0]!r} to copy into the predictions")
            # strings as categories: a few string objects shared, not one per row (the predictor reads them as values)
            frame = batch.to_pandas(strings_to_categorical=True)
            try:
                probability = predictor.predict_proba(frame)
            except InvalidInput as exc:  # its row numbers count from the chunk's first row: say which chunk
                raise InvalidInput(
                    f"in the chunk of input rows {rows:,} to {rows + len(frame) - 1:,} (counted from 0; "
                    f"the row numbers that follow count from the chunk's first row): {exc.message}",
                    hint=exc.hint,
                    code=exc.code if exc.code != InvalidInput.code else None,
                ) from None
            decision = (probability >= predictor.threshold).astype(np.int8)
            out_of_range = np.zeros(len(frame), dtype=bool)
            for flags in predictor.flags.values():
                out_of_range |= flags
            table = _predictions(batch, keep, rows, probability, decision, out_of_range, name, version, sha)
            if writer is None:
                writer = _writer(temporary, out_format, table.schema)
            writer.write_table(table)
            rows += len(frame)
            chunks += 1
            positives += int(decision.sum())
            flagged += int(out_of_range.sum())
            if on_chunk is not None:
                on_chunk(len(frame))
        if writer is None:  # an empty input: an empty prediction file with the columns all the same
            empty = np.empty(0)
            table = _predictions(None, (), 0, empty, empty.astype(np.int8), empty.astype(bool), name, version, sha)
            writer = _writer(temporary, out_format, table.schema)
        writer.close()
        writer = None
        digest = file_sha256(temporary)
        os.replace(temporary, output)
    finally:
        if writer is not None:
            writer.close()
        temporary.unlink(missing_ok=True)
    result = ScoreResult(name, version, sha, source.node, output, digest, rows, chunks, positives, flagged, list(keep))
    _record(ws, result, actor, reason, dataset=source.dataset)
    return result


def _record(ws: Platform, result: ScoreResult, actor: str, reason: str | None, *, dataset: str | None) -> None:
    from medops.registry.versions import version_node

    node = result.node
    with ws.users.authorized(
        actor, "predictions.score", "predictions", result.output_sha256, SCORE_ROLES, reason=reason
    ) as ch:
        attrs = {"rows": result.rows}
        add_edges(
            ch.session,
            [
                Edge(result.input, node, "scored_as", attrs),
                Edge(version_node(result.model, result.version), node, "predicted", attrs),
            ],
            actor,
        )
        ch.after = {
            "model": result.model,
            "version": result.version,
            "bundle_sha256": result.bundle_sha256,
            "input": result.input,
            "dataset": dataset,
            "rows": result.rows,
            "positives": result.positives,
            "flagged": result.flagged,
            "output_sha256": result.output_sha256,
        }


def _predictions(
    batch: pa.RecordBatch | None,
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

    return pq.ParquetWriter(str(path), schema)


def _format(path: Path, what: str) -> str:
    suffix = path.suffix.lower()
    if suffix in PARQUET_SUFFIXES:
        return "parquet"
    if suffix == ".csv":
        return "csv"
    raise InvalidInput(f"{what} {path.name!r} is neither Parquet nor CSV", hint="name it .parquet or .csv")


def _parquet(path: Path, call: Callable[[], Any]) -> Any:
    try:
        return call()
    except (pa.ArrowInvalid, OSError) as exc:
        raise InvalidInput(f"{path.name} could not be read: {_first_line(exc)}") from None


def _checked_batches(make: Callable[[], Any], path: Path) -> Iterator[pa.RecordBatch]:
    """Batches, with a malformed part of the file reported as a clear error (not a traceback)."""
    try:
        yield from make()
    except pa.ArrowInvalid as exc:
        raise InvalidInput(f"{path.name} could not be read: {_first_line(exc)}") from None


def _first_line(exc: Exception) -> str:
    # Arrow's message names the column and the offending value; keep the column, drop the value (it may be PHI)
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text.split(":")[0][:200]
