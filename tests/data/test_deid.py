"""De-identification: no PHI survives, pseudonyms are stable and keyed, intervals are kept."""

from __future__ import annotations

import re

import pandas as pd
import pyarrow as pa
import pytest

from medops.data import duck
from medops.data.deid import RESTRICTED_ZIP3, Deidentifier, Pseudonymizer, zip3_sql
from medops.errors import ConfigError, InvalidInput
from medops.identity.pseudonym_key import load_key
from medops.synth import generate, vocab

KEY = b"k" * 32
PATIENT_ACTIONS = {
    "patient_id": "pseudonymize",
    "mrn": "drop",
    "ssn": "drop",
    "first_name": "drop",
    "last_name": "drop",
    "sex": "keep",
    "birth_date": "age",
    "race_ethnicity": "keep",
    "address": "drop",
    "city": "drop",
    "state": "keep",
    "zip": "zip3",
    "phone": "drop",
    "email": "drop",
    "payer": "keep",
    "home_site": "keep",
    "pcp_id": "pseudonymize",
}
NOTE_ACTIONS = {
    "note_id": "pseudonymize",
    "encounter_id": "pseudonymize",
    "patient_id": "pseudonymize",
    "written_at": "year",
    "text": "redact_text",
    "first_name": "drop",
    "last_name": "drop",
}


@pytest.fixture(scope="module")
def data():  # type: ignore[no-untyped-def]
    return generate(1500, seed=31)


def _cells(frame: pd.DataFrame) -> list[str]:
    return [str(v) for v in frame.astype("string").fillna("").to_numpy().ravel()]


def test_no_phi_survives(data) -> None:  # type: ignore[no-untyped-def]
    pts = data.patients
    notes = data.notes.merge(pts[["patient_id", "first_name", "last_name"]], on="patient_id")
    deid_p = Deidentifier(PATIENT_ACTIONS, Pseudonymizer(KEY))
    deid_n = Deidentifier(NOTE_ACTIONS, Pseudonymizer(KEY))
    out = pd.concat([deid_p.apply(pts).to_pandas(), deid_n.apply(notes).to_pandas()], ignore_index=True)
    cells = "\n".join(_cells(out))
    for column in ("mrn", "ssn", "phone", "email", "address"):
        leaked = [v for v in pts[column] if v in cells]
        assert not leaked, (column, leaked[:3])
    words = set(re.findall(r"[A-Za-z][A-Za-z'-]+", cells))
    assert not words & set(vocab.FIRST_F + vocab.FIRST_M + vocab.LAST)
    assert not re.search(r"\d{4}-\d{2}-\d{2}|\d{1,2}/\d{1,2}/\d{4}", cells)  # no full dates
    assert not any(v in cells for v in pts["patient_id"])
    ages = out["age"].dropna()
    assert ages.isin([str(a) for a in range(0, 90)] + ["90+"]).all() and (ages == "90+").any()
    assert set(out["zip3"].dropna()) & RESTRICTED_ZIP3 == set()
    assert "000" in set(out["zip3"])  # 03601 and 05901 are restricted prefixes
    report = deid_p.finish()
    assert report.columns["ssn"].action == "drop" and report.columns["ssn"].changed == len(pts)
    assert report.k_anonymity is not None and 0 <= (report.share_below_k5 or 0) <= 1
    assert deid_n.report.text_redactions["NAME"] >= len(notes) * 2


def _pseudonyms(key: bytes, ids: pd.Series) -> list[str]:
    deid = Deidentifier({"patient_id": "pseudonymize"}, Pseudonymizer(key))
    return deid.apply(pd.DataFrame({"patient_id": ids})).column("patient_id").to_pylist()


def test_pseudonyms_are_stable_and_keyed(data) -> None:  # type: ignore[no-untyped-def]
    ids = data.patients["patient_id"].head(50)
    a, b, c = _pseudonyms(KEY, ids), _pseudonyms(KEY, ids), _pseudonyms(b"z" * 32, ids)
    assert a == b and len(set(a)) == len(a)
    assert not set(a) & set(c)


