"""Reading raw data in bounded chunks: CSV, Parquet, FHIR NDJSON and SQL queries.

Every source yields Arrow tables of at most ``chunk_rows`` rows (``tables``; ``chunks``
gives the same as pandas DataFrames), so memory follows the chunk, not the file. Values
stay as read (CSV cells as strings, so a ZIP code keeps its leading zero); the data
contract decides types later. Errors name the file and the
line, row or column, and never quote a cell: cells may hold PHI.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from sqlalchemy import create_engine, text
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from medops.config import redact_url
from medops.errors import SourceError
from medops.store.database import normalize_url

DEFAULT_CHUNK_ROWS = 100_000
# Arrow's CSV reader holds several blocks; 1 MB blocks read faster and hold a third of the
# memory of 4 MB ones (measured on 1M x 30 rows). A row may not be longer than a block.
CSV_BLOCK_BYTES = 1 << 20
_OTHER_DELIMITERS = (";", "\t", "|")


class Source(Protocol):
    """Something medops can ingest: a name for messages, chunks, and a content fingerprint."""

    @property
    def name(self) -> str: ...

    def tables(self, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> Iterator[pa.Table]: ...

    def chunks(self, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> Iterator[pd.DataFrame]: ...

    def fingerprint(self) -> str: ...


def frame_to_arrow(frame: pd.DataFrame) -> pa.Table:
    """A DataFrame as an Arrow table; untyped (object) columns become text so every chunk agrees."""
    fixed = frame.copy(deep=False)
    for column in fixed.columns:
        if fixed[column].dtype == object:
            fixed[column] = fixed[column].astype("string")
    table = pa.Table.from_pandas(fixed, preserve_index=False)
    return table.replace_schema_metadata(None)


class _Tabular:
    """``chunks``, the pandas view of ``tables``, for callers that want DataFrames."""

    def tables(self, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> Iterator[pa.Table]:
        raise NotImplementedError

    def chunks(self, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> Iterator[pd.DataFrame]:
        for table in self.tables(chunk_rows):
            yield table.to_pandas()


def _rechunk(tables: Iterator[pa.Table], chunk_rows: int) -> Iterator[pa.Table]:
    """Tables of exactly ``chunk_rows`` rows (the last one fewer), whatever sizes come in."""
    pending: list[pa.Table] = []
    held = 0
    for table in tables:
        pending.append(table)
        held += table.num_rows
        while held >= chunk_rows:
            merged = pa.concat_tables(pending)
            yield merged.slice(0, chunk_rows).combine_chunks()
            rest = merged.slice(chunk_rows)
            pending, held = [rest], rest.num_rows
    if held:
        yield pa.concat_tables(pending).combine_chunks()


def file_sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _require_file(path: Path) -> None:
    if not path.exists():
        raise SourceError(f"{path}: no such file")
    if not path.is_file():
        raise SourceError(f"{path}: not a file")
    if path.stat().st_size == 0:
        raise SourceError(f"{path}: the file is empty")


def _first_bad_utf8_line(path: Path) -> int | None:
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                return number
    return None


@dataclass
class _FileSource(_Tabular):
    """What every file source shares: its path is its name, its bytes its fingerprint."""

    path: Path

    @property
    def name(self) -> str:
        return str(self.path)

    def fingerprint(self) -> str:
        _require_file(self.path)
        return file_sha256(self.path)


@dataclass
class CsvSource(_FileSource):
    """A delimited text file, read by Arrow's streaming reader with strict row lengths."""

    delimiter: str = ","

    def header(self) -> list[str]:
        _require_file(self.path)
        with open(self.path, "rb") as handle:
            raw = handle.readline()
        try:
            line = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise SourceError(f"{self.path}, line 1: the header is not UTF-8 text") from None
        first = next(csv.reader([line.rstrip("\r\n")], delimiter=self.delimiter), [])
        if not first or not any(c.strip() for c in first):
            raise SourceError(f"{self.path}, line 1: no header row")
        if len(first) == 1:
            for other in _OTHER_DELIMITERS:
                if other in first[0]:
                    shown = "tab" if other == "\t" else repr(other)
                    raise SourceError(
                        f"{self.path}: the header has one column but contains {shown}: wrong delimiter?",
                        hint=f"set the source's delimiter to {shown}",
                    )
        blank = [i + 1 for i, c in enumerate(first) if not c.strip()]
        if blank:
            raise SourceError(f"{self.path}, line 1: column {blank[0]} has no name")
        dupes = sorted({c for c in first if first.count(c) > 1})
        if dupes:
            raise SourceError(f"{self.path}, line 1: column name {dupes[0]!r} appears twice")
        return first

    def tables(self, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> Iterator[pa.Table]:
        columns = self.header()
        bad: list[Any] = []

        def on_bad_row(row: Any) -> str:
            bad.append(row)
            return "error"

        try:
            reader = pacsv.open_csv(
                self.path,
                read_options=pacsv.ReadOptions(use_threads=False, block_size=CSV_BLOCK_BYTES),
                parse_options=pacsv.ParseOptions(delimiter=self.delimiter, invalid_row_handler=on_bad_row),
                convert_options=pacsv.ConvertOptions(
                    column_types={c: pa.string() for c in columns},
                    strings_can_be_null=False,
                    quoted_strings_can_be_null=False,
                ),
            )
            yield from _rechunk((pa.Table.from_batches([b]) for b in reader), chunk_rows)
        except pa.ArrowInvalid as exc:
            raise self._explain(exc, bad, len(columns)) from None

    def _explain(self, exc: Exception, bad: list[Any], expected: int) -> SourceError:
        if bad:
            row = bad[0]
            return SourceError(
                f"{self.path}, line {row.number}: expected {expected} fields, found {row.actual_columns}",
                hint="every row needs one value per header column (quote values that contain the delimiter)",
            )
        text = str(exc)
        if "UTF8" in text or "utf-8" in text.lower():
            line = _first_bad_utf8_line(self.path)
            return SourceError(
                f"{self.path}, line {line}: not UTF-8 text", hint="re-export the file as UTF-8 (e.g. iconv -t UTF-8)"
            )
        if "straddling" in text:
            return SourceError(
                f"{self.path}: a row is longer than {CSV_BLOCK_BYTES >> 20} MB, or a quote is never closed",
                hint="check for an unbalanced double quote",
            )
        return SourceError(f"{self.path}: can't be parsed as CSV ({text.splitlines()[0][:120]})")


@dataclass
class ParquetSource(_FileSource):
    def tables(self, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> Iterator[pa.Table]:
        _require_file(self.path)
        try:
            parquet = pq.ParquetFile(self.path)
        except (pa.ArrowInvalid, OSError) as exc:
            raise SourceError(f"{self.path}: not a Parquet file ({str(exc).splitlines()[0][:120]})") from None
        for batch in parquet.iter_batches(batch_size=chunk_rows):
            yield pa.Table.from_batches([batch]).replace_schema_metadata(None)


Flattener = Callable[[dict[str, Any]], dict[str, Any]]


def _get(resource: dict[str, Any], *path: Any) -> Any:
    value: Any = resource
    for key in path:
        if isinstance(key, int):
            value = value[key] if isinstance(value, list) and len(value) > key else None
        else:
            value = value.get(key) if isinstance(value, dict) else None
        if value is None:
            return None
    return value


def _ident(resource: dict[str, Any], system_suffix: str) -> Any:
    for ident in resource.get("identifier") or []:
        if str(ident.get("system", "")).endswith(system_suffix):
            return ident.get("value")
    return None


def _telecom(resource: dict[str, Any], system: str) -> Any:
    for entry in resource.get("telecom") or []:
        if entry.get("system") == system:
            return entry.get("value")
    return None


def _ref(value: Any) -> Any:
    return value.split("/", 1)[1] if isinstance(value, str) and "/" in value else value


FLATTENERS: dict[str, Flattener] = {
    "Patient": lambda r: {
        "patient_id": r.get("id"),
        "mrn": _ident(r, "mrn"),
        "ssn": _ident(r, "us-ssn"),
        "first_name": _get(r, "name", 0, "given", 0),
        "last_name": _get(r, "name", 0, "family"),
        "sex": {"female": "F", "male": "M"}.get(r.get("gender", ""), r.get("gender")),
        "birth_date": r.get("birthDate"),
        "address": _get(r, "address", 0, "line", 0),
        "city": _get(r, "address", 0, "city"),
        "state": _get(r, "address", 0, "state"),
        "zip": _get(r, "address", 0, "postalCode"),
        "phone": _telecom(r, "phone"),
        "email": _telecom(r, "email"),
    },
    "Encounter": lambda r: {
        "encounter_id": r.get("id"),
        "patient_id": _ref(_get(r, "subject", "reference")),
        "status": r.get("status"),
        "site": _get(r, "serviceProvider", "display"),
        "admit_time": _get(r, "period", "start"),
        "discharge_time": _get(r, "period", "end"),
        "primary_dx": _get(r, "reasonCode", 0, "coding", 0, "code"),
    },
    "Observation": lambda r: {
        "observation_id": r.get("id"),
        "patient_id": _ref(_get(r, "subject", "reference")),
        "encounter_id": _ref(_get(r, "encounter", "reference")),
        "loinc": _get(r, "code", "coding", 0, "code"),
        "code": _get(r, "code", "text"),
        "value": _get(r, "valueQuantity", "value"),
        "unit": _get(r, "valueQuantity", "unit"),
        "method": _get(r, "method", "text"),
        "observed_at": r.get("effectiveDateTime"),
    },
    "MedicationRequest": lambda r: {
        "request_id": r.get("id"),
        "patient_id": _ref(_get(r, "subject", "reference")),
        "drug": _get(r, "medicationCodeableConcept", "text"),
        "fill_date": r.get("authoredOn"),
        "days_supplied": _get(r, "dispenseRequest", "expectedSupplyDuration", "value"),
        "prescriber_hcp_id": _ref(_get(r, "requester", "reference")),
    },
}


@dataclass
class FhirNdjsonSource(_FileSource):
    """FHIR R4 Bulk Data NDJSON of one resource type, flattened to a table."""

    resource_type: str

    def __post_init__(self) -> None:
        if self.resource_type not in FLATTENERS:
            raise SourceError(
                f"FHIR resource type {self.resource_type!r} is not supported",
                hint=f"supported: {', '.join(FLATTENERS)}",
            )

    def tables(self, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> Iterator[pa.Table]:
        _require_file(self.path)
        flatten = FLATTENERS[self.resource_type]
        rows: list[dict[str, Any]] = []
        with open(self.path, "rb") as handle:
            for number, raw in enumerate(handle, start=1):
                if not raw.strip():
                    continue
                try:
                    resource = json.loads(raw.decode("utf-8"))
                except UnicodeDecodeError:
                    raise SourceError(f"{self.path}, line {number}: not UTF-8 text") from None
                except json.JSONDecodeError as exc:
                    raise SourceError(
                        f"{self.path}, line {number}: not valid JSON ({exc.msg} at column {exc.colno})"
                    ) from None
                if not isinstance(resource, dict):
                    raise SourceError(f"{self.path}, line {number}: not a JSON object")
                found = resource.get("resourceType")
                if found != self.resource_type:
                    raise SourceError(
                        f"{self.path}, line {number}: resourceType is {found!r}, expected {self.resource_type!r}",
                        hint="Bulk Data files hold one resource type each",
                    )
                rows.append(flatten(resource))
                if len(rows) >= chunk_rows:
                    yield frame_to_arrow(pd.DataFrame(rows))
                    rows = []
        if rows:
            yield frame_to_arrow(pd.DataFrame(rows))


@dataclass
class SqlSource(_Tabular):
    """The result of a query over any SQLAlchemy URL, fetched in chunks."""

    url: str
    query: str

    @property
    def name(self) -> str:
        return f"{redact_url(self.url)} :: {self.query[:60]}"

    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for chunk in self.chunks():
            digest.update(pd.util.hash_pandas_object(chunk, index=False).to_numpy().tobytes())
        return digest.hexdigest()

    def tables(self, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> Iterator[pa.Table]:
        try:
            engine = create_engine(normalize_url(self.url))
        except (ArgumentError, ImportError) as exc:
            raise SourceError(f"{redact_url(self.url)!r} is not a usable database URL: {exc}") from None
        try:
            with engine.connect() as conn:
                result = conn.execution_options(stream_results=True).execute(text(self.query))
                columns = list(result.keys())
                while rows := result.fetchmany(chunk_rows):
                    yield frame_to_arrow(pd.DataFrame(rows, columns=columns))
        except SQLAlchemyError as exc:
            first = str(getattr(exc, "orig", exc)).strip().splitlines()
            raise SourceError(f"query on {redact_url(self.url)} failed: {first[0] if first else exc}") from None
        finally:
            engine.dispose()
