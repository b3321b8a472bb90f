"""HIPAA Safe Harbor de-identification (45 CFR 164.514(b)(2)) of tabular data, chunk by chunk.

Each column gets one action; what was done is counted for the de-identification report.

- ``drop``: remove the column (names, SSN, MRN, phone, fax, email, street, city, plan and
  account numbers, licence, vehicle and device ids, URLs, IPs, biometric ids, photos).
- ``pseudonymize`` (or ``pseudonymize:<kind>``): keyed pseudonym, HMAC-SHA256 with a secret from MEDOPS_PSEUDONYM_KEY;
  the same id and key give the same pseudonym in every ingest, so joins still work. The
  kind (default: ``patient`` for the patient id, else the column name) names the id space:
  ``attending_hcp_id`` and ``prescriber_hcp_id`` both take ``pseudonymize:hcp`` to join. A
  keyed hash of an identifier is *derived from* it (164.514(c)): keep the key out of the
  workspace and treat its use as a documented risk decision.
- ``zip3``: the first three ZIP digits, or ``000`` where all ZIPs with that prefix hold
  20,000 people or fewer (the restricted list below). Integer ZIPs that lost their leading
  zero and ZIP+4 are handled.
- ``year``: a date reduced to its year; for a person aged 90 or more at that date the year
  is withheld too (it would reveal the age).
- ``age``: age in whole years at a reference date, with 90 and over pooled as ``90+``.
- ``shift_dates``: every date of a patient moved by the same keyed offset (-182..182 days, never 0),
  keeping intervals. Date shifting is an expert-determination technique, not Safe Harbor.
- ``redact_text``: free text scanned for PHI (SSN, phone, email, MRN, dates, URLs, IPs,
  the record's own names, and relatives named after a relation word) and redacted.
- ``keep``: no identifier; kept as is.
"""

from __future__ import annotations

import base64
import hmac
import os
import re
import secrets
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from medops.errors import ConfigError, InvalidInput
from medops.identity.keys import write_private_file

KEY_ENV = "MEDOPS_PSEUDONYM_KEY"
ACTIONS = ("drop", "pseudonymize", "zip3", "year", "age", "shift_dates", "redact_text", "keep")
# ZIP3 prefixes whose areas hold 20,000 people or fewer: the union of HHS's 2000-census list
# and the newer list in Microsoft's FHIR anonymizer sample configuration (see docs).
RESTRICTED_ZIP3_VERSION = "hhs-2000+msft-sample-union-v1"
RESTRICTED_ZIP3 = frozenset("036 059 063 102 203 205 369 556 692 790 821 823 830 831 878 879 884 890 893".split())
MAX_SHIFT_DAYS = 182