@pytest.mark.parametrize("repeats", [1, 6])  # unique ids: hashed per row; repeated: once per distinct id
@pytest.mark.parametrize(
    "key", [b"k" * 32, b"a much longer key than one SHA-256 block of sixty-four bytes, hashed first"]
)
def test_sql_pseudonyms_and_shifts_equal_python_hmac(key: bytes, repeats: int) -> None:
    ids = pd.Series(["P000001", "p-2", "Ünïcode", "x" * 200] * repeats + [None])
    actions = {"patient_id": "pseudonymize", "t": "shift_dates"}
    frame = pd.DataFrame({"patient_id": ids, "t": ["2025-06-01T00:00:00Z"] * len(ids)})
    table = Deidentifier(actions, Pseudonymizer(key)).apply(frame)
    out, python = table.to_pandas(), Pseudonymizer(key)
    assert table.column("patient_id").to_pylist() == [python.one(v, "patient") for v in ids[:-1]] + [None]
    days = (out["t"] - pd.Timestamp("2025-06-01", tz="UTC")).dt.days
    assert list(days[:-1]) == [python.shift_days(v) for v in ids[:-1]] and 0 not in set(days)


def test_date_shift_keeps_intervals_per_patient(data) -> None:  # type: ignore[no-untyped-def]
    enc = data.encounters[["patient_id", "admit_time", "discharge_time"]].head(400)
    deid = Deidentifier(
        {"patient_id": "pseudonymize", "admit_time": "shift_dates", "discharge_time": "shift_dates"}, Pseudonymizer(KEY)
    )
    out = deid.apply(enc).to_pandas()
    assert ((out["discharge_time"] - out["admit_time"]) == (enc["discharge_time"] - enc["admit_time"])).all()
    shift = (out["admit_time"].dt.tz_localize(None) - enc["admit_time"]).dt.days
    assert shift.groupby(enc["patient_id"]).nunique().eq(1).all() and shift.abs().max() <= 183


def zip3(values: pd.Series) -> pd.Series:
    """The zip3 action's SQL over a Series (text and numbers mixed, as a flat extract holds them)."""
    table = pa.table({"z": pa.array(values.astype("string"), type=pa.string())})
    con = duck.connect()
    try:
        out = duck.query(con, f"SELECT {zip3_sql('z')} AS z FROM t", t=table)
    finally:
        con.close()
    return pd.Series(out.column("z").to_pylist(), index=values.index, dtype="string")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("02118", "021"),
        (2118, "021"),
        ("03601", "000"),
        (3601, "000"),
        ("10025-1234", "100"),
        ("8210", "082"),
        (501, "005"),
        ("abcde", None),
        (None, None),
    ],
)
def test_zip3(raw: object, expected: str | None) -> None:
    value = zip3(pd.Series([raw], dtype=object)).iloc[0]
    assert (pd.isna(value) and expected is None) or value == expected


def test_zip3_never_leaks_a_restricted_prefix() -> None:
    """Every five-digit ZIP, as a number and as text: the same ZIP3, never a restricted one."""
    values = list(range(100_000))
    numbers = zip3(pd.Series(values, dtype=object))
    texts = zip3(pd.Series([str(v).zfill(5) for v in values], dtype=object))
    assert (numbers == texts).all()
    assert not set(numbers) & RESTRICTED_ZIP3 and set(numbers.str.len()) == {3}
    assert (numbers == [("000" if f"{v:05d}"[:3] in RESTRICTED_ZIP3 else f"{v:05d}"[:3]) for v in values]).all()


