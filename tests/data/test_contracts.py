"""Contracts catch what they must, normalize units, and name the broken rule and row."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import medops
from medops.data import CsvSource
from medops.data.contracts import Contract, ContractSpec, DataContractError, load_contract
from medops.synth import generate, write

EXAMPLES = Path(medops.__file__).parent / "templates" / "readmission" / "contracts"


def _run(contract: Contract, source: CsvSource, chunk_rows: int = 500) -> tuple[pd.DataFrame, pd.DataFrame]:
    good, bad = [], []
    for chunk in source.chunks(chunk_rows):
        checked = contract.apply(chunk)
        good.append(checked.good.to_pandas())
        bad.append(checked.quarantined.to_pandas())
    return pd.concat(good, ignore_index=True), pd.concat(bad, ignore_index=True)


@pytest.fixture(scope="module")
def drifted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("d") / "csv"
    write(generate(800, seed=41, scenario="unit_change"), folder, "csv")
    return folder


def test_unit_change_is_normalized_and_the_data_passes(drifted: Path) -> None:
    contract = Contract.from_file(EXAMPLES / "observations.yaml")
    good, bad = _run(contract, CsvSource(drifted / "observations.csv"))
    report = contract.finish(now=pd.Timestamp("2026-06-01", tz="UTC"))
    assert report.normalized["temperature F to C"] > 0
    temps = good[good["code"] == "temperature"]
    assert set(temps["unit"]) == {"C"} and temps["value"].between(30, 45).all()
    # Only the generator's entry errors (lost decimal, heart rate 0) are kept apart, none for units.
    assert set(bad["_reasons"]) <= {"rule: temperature 30-45 C", "rule: heart rate 20-300 /min"}
    assert 0 < len(bad) < len(good) * 0.005 and report.rows == len(good) + len(bad)
    assert not (bad["unit"] == "F").any()


def test_impossible_values_are_quarantined_with_reasons(drifted: Path, tmp_path: Path) -> None:
    natural = Contract.from_file(EXAMPLES / "observations.yaml")
    _, entry_errors = _run(natural, CsvSource(drifted / "observations.csv"))
    frame = pd.read_csv(drifted / "observations.csv", dtype=str)
    hr = frame.index[frame["code"] == "heart_rate"][:3]
    frame.loc[hr[0], "value"] = "400"
    frame.loc[hr[1], "value"] = "fast"
    frame.loc[hr[2], "code"] = "pulse_ox"
    frame.loc[frame.index[5], "observed_at"] = ""
    frame = pd.concat([frame, frame.iloc[[10]]], ignore_index=True)  # a duplicate (encounter, code)
    path = tmp_path / "obs.csv"
    frame.to_csv(path, index=False)
    contract = Contract.from_file(EXAMPLES / "observations.yaml")
    good, bad = _run(contract, CsvSource(path), chunk_rows=700)
    report = contract.finish(now=pd.Timestamp("2026-06-01", tz="UTC"))
    expected_bad = len(entry_errors) + 5
    assert len(bad) == expected_bad and len(good) == len(frame) - expected_bad
    reasons = " | ".join(bad["_reasons"])
    for expected in (
        "heart rate 20-300",
        "value: not a float",
        "code: allowed values",
        "observed_at: missing value",
        "encounter_id+code: duplicate",
    ):
        assert expected in reasons, expected
    assert int(hr[0]) + 1 in report.rules["rule: heart rate 20-300 /min"].sample_rows
    assert list(bad["_row"]) == sorted(bad["_row"])


def test_fail_outcome_stops_and_names_the_row(tmp_path: Path) -> None:
    (tmp_path / "enc.csv").write_text(
        "encounter_id,patient_id,admit_time,discharge_time\n"
        "E1,P1,2025-01-01T10:00:00Z,2025-01-03T10:00:00Z\n"
        "E2,P1,2025-02-05T10:00:00Z,2025-02-01T10:00:00Z\n"
    )
    (tmp_path / "c.yaml").write_text(
        "table: encounters\non_failure: fail\ncolumns:\n  encounter_id: {unique: true}\n  patient_id: {}\n"
        "  admit_time: {type: datetime}\n  discharge_time: {type: datetime}\n"
        "rules:\n  - {name: discharge after admit, expr: 'discharge_time >= admit_time'}\n"
    )
    contract = Contract.from_file(tmp_path / "c.yaml")
    with pytest.raises(DataContractError, match=r"enc|c.yaml") as info:
        _run(contract, CsvSource(tmp_path / "enc.csv"))
    assert "row 2 breaks rule: discharge after admit" in info.value.message


def test_missing_required_column_names_it(drifted: Path) -> None:
    contract = Contract.from_file(EXAMPLES / "encounters.yaml")
    chunk = next(CsvSource(drifted / "encounters.csv").chunks()).drop(columns=["admit_time"])
    with pytest.raises(DataContractError, match="required column 'admit_time' is missing"):
        contract.apply(chunk)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("table: t\ncolumns:\n  a: {type: float, rnage: [0, 1]}\n", r"columns.a.rnage: unknown field"),
        ("table: t\ncolumns:\n  a: {type: decimal}\n", r"columns.a.type"),
        ("table: t\non_failure: ignore\ncolumns: {a: {}}\n", r"on_failure"),
        ("table: t\ncolumns: {a: {}}\nunique: [b]\n", r"'b' is not a declared column"),
        ("table: t\ncolumns: [a\n", r"line \d+: not valid YAML"),
    ],
)
def test_contract_typos_are_named(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(DataContractError, match=message):
        load_contract(path)


def test_stale_data_fails(drifted: Path) -> None:
    contract = Contract.from_file(EXAMPLES / "observations.yaml")
    _run(contract, CsvSource(drifted / "observations.csv"))
    with pytest.raises(DataContractError, match="stale"):
        contract.finish(now=pd.Timestamp("2040-01-01", tz="UTC"))


def test_sql_checks_and_the_pandera_schema_agree(tmp_path: Path) -> None:
    """The contract compiles to SQL (for ingest) and to Pandera (for DataFrames): same verdict, row by row."""
    from pandera.errors import SchemaErrors

    (tmp_path / "c.yaml").write_text(
        "table: vitals\non_failure: quarantine\ncolumns:\n"
        "  id: {nullable: false}\n"
        "  hr: {type: float, range: [20, 300]}\n"
        "  unit: {allowed: [C, F]}\n"
        "  temp: {type: float}\n"
        "  start: {type: datetime}\n  end: {type: datetime}\n"
        "rules:\n"
        "  - {name: end after start, expr: 'end >= start'}\n"
        "  - {name: celsius plausible, expr: 'temp >= 30 and temp <= 45', when: \"unit == 'C'\"}\n"
    )
    contract = Contract.from_file(tmp_path / "c.yaml")
    t0 = pd.Timestamp("2025-01-01", tz="UTC")
    frame = pd.DataFrame(
        {
            "id": pd.array(["a", None, "c", "d", "e", "f", "g"], dtype="string"),
            "hr": pd.array([80.0, 19.0, 301.0, None, 20.0, 300.0, 75.0], dtype="Float64"),
            "unit": pd.array(["C", "C", "K", "F", None, "C", "C"], dtype="string"),
            "temp": pd.array([37.0, 50.0, 37.0, 99.0, 20.0, None, 29.9], dtype="Float64"),
            "start": [t0] * 7,
            "end": [t0 + pd.Timedelta(hours=h) for h in (1, -1, 0, 2, -3, 5, 1)],
        }
    )
    quarantined = contract.apply(frame).quarantined.to_pandas()
    pairs = zip(quarantined["_row"], quarantined["_reasons"], strict=True)
    ours = {int(row) - 1: set(reasons.split("; ")) for row, reasons in pairs}
    theirs: dict[int, set[str]] = {}
    schema = contract.pandera_schema()
    try:
        schema.validate(frame, lazy=True)
    except SchemaErrors as exc:
        for case in exc.failure_cases.itertuples(index=False):
            number = None if pd.isna(case.check_number) else int(case.check_number)
            if case.schema_context == "DataFrameSchema":
                label = f"rule: {contract.spec.rules[number].name}"
            elif case.check == "not_nullable":
                label = f"{case.column}: missing value"
            else:
                label = str(schema.columns[case.column].checks[number].name)
            theirs.setdefault(int(case.index), set()).add(label)
    assert ours == theirs and set(ours) == {1, 2, 4, 6}


def test_unique_keys_across_chunks_kept_on_disk_and_removed(tmp_path: Path) -> None:
    spec = load_contract_text(tmp_path, "table: t\ncolumns:\n  id: {unique: true}\n  n: {type: int}\n")
    keys = tmp_path / "run.keys.duckdb"
    contract = Contract(spec, keys_file=keys)
    first = contract.apply(pd.DataFrame({"id": ["a", "b", "b", None], "n": ["1", "2", "3", "4"]}))
    second = contract.apply(pd.DataFrame({"id": ["c", "a", None], "n": ["5", "6", "7"]}))
    assert keys.exists()
    stored = set(contract.seen.execute("SELECT a FROM seen_0").fetchall())
    plain = set(
        contract.seen.execute("SELECT (md5_number(x) >> 64)::UBIGINT FROM (VALUES ('a'), ('b')) v(x)").fetchall()
    )
    assert len(stored) == 3 and not stored & plain  # salted: the file can't be matched to ids
    assert first.quarantined.column("_row").to_pylist() == [3]  # the second "b"
    assert second.quarantined.column("_row").to_pylist() == [6]  # "a" again, one chunk later; missing ids pass
    contract.finish()
    assert not keys.exists() and not keys.with_name(keys.name + ".wal").exists()


def load_contract_text(folder: Path, text: str) -> ContractSpec:
    path = folder / "contract.yaml"
    path.write_text(text)
    return load_contract(path)


def test_declared_missing_value_tokens_are_missing_not_malformed(tmp_path: Path) -> None:
    """R writes NA, SAS writes '.': a flat extract full of them is data with gaps, not bad rows."""
    path = tmp_path / "extract.csv"
    path.write_text("id,age,albumin,stage,note\n1,NA,3.5,2,NA\n2,104, NA ,.,ok\n3,71,NaN,NULL,\n4,abc,4.1,3,x\n")
    spec = ContractSpec.model_validate(
        {
            "table": "extract",
            "missing_values": ["NA", "NaN", ".", "NULL"],
            "columns": {
                "id": {"type": "int"},
                "age": {"type": "int", "range": [0, 120]},
                "albumin": {"type": "float"},
                "stage": {"type": "int"},
                "note": {"type": "string", "missing_values": []},  # here NA is a word someone typed
            },
        }
    )
    good, bad = _run(Contract(spec), CsvSource(path))
    assert list(good["id"]) == [1, 2, 3] and list(bad["_row"]) == [4]  # only 'abc' is malformed
    assert "age: not an int" in bad["_reasons"][0]
    assert good["age"].isna().tolist() == [True, False, False] and good["albumin"].isna().tolist() == [
        False,
        True,
        True,
    ]
    assert good["stage"].isna().tolist() == [False, True, True] and list(good["note"][:2]) == ["NA", "ok"]


def test_a_large_chunk_keeps_each_value_on_its_row() -> None:
    """The typed columns DuckDB computes and the columns taken from the chunk as they are stay row
    for row together, in a chunk large enough for a parallel scan (a scan that reordered rows once
    put temperatures under hba1c in a retraining extract)."""
    rows = 40_000
    rng = np.random.default_rng(3)
    codes = np.array(["temperature", "heart_rate", "hba1c", "creatinine"])[rng.integers(0, 4, rows)]
    value = rng.normal(50, 20, rows).round(2)
    value[rng.random(rows) < 0.2] = np.nan  # labs not drawn
    table = pa.table(
        {
            "encounter_id": [f"E{i:07d}" for i in range(rows)],
            "patient_id": [f"P{i % 5000:06d}" for i in range(rows)],
            "code": codes,
            "value": value,
            "unit": np.where(codes == "temperature", "C", "mg/dL"),
            "method": np.full(rows, "lab"),
            "observed_at": pa.array(np.full(rows, np.datetime64("2026-01-01T00:00:00", "s"))).cast(
                pa.timestamp("s", tz="UTC")
            ),
            "site": np.full(rows, "north"),
        }
    )
    for _ in range(5):  # the reordering came and went from one run of the query to the next
        checked = Contract(load_contract(EXAMPLES / "observations.yaml")).apply(table)
        kept = pa.concat_tables([checked.good, checked.quarantined.drop_columns(["_row", "_reasons"])])
        kept = kept.sort_by("encounter_id")
        assert kept.column("encounter_id").to_pylist() == table.column("encounter_id").to_pylist()
        assert kept.column("code").to_pylist() == table.column("code").to_pylist()
        got = kept.column("value").to_numpy(zero_copy_only=False)
        assert np.array_equal(np.isnan(got), np.isnan(value))
        assert np.array_equal(got[~np.isnan(got)], value[~np.isnan(value)])