_PATTERNS = [
    ("SSN", re.compile(r"\b(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}\b")),
    ("EMAIL", re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")),
    ("URL", re.compile(r"\bhttps?://\S+|\bwww\.\S+", re.I)),
    ("IP", re.compile(r"\b(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)\b")),
    ("MRN", re.compile(r"\bMRN[:#\s]*\d{5,}\b", re.I)),
    ("PHONE", re.compile(r"(?<!\d)(?:\+?1[\s.-]?)?\(?[2-9]\d{2}\)?[\s.-]?\d{3}[\s.-]?\d{4}(?!\d)")),
    ("DATE", re.compile(r"\b(?:\d{4}-\d{2}-\d{2}|\d{1,2}/\d{1,2}/\d{2,4}|\d{1,2}-\d{1,2}-\d{4})\b")),
]
_RELATIVE = re.compile(
    r"\b(?P<rel>daughter|son|wife|husband|sister|brother|mother|father|partner|spouse|niece|nephew)"
    r"(?P<sep>,?\s+)(?P<name>[A-Z][a-z'-]+(?:\s+[A-Z][a-z'-]+)?)",
    re.I,
)


def load_key(env: dict[str, str] | None = None, key_file: str | Path | None = None) -> bytes:
    """The pseudonymization secret (32+ bytes): MEDOPS_PSEUDONYM_KEY, else the workspace's key file.

    The key file lives outside the workspace (next to the signing key); it is never stored
    in the metadata database or the artifact store.
    """
    source = os.environ if env is None else env
    raw = source.get(KEY_ENV, "")
    where = KEY_ENV
    if not raw and key_file and Path(key_file).is_file():
        raw, where = Path(key_file).read_text(encoding="utf-8").strip(), str(key_file)
    if not raw:
        raise ConfigError(
            f"{KEY_ENV} is not set and there is no key file: pseudonyms need a secret key",
            hint='generate one with: python -c "import secrets; print(secrets.token_urlsafe(48))"',
        )
    try:
        key = base64.b64decode(raw, validate=True) if raw.endswith("=") else raw.encode("utf-8")
    except ValueError:
        key = raw.encode("utf-8")
    if len(key) < 32:
        raise ConfigError(f"the pseudonymization key in {where} is too short: use at least 32 bytes of random data")
    return key


def create_key_file(path: Path) -> bool:
    """A new random pseudonymization key, readable by its owner only; never overwritten."""
    if path.exists():
        return False
    write_private_file(path, secrets.token_urlsafe(48) + "\n")
    return True


def action_error(action: str) -> str | None:
    """Why ``action`` is not a de-identification action (None when it is one)."""
    base, colon, kind = action.partition(":")
    if base in ACTIONS and (not colon or (base == "pseudonymize" and kind)):
        return None
    return f"unknown action {action!r} (actions: {', '.join(ACTIONS)}; pseudonymize:KIND names an id space)"


CACHE_LIMIT = 200_000


@dataclass(frozen=True)
class Pseudonymizer:
    """Keyed pseudonyms and date shifts; ids repeat across chunks, so results are cached (bounded)."""

    key: bytes
    _cache: dict[tuple[str, str], str] = field(default_factory=dict, compare=False, repr=False)
    _shifts: dict[str, int] = field(default_factory=dict, compare=False, repr=False)

    def one(self, value: object, kind: str) -> str | None:
        if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
            return None
        return self._pseudonym(kind, str(value))

    def _pseudonym(self, kind: str, token: str) -> str:
        return f"{kind[:3]}_{hmac.digest(self.key, f'{kind}:{token}'.encode(), 'sha256').hex()[:20]}"

    def series(self, values: pd.Series, kind: str) -> pd.Series:
        uniques = pd.unique(values.dropna().to_numpy(dtype=object))
        cache = self._cache
        if len(cache) > CACHE_LIMIT:
            cache.clear()
        mapping = {}
        for v in uniques:
            token = str(v)
            hit = cache.get((kind, token))
            if hit is None:
                hit = cache[(kind, token)] = self._pseudonym(kind, token)
            mapping[v] = hit
        return values.map(mapping).astype("string")

    def shift_days(self, patient: object) -> int:
        token = str(patient)
        days = self._shifts.get(token)
        if days is None:
            if len(self._shifts) > CACHE_LIMIT:
                self._shifts.clear()
            digest = hmac.digest(self.key, f"dateshift:{token}".encode(), "sha256")
            days = int.from_bytes(digest[:4], "big") % (2 * MAX_SHIFT_DAYS) - MAX_SHIFT_DAYS
            days = self._shifts[token] = days if days < 0 else days + 1  # never 0: that would keep real dates
        return days


def zip3(values: pd.Series) -> pd.Series:
    """ZIP (text, integer, ZIP+4) -> ZIP3, with restricted prefixes as 000."""
    # Arrow-backed strings: the text functions run in C++ rather than per value in Python.
    text = values.astype("string[pyarrow]").str.strip().str.replace(r"-.*$", "", regex=True)
    text = text.str.replace(r"\.0$", "", regex=True)
    digits = text.where(text.str.fullmatch(r"\d{1,5}").fillna(False))
    padded = digits.str.zfill(5).str[:3]
    return padded.where(~padded.isin(RESTRICTED_ZIP3), "000").where(padded.notna()).astype("string")


def _dates(values: pd.Series, column: str) -> pd.Series:
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert("UTC")
    if pd.api.types.is_datetime64_dtype(values.dtype):
        return values.dt.tz_localize("UTC")
    parsed = pd.to_datetime(values, errors="coerce", utc=True)
    bad = parsed.isna() & values.notna() & values.astype("string").str.strip().ne("")
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise InvalidInput(f"column {column!r}, row {row + 1}: not a date", hint="dates must be ISO 8601")
    return parsed


def age_years(birth: pd.Series, at: pd.Series | pd.Timestamp) -> pd.Series:
    b = _dates(birth, "birth_date")
    a = at if isinstance(at, pd.Timestamp) else _dates(at, "reference date")
    years = a.dt.year - b.dt.year if not isinstance(a, pd.Timestamp) else a.year - b.dt.year
    month_day_a = (a.dt.month * 100 + a.dt.day) if not isinstance(a, pd.Timestamp) else a.month * 100 + a.day
    before_birthday = month_day_a < b.dt.month * 100 + b.dt.day
    return (years - before_birthday.astype(int)).astype("Int64")


def age_label(age: pd.Series) -> pd.Series:
    return age.astype("string").where(age < 90, "90+")


@dataclass
class ColumnReport:
    column: str
    action: str
    changed: int = 0
    note: str = ""


@dataclass
class DeidReport:
    columns: dict[str, ColumnReport] = field(default_factory=dict)
    text_redactions: Counter[str] = field(default_factory=Counter)
    rows: int = 0
    k_anonymity: int | None = None
    share_below_k5: float | None = None
    restricted_zip3_version: str = RESTRICTED_ZIP3_VERSION

    def add(self, column: str, action: str, changed: int, note: str = "") -> None:
        entry = self.columns.setdefault(column, ColumnReport(column, action, 0, note))
        entry.changed += changed


@dataclass
class Deidentifier:
    """Applies per-column actions to chunks and keeps one report across all of them."""

    actions: dict[str, str]
    pseudonymizer: Pseudonymizer
    patient_column: str = "patient_id"
    birth_column: str = "birth_date"
    reference_date: date = date(2026, 1, 1)
    name_columns: tuple[str, ...] = ("first_name", "last_name")
    text_phi: str = "redact"
    report: DeidReport = field(default_factory=DeidReport)
    _qi: Counter[tuple[str, str, str]] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        for column, action in self.actions.items():
            problem = action_error(action)
            if problem:
                raise InvalidInput(f"de-identification of {column!r}: {problem}")
        if self.text_phi not in ("redact", "fail"):
            raise InvalidInput(f"text_phi must be 'redact' or 'fail', not {self.text_phi!r}")

    def apply(self, chunk: pd.DataFrame, rows: Sequence[int] | None = None) -> pd.DataFrame:
        """De-identify one chunk; ``rows`` are its source row numbers, for error messages."""
        unknown = [c for c in chunk.columns if c not in self.actions]
        if unknown:
            raise InvalidInput(
                f"column {unknown[0]!r} has no de-identification action",
                hint="every column needs one (keep, drop, pseudonymize, ...): unlisted columns could carry PHI",
            )
        out = pd.DataFrame(index=chunk.index)
        patients = chunk[self.patient_column] if self.patient_column in chunk else None
        for column in chunk.columns:
            action, values = self.actions[column], chunk[column]
            if action == "drop":
                self.report.add(column, action, int(values.notna().sum()))
            elif action == "keep":
                out[column] = values
                self.report.add(column, action, 0)
            elif action.startswith("pseudonymize"):
                kind = action.partition(":")[2] or ("patient" if column == self.patient_column else column)
                out[column] = self.pseudonymizer.series(values, kind)
                self.report.add(column, action, int(values.notna().sum()))
            elif action == "zip3":
                out[f"{column}3"] = zip3(values)
                self.report.add(column, action, int(values.notna().sum()), f"restricted list {RESTRICTED_ZIP3_VERSION}")
            elif action == "year":
                out[f"{column}_year"] = self._year(chunk, column)
                self.report.add(column, action, int(values.notna().sum()))
            elif action == "age":
                out["age"] = age_label(age_years(values, pd.Timestamp(self.reference_date, tz="UTC")))
                self.report.add(column, action, int(values.notna().sum()), f"at {self.reference_date}, 90+ pooled")
            elif action == "shift_dates":
                out[column] = self._shift(values, patients, column)
                self.report.add(column, action, int(values.notna().sum()), "per-patient keyed offset")
            elif action == "redact_text":
                out[column] = self._redact(chunk, column, rows)
                self.report.add(column, action, int(values.notna().sum()))
        self.report.rows += len(chunk)
        self._count_quasi_identifiers(out)
        return out

    def _year(self, chunk: pd.DataFrame, column: str) -> pd.Series:
        moments = _dates(chunk[column], column)
        years = moments.dt.year.astype("Int64").astype("string")
        if self.birth_column in chunk and column != self.birth_column:
            old = age_years(chunk[self.birth_column], moments) >= 90
        else:
            old = age_years(chunk[column], pd.Timestamp(self.reference_date, tz="UTC")) >= 90
        return years.where(~old.fillna(False), "90+")

    def _shift(self, values: pd.Series, patients: pd.Series | None, column: str) -> pd.Series:
        if patients is None:
            raise InvalidInput(f"shifting dates in {column!r} needs the patient id column {self.patient_column!r}")
        uniques = pd.unique(patients.dropna().to_numpy(dtype=object))
        offsets = patients.map({p: self.pseudonymizer.shift_days(p) for p in uniques})
        return _dates(values, column) + pd.to_timedelta(offsets, unit="D")

    def _redact(self, chunk: pd.DataFrame, column: str, rows: Sequence[int] | None) -> pd.Series:
        name_values = [chunk[c].tolist() for c in self.name_columns if c in chunk]
        texts = chunk[column].astype("string")
        out: list[str | None] = []
        for i, text in enumerate(texts):
            if text is pd.NA or text is None:
                out.append(None)
                continue
            own = [str(values[i]) for values in name_values if isinstance(values[i], str)]
            before = sum(self.report.text_redactions.values())
            redacted = self.redact(str(text), own)
            if self.text_phi == "fail" and sum(self.report.text_redactions.values()) > before:
                row = rows[i] if rows is not None else self.report.rows + i + 1
                found = sorted(set(re.findall(r"\[([A-Z]+)\]", redacted)))
                raise InvalidInput(
                    f"column {column!r}, row {row}: free text holds PHI ({', '.join(found)})",
                    hint="the project's de-identification says text_phi: fail; use redact to redact it instead",
                )
            out.append(redacted)
        return pd.Series(out, index=chunk.index, dtype="string")

    def redact(self, text: str, names: Iterable[str] = ()) -> str:
        """Redact PHI patterns and the given names (whole words) from one text."""
        for label, pattern in _PATTERNS:
            text, n = pattern.subn(f"[{label}]", text)
            self.report.text_redactions[label] += n

        def relative(m: re.Match[str]) -> str:
            self.report.text_redactions["NAME"] += 1
            return f"{m['rel']}{m['sep']}[NAME]"

        text = _RELATIVE.sub(relative, text)
        for name in sorted({n for n in names if len(n) > 1}, key=len, reverse=True):
            text, n = re.subn(rf"\b{re.escape(name)}\b", "[NAME]", text)
            self.report.text_redactions["NAME"] += n
        return text

    def _count_quasi_identifiers(self, out: pd.DataFrame) -> None:
        sex = out["sex"] if "sex" in out else None
        zipc = next((out[c] for c in out.columns if c.endswith("zip3") or c == "zip3"), None)
        birth_year = f"{self.birth_column}_year"
        if "age" in out:
            age = out["age"]
        elif birth_year in out:  # the age reached in the reference year, from the kept birth year
            years = pd.to_numeric(out[birth_year], errors="coerce")
            age = (self.reference_date.year - years).astype("Int64").astype("string").where(years.notna(), "90+")
            age = age.where(out[birth_year].notna(), None)
        else:
            return
        if sex is None or zipc is None:
            return
        groups = pd.DataFrame(
            {"band": _age_bands(age), "sex": sex.astype("string").fillna("unknown"), "zip3": zipc.astype("string")}
        )
        self._qi.update(groups.fillna("unknown").value_counts().to_dict())

    def finish(self, k: int = 5) -> DeidReport:
        """Close the report: k-anonymity over (age band, sex, ZIP3) when those columns exist."""
        if self._qi:
            self.report.k_anonymity = min(self._qi.values())
            small = sum(n for n in self._qi.values() if n < k)
            self.report.share_below_k5 = small / sum(self._qi.values())
        return self.report


def _age_bands(age: pd.Series) -> pd.Series:
    """Ages ("37", "90+") as ten-year bands ("30-39", "90+"); missing as "unknown"."""
    text = age.astype("string")
    years = pd.to_numeric(text, errors="coerce")
    low = (years // 10 * 10).astype("Int64")
    band = low.astype("string") + "-" + (low + 9).astype("string")
    return band.where(years.notna(), text.where(text == "90+", "unknown")).fillna("unknown")