def test_ages_and_years_at_the_90_boundary() -> None:
    frame = pd.DataFrame(
        {
            "patient_id": ["a", "b", "c", "d"],
            "birth_date": ["1936-01-02", "1936-01-01", "1935-12-31", "1996-02-29"],
            "admit": ["2026-01-01", "2026-01-01", "2026-01-01", "2026-01-01"],
        }
    )
    deid = Deidentifier({"patient_id": "pseudonymize", "birth_date": "age", "admit": "year"}, Pseudonymizer(KEY))
    out = deid.apply(frame).to_pandas()
    assert list(out["age"]) == ["89", "90+", "90+", "29"]
    assert [None if pd.isna(v) else v for v in out["admit_year"]] == [2026, None, None, 2026]


def test_text_redaction_patterns() -> None:
    deid = Deidentifier({"t": "redact_text"}, Pseudonymizer(KEY))
    text = (
        "Seen 3/4/2025, SSN 123-45-6789, call (617) 555-0199 or mail ann.lee@example.org; "
        "see https://portal.example.org/x from 10.0.0.12; MRN: 1234567. Wife Maria Lopez called."
    )
    out = deid.redact(text, ["Ann"])
    for phi in (
        "3/4/2025",
        "123-45-6789",
        "555-0199",
        "ann.lee",
        "portal.example",
        "10.0.0.12",
        "1234567",
        "Maria",
        "Lopez",
    ):
        assert phi not in out, phi
    assert "Wife [NAME]" in out


def test_every_column_needs_an_action_and_a_key() -> None:
    deid = Deidentifier({"patient_id": "pseudonymize"}, Pseudonymizer(KEY))
    with pytest.raises(InvalidInput, match="'ssn' has no de-identification action"):
        deid.apply(pd.DataFrame({"patient_id": ["a"], "ssn": ["123-45-6789"]}))
    with pytest.raises(InvalidInput, match="unknown action 'hash'"):
        Deidentifier({"x": "hash"}, Pseudonymizer(KEY))
    with pytest.raises(ConfigError, match="MEDOPS_PSEUDONYM_KEY is not set"):
        load_key({})
    with pytest.raises(ConfigError, match="too short"):
        load_key({"MEDOPS_PSEUDONYM_KEY": "short"})
    strong = "tKq8vR2pLw9xZc4mNb7hYf1sGd6jUe3a"
    assert load_key({"MEDOPS_PSEUDONYM_KEY": strong}) == strong.encode()


def test_k_anonymity_counts_people_not_rows() -> None:
    actions = {"patient_id": "pseudonymize", "sex": "keep", "zip": "zip3", "birth_date": "age", "visit": "keep"}
    rows = [("p1", "F", "02118", "1980-05-01"), ("p2", "F", "02119", "1982-01-01"), ("p3", "M", "02118", "1950-01-01")]
    frame = pd.DataFrame(
        [(*r, n) for r in rows for n in range(4)], columns=["patient_id", "sex", "zip", "birth_date", "visit"]
    )
    deid = Deidentifier(actions, Pseudonymizer(KEY))
    deid.apply(frame.iloc[:7])  # a patient's rows split across two chunks count once
    deid.apply(frame.iloc[7:])
    report = deid.finish()
    assert report.k_anonymity == 1  # p3 is alone in (70-79, M, 021); p1 and p2 share (40-49, F, 021)
    assert report.share_below_k5 == 1.0 and report.k_counts == "patients"
    rows_only = Deidentifier({c: a for c, a in actions.items() if c != "patient_id"}, Pseudonymizer(KEY))
    rows_only.apply(frame.drop(columns=["patient_id"]))
    assert rows_only.finish().k_anonymity == 4  # without a patient column, rows are all it can count


