"""Batch scoring as tasks on the workspace's executor: the input split into partitions, each scored by a worker.

Partitions. A Parquet input (a file, or a dataset version) splits at its row groups, contiguous
ones grouped into at most as many partitions as the executor asks for: a file of one row group is
one task. A CSV file splits into byte ranges cut at line ends after its header, each read with
the column types the local reader infers from the file's first block, so every value converts as
it would locally (a CSV value holding a line break is not supported, as by the local reader).

Trust. A worker never builds a model from bytes nobody verified. The client reads the registered
bundle from the artifact store, checks its SHA-256 against the registry's and verifies it whole
(signature, every checksum, safe types); those bytes go to each task with their digest and the
workspace's trusted public keys, and the task checks the digest and verifies the bundle again
before it builds its own predictor.

Output. Each task writes its partition's predictions to a part file in a folder beside the output,
chunk by chunk (a worker's memory holds one chunk). The client then reads the parts in input order
and writes the one prediction file through the local path's PredictionWriter, numbering the rows
as it goes, so the file is byte for byte what local scoring writes: the same SHA-256, the same
prediction set in lineage. Workers must see the input and the output's folder at the same paths
(one machine, or a shared volume), as for feature work.
"""

from __future__ import annotations

import io
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from medops.errors import InvalidInput, MedopsError
from medops.serving.batch import (
    CSV_BLOCK_BYTES,
    Counts,
    ScoreInput,
    _checked_batches,
    _parquet,
    check_kept,
    chunk_refused,
    score_chunk,
)
from medops.serving.prediction_file import PredictionWriter

if TYPE_CHECKING:
    from medops.features.executor import Executor
    from medops.platform import Platform
    from medops.registry.predictor import Predictor

SCORES = ("probability", "decision", "out_of_range")  # a part file's columns, after the kept ones


@dataclass(frozen=True)
class Partition:
    """One task's share of the input: row groups of a Parquet file, or a byte range of a CSV file's rows."""

    index: int
    path: str
    format: str  # "parquet" or "csv"
    row_groups: tuple[int, ...] = ()
    byte_range: tuple[int, int] = (0, 0)
    csv_schema: pa.Schema | None = None  # the column types the local reader would use

    @property
    def file_name(self) -> str:
        return f"part-{self.index:05d}.parquet"


@dataclass(frozen=True)
class PartResult:
    """What one task scored, or why it stopped (``refused_rows``: the refused chunk's first row in the
    partition and its length, when the model refused a row)."""

    index: int
    rows: int = 0
    chunks: int = 0
    positives: int = 0
    flagged: int = 0
    error: MedopsError | None = None
    refused_rows: tuple[int, int] | None = None


def score_partitioned(
    ws: Platform,
    executor: Executor,
    writer: PredictionWriter,
    predictor: Predictor,
    bundle_sha256: str,
    source: ScoreInput,
    keep: list[str] | tuple[str, ...],
    chunk_rows: int,
    on_chunk: Callable[[int], None] | None,
) -> Counts:
    """Score ``source`` as tasks on ``executor`` and write the predictions, in input order, through ``writer``.

    ``on_chunk`` is called with a partition's row count when its task finishes. A refused row stops the
    run (the tasks still running are cancelled) with its rows counted from the input's first.
    """
    from medops.registry.predictor import load_bundle_bytes
    from medops.registry.transfer import trusted_keys

    trusted = trusted_keys(ws)
    bundle = ws.artifacts.read_bytes(bundle_sha256)  # hashed against its name as it is read
    load_bundle_bytes(bundle, bundle_sha256, trusted)  # verified whole here before it is sent anywhere
    parts = partitions(source, executor.partitions)
    folder = writer.path.with_name(writer.path.name + ".parts")
    shutil.rmtree(folder, ignore_errors=True)  # a crashed run's parts are never merged into this one
    folder.mkdir()
    try:
        args = [(p, bundle, bundle_sha256, trusted, list(keep), chunk_rows, str(folder)) for p in parts]
        done: dict[int, PartResult] = {}
        for i, result in executor.as_completed(score_partition, args):
            done[i] = result
            if result.error is None and on_chunk is not None:
                on_chunk(result.rows)
            _raise_first_refusal(done)
        counts = Counts(partitions=len(parts))
        for part in parts:
            got = done[part.index]
            counts.add(Counts(got.rows, got.chunks, got.positives, got.flagged))
            _append(folder / part.file_name, writer, list(keep), chunk_rows)
        return counts
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _raise_first_refusal(done: dict[int, PartResult]) -> None:
    """Raise the first partition's error once every partition before it finished (their rows place its rows)."""
    failed = sorted(i for i, r in done.items() if r.error is not None)
    if not failed or any(i not in done for i in range(failed[0])):
        return
    first = done[failed[0]]
    assert first.error is not None
    if first.refused_rows is not None and isinstance(first.error, InvalidInput):
        offset = sum(done[i].rows for i in range(failed[0]))
        raise chunk_refused(first.error, offset + first.refused_rows[0], first.refused_rows[1])
    raise first.error


