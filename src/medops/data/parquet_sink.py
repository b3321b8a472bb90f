"""Writing chunks to one Parquet file whose bytes follow the data, not the chunking.

Rows are regrouped into fixed-size row groups and schema metadata (which would carry the
pandas version) is dropped, so the same rows give the same file however they were read:
the file's SHA-256 can then serve as the dataset's version.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from medops.data.sources import frame_to_arrow
from medops.errors import InvalidInput

ROW_GROUP_ROWS = 65_536


class ParquetSink:
    def __init__(self, path: Path, where: str) -> None:
        self.path = path
        self.where = where
        self.rows = 0
        self.schema: pa.Schema | None = None
        self._writer: pq.ParquetWriter | None = None
        self._pending: list[pa.Table] = []
        self._held = 0
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="medops-parquet")
        self._writing: Future[None] | None = None

    @property
    def total(self) -> int:
        """Rows written or still held for the next row group."""
        return self.rows + self._held

    def write(self, chunk: pa.Table | pd.DataFrame) -> None:
        table = frame_to_arrow(chunk) if isinstance(chunk, pd.DataFrame) else chunk.replace_schema_metadata(None)
        if self.schema is None:
            self.schema = table.schema
        elif table.schema != self.schema:
            table = self._conform(table)
        if table.num_rows == 0:
            return
        self._pending.append(table)
        self._held += table.num_rows
        if self._held >= ROW_GROUP_ROWS:
            merged = pa.concat_tables(self._pending)
            full = self._held - self._held % ROW_GROUP_ROWS
            for start in range(0, full, ROW_GROUP_ROWS):
                self._emit(merged.slice(start, ROW_GROUP_ROWS))
            rest = merged.slice(full)
            self._pending, self._held = [rest], rest.num_rows

    def _conform(self, table: pa.Table) -> pa.Table:
        assert self.schema is not None
        if table.schema.names != self.schema.names:
            raise InvalidInput(f"{self.where}: the columns changed between chunks")
        columns = []
        for field, column in zip(self.schema, table.columns, strict=True):
            if column.type == field.type:
                columns.append(column)
                continue
            try:
                columns.append(column.cast(field.type))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                raise InvalidInput(
                    f"{self.where}, column {field.name!r}: holds {column.type} values after {field.type} ones",
                    hint="declare the column's type in the table's contract",
                ) from None
        return pa.Table.from_arrays(columns, schema=self.schema)

    def _emit(self, table: pa.Table) -> None:
        """Write a row group in the writer thread (Arrow releases the GIL), one group in flight at most."""
        assert self.schema is not None
        if self._writer is None:
            self._writer = pq.ParquetWriter(self.path, self.schema, compression="snappy")
        self._wait()
        self._writing = self._thread.submit(self._writer.write_table, table.combine_chunks(), ROW_GROUP_ROWS)
        self.rows += table.num_rows

    def _wait(self) -> None:
        if self._writing is not None:
            writing, self._writing = self._writing, None
            writing.result()

    def close(self) -> int:
        """Flush the last row group and close; an empty sink still writes its schema."""
        if self._held:
            self._emit(pa.concat_tables(self._pending))
        self._pending, self._held = [], 0
        self._wait()
        self._thread.shutdown()
        if self._writer is None:
            if self.schema is None:
                raise InvalidInput(f"{self.where}: no rows and no columns to write")
            self._writer = pq.ParquetWriter(self.path, self.schema, compression="snappy")
        self._writer.close()
        return self.rows

    def abort(self) -> None:
        try:
            self._wait()
        except Exception:  # noqa: BLE001 - the file is being thrown away anyway
            pass
        self._thread.shutdown()
        if self._writer is not None:
            try:
                self._writer.close()
            except Exception:  # noqa: BLE001 - the file is being thrown away anyway
                pass
        self.path.unlink(missing_ok=True)