def test_a_numeric_age_is_top_coded_and_stays_a_number() -> None:
    frame = pd.DataFrame({"patient_id": ["a", "b", "c", "d"], "age": ["45", "89", "90", "104"], "sex": list("FMFM")})
    deid = Deidentifier({"patient_id": "pseudonymize", "age": "age", "sex": "keep"}, Pseudonymizer(KEY))
    out = deid.apply(frame).to_pandas()
    assert list(out["age"]) == [45, 89, 90, 90] and out["age"].dtype.kind == "f"
    report = deid.finish()
    assert report.columns["age"].changed == 1 and "90 and over recorded as 90" in report.columns["age"].note
    # a token the contract does not declare as missing, among ages in years: refused where it stands, not read
    # as a birth date and refused at the first age
    with_token = pd.DataFrame({"age": ["45", "", "NA", "104"]})
    with pytest.raises(InvalidInput, match=r"column 'age', row 3: not a number, among ages in years") as refused:
        Deidentifier({"age": "age"}, Pseudonymizer(KEY)).apply(with_token)
    assert "missing_values" in (refused.value.hint or "") and "NA" not in refused.value.message
    dates = Deidentifier({"age": "age"}, Pseudonymizer(KEY)).apply(pd.DataFrame({"age": ["1950-02-03", "1950"]}))
    assert dates.column("age").to_pylist() == ["75", "76"]  # mostly dates: birth dates, a bare year among them


def test_k_anonymity_over_the_declared_quasi_identifiers() -> None:
    frame = pd.DataFrame(
        {
            "patient_id": [f"p{i}" for i in range(12)] + ["p0"],  # p0 twice: counted once
            "age": [60] * 6 + [70] * 5 + [95, 60],
            "stage": ["II"] * 6 + ["III"] * 6 + ["II"],
        }
    )
    actions = {"patient_id": "pseudonymize", "age": "age", "stage": "keep"}
    deid = Deidentifier(actions, Pseudonymizer(KEY), quasi_identifiers=("age", "stage"))
    deid.apply(frame)
    report = deid.finish()
    assert report.quasi_identifiers == ["age", "stage"] and report.k_counts == "patients"
    assert report.k_anonymity == 1 and report.share_below_k5 == pytest.approx(1 / 12)  # the 95-year-old alone
    with pytest.raises(InvalidInput, match="quasi-identifier 'zip3' is not a column"):
        Deidentifier(actions, Pseudonymizer(KEY), quasi_identifiers=("zip3",)).apply(frame)


def test_kept_columns_that_look_identifying_are_warned_about_once() -> None:
    frame = pd.DataFrame(
        {
            "id": ["1", "2"],
            "patient_name": ["Ann Lee", "Bo Diaz"],
            "age": [64, 97],
            "los": [3, 4],
            "birth_year": [1962, 1929],  # 97 at the reference date (2026-01-01)
            "admit_year": [1930, 2025],  # not a birth year: no warning
        }
    )
    deid = Deidentifier({c: "keep" for c in frame.columns}, Pseudonymizer(KEY))
    deid.apply(frame)
    deid.apply(frame)
    warnings = deid.finish().warnings
    assert len(warnings) == 3
    assert "'patient_name' is kept but its name reads like a direct identifier" in warnings[0]
    assert "'age' is kept with ages above 89 (up to 97)" in warnings[1]
    assert "'birth_year' is kept with birth years of people 90 or older at 2026-01-01 (from 1929)" in warnings[2]
    # as a CSV hands them over without a contract: text, with a missing-value token among the numbers
    as_text = Deidentifier({"age": "keep", "yob": "keep"}, Pseudonymizer(KEY))
    as_text.apply(pd.DataFrame({"age": ["64", "NA", "93"], "yob": ["1962", "NA", "1933"]}))
    assert [w.split(" is kept")[0] for w in as_text.finish().warnings] == ["column 'age'", "column 'yob'"]
    younger = Deidentifier({"birth_year": "keep"}, Pseudonymizer(KEY))
    younger.apply(pd.DataFrame({"birth_year": [1937, 1980]}))  # 89 at the reference date: not yet
    assert younger.finish().warnings == []
