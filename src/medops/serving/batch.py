"""Batch scoring: a file or a dataset version through a registered model, in bounded memory.

The input is read in chunks of at most ``chunk_rows`` rows (Parquet row batches, or CSV
blocks cut to size), each chunk is checked and scored by the Predictor, and its predictions
are appended to the output as they come, so memory holds one chunk whatever the input's size.
The output is written beside its final name and renamed into place only when every row was
scored: a refused row leaves no partial prediction file. On a Dask executor, partitions of the
input are scored by the workers (medops.serving.batch_parts); the output file is the same, byte
for byte, because medops.serving.prediction_file's writer writes tables of exactly ``chunk_rows`` rows however the rows
were scored.

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
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from medops.data.prefetch import prefetch
from medops.data.sources import file_sha256
from medops.errors import Conflict, InvalidInput
from medops.identity.roles import Role
from medops.serving.prediction_file import PredictionWriter
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
    partitions: int = 1  # scored as this many tasks on the workspace's executor (1: in this process)

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
            "partitions": self.partitions,
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
    executor: str = "local",
) -> ScoreResult:
    """Score every row of ``source`` into ``output``; record the prediction set's lineage and audit event.

    ``bundle_sha256`` is the registered version's artifact digest: written on every prediction.

    ``on_chunk`` is called with each chunk's row count once it is scored (a progress bar); on a Dask
    ``executor`` with each partition's once it is scored (see medops.serving.batch_parts).
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
    if chunk_rows < 1:
        raise InvalidInput("the chunk size is a positive number of rows")
    if output.exists() and not overwrite:
        raise Conflict(f"{output} exists already", code="output_exists", hint="choose another path")
    output.parent.mkdir(parents=True, exist_ok=True)
    temporary = output.with_name(f".{output.name}.{os.getpid()}.partial")
    writer = PredictionWriter(temporary, out_format, list(keep), name, version, bundle_sha256, chunk_rows)
    try:
        counts = _score_into(ws, writer, predictor, bundle_sha256, source, keep, chunk_rows, on_chunk, executor)
        writer.close()
        digest = file_sha256(temporary)
        os.replace(temporary, output)
    finally:
        writer.abort()  # nothing once closed; on a refusal, no pending row is written
        temporary.unlink(missing_ok=True)
    result = ScoreResult(
        name,
        version,
        bundle_sha256,
        source.node,
        output,
        digest,
        writer.rows,
        counts.chunks,
        counts.positives,
        counts.flagged,
        list(keep),
        counts.partitions,
    )
    _record(ws, result, actor, reason, dataset=source.dataset)
    return result


@dataclass
class Counts:
    """What scoring found, summed over chunks (and partitions)."""

    rows: int = 0
    chunks: int = 0
    positives: int = 0
    flagged: int = 0
    partitions: int = 1

    def add(self, other: Counts) -> None:
        self.rows += other.rows
        self.chunks += other.chunks
        self.positives += other.positives
        self.flagged += other.flagged


def _score_into(
    ws: Platform,
    writer: PredictionWriter,
    predictor: Predictor,
    bundle_sha256: str,
    source: ScoreInput,
    keep: list[str] | tuple[str, ...],
    chunk_rows: int,
    on_chunk: Callable[[int], None] | None,
    executor_url: str,
) -> Counts:
    """Local scoring, or partitions on the executor when it has more than one."""
    if (executor_url or "local") != "local":
        from medops.features.executor import open_executor

        executor = open_executor(executor_url)
        try:
            if executor.partitions > 1:
                from medops.serving.batch_parts import score_partitioned

                return score_partitioned(
                    ws, executor, writer, predictor, bundle_sha256, source, keep, chunk_rows, on_chunk
                )
        finally:
            executor.close()
    counts = Counts()
    # Three chunks at once, each on its own thread: the next one read (prefetch), this one scored, the
    # one before written (Arrow's readers, Parquet's encoder and LightGBM all run without the GIL). One
    # write at a time, in order; leaving the pool waits for the write in flight, also when scoring failed.
    with ThreadPoolExecutor(1, thread_name_prefix="medops-score-writer") as pool:
        written: Future[None] | None = None
        # only the model's features and the kept columns are read: less to decode, and no identifier in memory
        for batch in prefetch(read_chunks(source, chunk_rows, [*predictor.features, *keep])):
            check_kept(batch, keep)
            try:
                probability, decision, out_of_range = score_chunk(predictor, batch)
            except InvalidInput as exc:  # its row numbers count from the chunk's first row: say which chunk
                raise chunk_refused(exc, counts.rows, batch.num_rows) from None
            if written is not None:
                written.result()  # the previous chunk's write, and its error if it failed
            written = pool.submit(writer.write, batch, probability, decision, out_of_range)
            counts.add(Counts(len(probability), 1, int(decision.sum()), int(out_of_range.sum())))
            if on_chunk is not None:
                on_chunk(len(probability))
        if written is not None:
            written.result()
    return counts


def check_kept(batch: pa.RecordBatch, keep: list[str] | tuple[str, ...]) -> None:
    missing = [c for c in keep if c not in batch.schema.names]
    if missing:
        raise InvalidInput(f"the input has no column {missing[0]!r} to copy into the predictions")


def score_chunk(
    predictor: Predictor, batch: pa.RecordBatch, *, check: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One chunk's probability, decision and out-of-range flag per row (the predictor's refusal as it is:
    its row numbers count from the chunk's first row; ``check=False``: no refusal, every row scored)."""
    from medops.serving.batch_encoder import encode_chunk

    encoded = encode_chunk(predictor, batch, refuse=check)  # plain columns: straight from Arrow (see batch_encoder)
    if encoded is not None and predictor.compiled is not None:
        matrix, flags = encoded
        probability = predictor.compiled.predict_matrix(matrix)
        out_of_range = flags  # unchecked: none flagged
    else:
        # strings as categories: a few string objects shared, not one per row (the predictor reads them as values)
        frame = batch.to_pandas(strings_to_categorical=True)
        probability = predictor.predict_proba(frame, check=check)
        out_of_range = np.zeros(len(frame), dtype=bool)
        for flags in predictor.flags.values() if check else ():  # unchecked rows leave no flags
            out_of_range |= flags
    decision = (probability >= predictor.threshold).astype(np.int8)
    return np.asarray(probability, dtype=np.float64), decision, out_of_range


def chunk_refused(exc: InvalidInput, first_row: int, rows: int) -> InvalidInput:
    """The predictor's refusal of a chunk, with the chunk's place in the input."""
    return InvalidInput(
        f"in the chunk of input rows {first_row:,} to {first_row + rows - 1:,} (counted from 0; "
        f"the row numbers that follow count from the chunk's first row): {exc.message}",
        hint=exc.hint,
        code=exc.code if exc.code != InvalidInput.code else None,
    )


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