def _append(part: Path, writer: PredictionWriter, keep: list[str], chunk_rows: int) -> None:
    """One part file's predictions into the output, a chunk at a time (an empty partition wrote none)."""
    import pyarrow.parquet as pq

    if not part.exists():
        return
    for batch in pq.ParquetFile(part).iter_batches(batch_size=chunk_rows):
        probability, decision, flags = (batch.column(name).to_numpy(zero_copy_only=False) for name in SCORES)
        writer.write(batch.select(keep) if keep else None, probability, decision, flags)


# --- the partitions ----------------------------------------------------------------------------
def partitions(source: ScoreInput, wanted: int) -> list[Partition]:
    """The input's partitions, in input order: at most ``wanted``, never an empty one."""
    path = source.path
    if source.format == "parquet":
        import pyarrow.parquet as pq

        meta = _parquet(path, lambda: pq.ParquetFile(path).metadata)
        sizes = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
        return [Partition(i, str(path), "parquet", row_groups=g) for i, g in enumerate(group_row_groups(sizes, wanted))]
    schema = _csv_schema(path)
    return [
        Partition(i, str(path), "csv", byte_range=r, csv_schema=schema) for i, r in enumerate(_csv_ranges(path, wanted))
    ]


def group_row_groups(sizes: list[int], wanted: int) -> list[tuple[int, ...]]:
    """Contiguous row groups in at most ``wanted`` groups of about equal rows."""
    total, rows = sum(sizes), 0
    groups: list[tuple[int, ...]] = []
    current: list[int] = []
    for i, size in enumerate(sizes):
        current.append(i)
        rows += size
        if len(groups) < wanted - 1 and rows * wanted >= total * (len(groups) + 1):
            groups.append(tuple(current))
            current = []
    if current:
        groups.append(tuple(current))
    return [g for g in groups if sum(sizes[i] for i in g)] or ([tuple(range(len(sizes)))] if sizes else [])


def _csv_schema(path: Path) -> pa.Schema:
    """The names and types the local reader gives the file's columns (inferred from its first block)."""
    from pyarrow import csv

    reader = _parquet(
        path,
        lambda: csv.open_csv(
            path,
            read_options=csv.ReadOptions(block_size=CSV_BLOCK_BYTES),
            convert_options=csv.ConvertOptions(strings_can_be_null=True),
        ),
    )
    schema: pa.Schema = reader.schema
    reader.close()
    return schema


