"""Sources read in bounded chunks and say exactly where bad input is, without quoting cells."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pandas as pd
import pytest

from medops.data import CsvSource, FhirNdjsonSource, ParquetSource, SqlSource
from medops.errors import SourceError
from medops.synth import generate, write


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    data = generate(400, seed=21)
    base = tmp_path_factory.mktemp("synth")
    return {fmt: write(data, base / fmt, fmt)[0].parent for fmt in ("csv", "parquet", "fhir")}


def _all(source, chunk_rows: int = 100) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    chunks = list(source.chunks(chunk_rows))
    assert all(len(c) <= chunk_rows for c in chunks)
    return pd.concat(chunks, ignore_index=True)


def test_csv_keeps_values_as_text_and_chunks(synthetic: dict[str, Path]) -> None:
    frame = _all(CsvSource(synthetic["csv"] / "patients.csv"), chunk_rows=64)
    assert len(frame) == 400 and frame["zip"].str.len().eq(5).all()
    assert (frame["zip"] == "03601").any()


def test_the_three_file_formats_agree(synthetic: dict[str, Path]) -> None:
    csv_ids = _all(CsvSource(synthetic["csv"] / "encounters.csv"))["encounter_id"]
    pq_ids = _all(ParquetSource(synthetic["parquet"] / "encounters.parquet"))["encounter_id"]
    fhir = _all(FhirNdjsonSource(synthetic["fhir"] / "Encounter.ndjson", "Encounter"))
    assert list(csv_ids) == list(pq_ids) == list(fhir["encounter_id"])
    patients = _all(FhirNdjsonSource(synthetic["fhir"] / "Patient.ndjson", "Patient"))
    original = _all(CsvSource(synthetic["csv"] / "patients.csv"))
    assert list(patients["mrn"]) == list(original["mrn"]) and list(patients["zip"]) == list(original["zip"])


def test_sql_source(tmp_path: Path) -> None:
    db = tmp_path / "src.db"
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE labs (id INTEGER, value REAL)")
        con.executemany("INSERT INTO labs VALUES (?, ?)", [(i, i / 10) for i in range(250)])
    frame = _all(SqlSource(f"sqlite:///{db}", "SELECT id, value FROM labs ORDER BY id"))
    assert len(frame) == 250 and frame["value"].iloc[-1] == pytest.approx(24.9)
    with pytest.raises(SourceError, match="query on .* failed: no such table"):
        _all(SqlSource(f"sqlite:///{db}", "SELECT * FROM missing"))


def _csv(tmp_path: Path, content: bytes, name: str = "in.csv") -> CsvSource:
    path = tmp_path / name
    path.write_bytes(content)
    return CsvSource(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"id,name,mrn\n1,Ann,MRN1\n2,Bob\n", r"line 3: expected 3 fields, found 2"),
        (b"id,name,mrn\n1,Ann,MRN1\n2,Bob,MRN2,extra\n", r"line 3: expected 3 fields, found 4"),
        (b"id;name;mrn\n1;Ann;MRN1\n", r"wrong delimiter"),
        (b"id,name\n1,Ann\n2,Jos\xe9\n", r"line 3: not UTF-8 text"),
        (b"", r"the file is empty"),
        (b"id,,mrn\n1,2,3\n", r"column 2 has no name"),
        (b"id,id\n1,2\n", r"'id' appears twice"),
    ],
)
def test_bad_csv_names_the_place_and_not_the_cell(tmp_path: Path, content: bytes, message: str) -> None:
    with pytest.raises(SourceError, match=message) as info:
        _all(_csv(tmp_path, content))
    assert "Bob" not in info.value.message and "Jos" not in info.value.message and "in.csv" in info.value.message


def test_missing_file_and_not_parquet(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no such file"):
        _all(CsvSource(tmp_path / "nope.csv"))
    (tmp_path / "x.parquet").write_bytes(b"PAR1 but not really")
    with pytest.raises(SourceError, match="not a Parquet file"):
        _all(ParquetSource(tmp_path / "x.parquet"))


def test_bad_ndjson(tmp_path: Path) -> None:
    good = json.dumps({"resourceType": "Patient", "id": "p1", "name": [{"family": "Doe", "given": ["Jane"]}]})
    path = tmp_path / "Patient.ndjson"
    path.write_text(good + "\n" + '{"resourceType": "Patient", "id": \n')
    with pytest.raises(SourceError, match=r"line 2: not valid JSON"):
        _all(FhirNdjsonSource(path, "Patient"))
    path.write_text(good + "\n" + json.dumps({"resourceType": "Encounter", "id": "e1"}) + "\n")
    with pytest.raises(SourceError, match=r"line 2: resourceType is 'Encounter', expected 'Patient'"):
        _all(FhirNdjsonSource(path, "Patient"))
    with pytest.raises(SourceError, match="not supported"):
        FhirNdjsonSource(path, "Appointment")
    path.write_text(good + "\n")
    frame = _all(FhirNdjsonSource(path, "Patient"))
    assert frame.loc[0, "last_name"] == "Doe" and frame.loc[0, "first_name"] == "Jane"


def test_fingerprint_follows_content(tmp_path: Path) -> None:
    a = _csv(tmp_path, b"id\n1\n", "a.csv")
    b = _csv(tmp_path, b"id\n1\n", "b.csv")
    c = _csv(tmp_path, b"id\n2\n", "c.csv")
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()


def test_csv_with_a_byte_order_mark(tmp_path: Path) -> None:
    frame = _all(_csv(tmp_path, b"\xef\xbb\xbfid,name\n1,Ann\n"))
    assert list(frame.columns) == ["id", "name"]