def _csv_ranges(path: Path, wanted: int) -> list[tuple[int, int]]:
    """Byte ranges of the rows after the header, each from a line's start to a line's end."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        handle.readline()  # the header
        cuts = [handle.tell()]
        body = size - cuts[0]
        for i in range(1, wanted):
            handle.seek(max(cuts[0] + body * i // wanted, cuts[-1]))
            handle.readline()  # on to the next line's start
            if cuts[-1] < handle.tell() < size:
                cuts.append(handle.tell())
    cuts.append(size)
    return [(a, b) for a, b in zip(cuts, cuts[1:], strict=False) if b > a]


# --- a task --------------------------------------------------------------------------------------
def score_partition(
    part: Partition,
    bundle: bytes,
    bundle_sha256: str,
    trusted: dict[str, str],
    keep: list[str],
    chunk_rows: int,
    folder: str,
) -> PartResult:
    """Verify the bundle, score one partition chunk by chunk into its part file (a task on a worker).

    Errors come back as values, so the client can place a refused row in the whole input.
    """
    import pyarrow.parquet as pq

    from medops.registry.predictor import load_bundle_bytes

    try:
        predictor = load_bundle_bytes(bundle, bundle_sha256, trusted)
    except MedopsError as exc:
        return PartResult(part.index, error=exc)
    target = Path(folder) / part.file_name
    writer: Any = None
    counts = Counts()
    try:
        for batch in _read(part, chunk_rows, [*predictor.features, *keep]):
            check_kept(batch, keep)
            try:
                probability, decision, flags = score_chunk(predictor, batch)
            except InvalidInput as exc:  # the client says where in the input: it knows the partitions before
                return PartResult(part.index, error=exc, refused_rows=(counts.rows, batch.num_rows))
            columns = {name: batch.column(name) for name in keep}
            columns.update(zip(SCORES, (pa.array(v) for v in (probability, decision, flags)), strict=True))
            table = pa.table(columns)
            if writer is None:
                writer = pq.ParquetWriter(str(target), table.schema)
            writer.write_table(table)
            counts.add(Counts(batch.num_rows, 1, int(decision.sum()), int(flags.sum())))
    except MedopsError as exc:
        return PartResult(part.index, error=exc)
    finally:
        if writer is not None:
            writer.close()
    return PartResult(part.index, counts.rows, counts.chunks, counts.positives, counts.flagged)


def _read(part: Partition, chunk_rows: int, columns: list[str]) -> Iterator[pa.RecordBatch]:
    """The partition's rows, at most ``chunk_rows`` at a time, only ``columns`` (those the input has)."""
    path = Path(part.path)
    if part.format == "parquet":
        import pyarrow.parquet as pq

        reader = _parquet(path, lambda: pq.ParquetFile(path))
        present = [c for c in columns if c in reader.schema_arrow.names]
        yield from _checked_batches(
            lambda: reader.iter_batches(batch_size=chunk_rows, row_groups=list(part.row_groups), columns=present),
            path,
        )
        return
    from pyarrow import csv

    schema = part.csv_schema
    assert schema is not None
    with _Range(path, *part.byte_range) as raw:
        stream = _parquet(
            path,
            lambda: csv.open_csv(
                raw,
                read_options=csv.ReadOptions(column_names=schema.names, block_size=CSV_BLOCK_BYTES),
                convert_options=csv.ConvertOptions(
                    column_types=schema,
                    strings_can_be_null=True,
                    include_columns=[c for c in columns if c in schema.names],
                ),
            ),
        )
        for batch in _checked_batches(lambda: stream, path):
            for start in range(0, batch.num_rows, chunk_rows):
                yield batch.slice(start, chunk_rows)


class _Range(io.RawIOBase):
    """A file's bytes from ``start`` to ``end``, read as a stream: one CSV partition."""

    def __init__(self, path: Path, start: int, end: int) -> None:
        super().__init__()
        self._file = open(path, "rb")  # noqa: SIM115 - closed with the range
        self._file.seek(start)
        self._left = end - start

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = min(len(buffer), self._left)
        if n <= 0:
            return 0
        got = self._file.readinto(memoryview(buffer)[:n])
        self._left -= got
        return got

    def close(self) -> None:
        self._file.close()
        super().close()


__all__ = ["PartResult", "Partition", "partitions", "score_partition", "score_partitioned"]
