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
- ``year``: a date reduced to its year, kept as a number; for a person aged 90 or more at that
  date the year is withheld (missing) too (it would reveal the age).
- ``age``: age in whole years at a reference date, with 90 and over pooled as ``90+``.
- ``shift_dates``: every date of a patient moved by the same keyed offset (-182..182 days, never 0),
  keeping intervals. Date shifting is an expert-determination technique, not Safe Harbor.
- ``redact_text``: free text scanned for PHI and each finding replaced by its kind ("[NAME]",
  "[DATE]"): Presidio's analyzer with medops's rules and the record's own names (``text_phi``).
- ``keep``: no identifier; kept as is.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from medops.data import duck
from medops.data.duck_connections import Attached, DuckConnections
from medops.data.sources import frame_to_arrow
from medops.data.sql_expr import literal, quote_ident
from medops.errors import InvalidInput

if TYPE_CHECKING:
    from medops.data.text_phi import Redacted

ACTIONS = ("drop", "pseudonymize", "zip3", "year", "age", "shift_dates", "redact_text", "keep")
# ZIP3 prefixes whose areas hold 20,000 people or fewer: the union of HHS's 2000-census list
# and the newer list in Microsoft's FHIR anonymizer sample configuration (see docs).
RESTRICTED_ZIP3_VERSION = "hhs-2000+msft-sample-union-v1"
RESTRICTED_ZIP3 = frozenset("036 059 063 102 203 205 369 556 692 790 821 823 830 831 878 879 884 890 893".split())
MAX_SHIFT_DAYS = 182
# Below this share of distinct ids in a chunk, keyed digests run once per id and are mapped back.
REPEATED_IDS = 0.8
DISTINCT_SAMPLE = 5000  # rows the share is judged on


def action_error(action: str) -> str | None:
    """Why ``action`` is not a de-identification action (None when it is one)."""
    base, colon, kind = action.partition(":")
    if base in ACTIONS and (not colon or (base == "pseudonymize" and kind)):
        return None
    return f"unknown action {action!r} (actions: {', '.join(ACTIONS)}; pseudonymize:KIND names an id space)"


def pseudonym_kind(column: str, action: str, patient_column: str = "patient_id") -> str:
    """The id space a ``pseudonymize`` action keys ``column`` in: what a server must use to find the same pseudonym."""
    return action.partition(":")[2] or ("patient" if column == patient_column else column)


@dataclass(frozen=True)
class Pseudonymizer:
    """Keyed pseudonyms and date shifts, in Python (one value) and as SQL (whole columns).

    Both forms compute the same HMAC-SHA256; the SQL builds it from DuckDB's sha256 as
    RFC 2104 does (inner and outer padded key), so ingest never hashes row by row in Python.
    """

    key: bytes

    def one(self, value: object, kind: str) -> str | None:
        if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
            return None
        return f"{kind[:3]}_{hmac.digest(self.key, f'{kind}:{value}'.encode(), 'sha256').hex()[:20]}"

    def shift_days(self, patient: object) -> int:
        # Bytes 20-23 of the patient's keyed digest: the pseudonym shows only bytes 0-9.
        digest = hmac.digest(self.key, f"patient:{patient}".encode(), "sha256")
        days = int.from_bytes(digest[20:24], "big") % (2 * MAX_SHIFT_DAYS) - MAX_SHIFT_DAYS
        return days if days < 0 else days + 1  # never 0: that would keep real dates

    def sql_params(self) -> dict[str, bytes]:
        """The padded keys the SQL forms read as parameters: the key never appears in SQL text."""
        block = hashlib.sha256(self.key).digest() if len(self.key) > 64 else self.key
        block = block.ljust(64, b"\0")
        return {"hmac_inner": bytes(b ^ 0x36 for b in block), "hmac_outer": bytes(b ^ 0x5C for b in block)}

    @staticmethod
    def digest_sql(value: str, kind: str) -> str:
        """The keyed digest (hex) of ``kind:value``: HMAC-SHA256 as RFC 2104 builds it from SHA-256."""
        message = f"{literal(kind + ':')} || CAST({value} AS VARCHAR)"
        return f"sha256($hmac_outer::BLOB || unhex(sha256($hmac_inner::BLOB || encode({message}))))"

    @staticmethod
    def pseudonym_from_digest_sql(digest: str, kind: str) -> str:
        return f"({literal(kind[:3] + '_')} || substr({digest}, 1, 20))"

    @staticmethod
    def shift_from_digest_sql(digest: str) -> str:
        """Days (-182..182, never 0) from a patient digest; the SQL of ``shift_days``."""
        raw = f"CAST(('0x' || substr({digest}, 41, 8)) AS UBIGINT) % {2 * MAX_SHIFT_DAYS}"
        # raw 0..181 -> -182..-1 and raw 182..363 -> 1..182: never 0
        return f"(({raw})::INTEGER - {MAX_SHIFT_DAYS} + CAST(({raw}) >= {MAX_SHIFT_DAYS} AS INTEGER))"


_ZIP_TEXT = "regexp_replace(regexp_replace(trim(CAST({0} AS VARCHAR)), '-.*$', ''), '\\.0$', '')"


def zip3_sql(value: str) -> str:
    """ZIP (text, integer, ZIP+4) -> ZIP3, with restricted prefixes as 000, as SQL over ``value``."""
    restricted = ", ".join(literal(z) for z in sorted(RESTRICTED_ZIP3))

    def prefix3(prefix: str) -> str:
        return f"CASE WHEN {prefix} IN ({restricted}) THEN '000' ELSE {prefix} END"

    raw = f"CAST({value} AS VARCHAR)"
    text = _ZIP_TEXT.format(value)
    padded = f"substr(lpad({text}, 5, '0'), 1, 3)"
    general = f"CASE WHEN regexp_full_match({text}, '\\d{{1,5}}') THEN {prefix3(padded)} END"
    # Most ZIPs are five plain digits: only the others pay for the clean-up.
    return f"CASE WHEN regexp_full_match({raw}, '\\d{{5}}') THEN {prefix3(f'substr({raw}, 1, 3)')} ELSE {general} END"


def age_sql(birth: str, at: str) -> str:
    """Whole years from ``birth`` to ``at`` (both SQL timestamps or dates)."""
    return (
        f"(year({at}) - year({birth}) - CASE WHEN month({at}) * 100 + day({at}) "
        f"< month({birth}) * 100 + day({birth}) THEN 1 ELSE 0 END)"
    )


_IDENTIFIER_NAME = re.compile(
    r"(^|_)(name|first_?name|last_?name|surname|ssn|social_security|mrn|medical_record|phone|fax|e_?mail|address|"
    r"street|zip(code)?|postal|dob|birth_?date|ip_address|url|licen[cs]e|account|plate|vin|serial)(_|$)"
)
_AGE_NAME = re.compile(r"(^|_)age(_|$)|(^|_)age_?years?(_|$)")
_BIRTH_YEAR_NAME = re.compile(r"(^|_)(birth_?year|year_?of_?birth|yob)(_|$)")


def _is_number(kind: pa.DataType) -> bool:
    return bool(pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind))


def _read_numbers(
    con: duckdb.DuckDBPyConnection, values: pa.ChunkedArray
) -> tuple[pa.ChunkedArray, pa.ChunkedArray | None] | None:
    """A column's values as numbers (null where a value is none) and which non-empty texts are no number
    (None for a column of numbers); None for a column that is neither numbers nor text."""
    if _is_number(values.type):
        return values, None
    if not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
        return None
    out = duck.query(
        con,
        "SELECT TRY_CAST(trim(v) AS DOUBLE) AS n, "
        "v IS NOT NULL AND trim(v) <> '' AND TRY_CAST(trim(v) AS DOUBLE) IS NULL AS text FROM t",
        t=pa.table({"v": values}),
    )
    return out.column("n"), out.column("text")


def age_label_sql(age: str) -> str:
    return f"CASE WHEN {age} >= 90 THEN '90+' ELSE CAST({age} AS VARCHAR) END"


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
    k_counts: str = "rows"  # "patients" when the table has the patient column
    restricted_zip3_version: str = RESTRICTED_ZIP3_VERSION
    quasi_identifiers: list[str] = field(default_factory=list)  # what k-anonymity was counted over
    warnings: list[str] = field(default_factory=list)  # kept columns that look like identifiers; text scan limits
    text_engine: str | None = None  # what scanned free text (library, rules, NER model), when a column was

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
    quasi_identifiers: tuple[str, ...] = ()  # output columns k-anonymity counts over (default: age band, sex, ZIP3)
    report: DeidReport = field(default_factory=DeidReport)
    _qi: Counter[str] = field(default_factory=Counter)
    _warned: set[str] = field(default_factory=set)  # kept columns already warned about
    _con: duckdb.DuckDBPyConnection | None = field(default=None, repr=False)
    people_file: Path | None = None  # where the people per group are kept (removed by finish); memory without
    _people: Attached | None = field(default=None, repr=False, compare=False)
    databases: DuckConnections | None = field(default=None, repr=False, compare=False)  # the workspace's; None: own
    _own_databases: DuckConnections | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        for column, action in self.actions.items():
            problem = action_error(action)
            if problem:
                raise InvalidInput(f"de-identification of {column!r}: {problem}")
        if self.text_phi not in ("redact", "fail"):
            raise InvalidInput(f"text_phi must be 'redact' or 'fail', not {self.text_phi!r}")

    def _databases(self) -> DuckConnections:
        if self.databases is not None:
            return self.databases
        if self._own_databases is None:
            self._own_databases = DuckConnections()
        return self._own_databases

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        if self._con is None:
            self._con = self._databases().cursor(sandboxed=True)  # computes over the chunks it is given
        return self._con

    def apply(self, chunk: pa.Table | pd.DataFrame, rows: Sequence[int] | None = None) -> pa.Table:
        """De-identify one chunk; ``rows`` are its source row numbers, for error messages."""
        table = frame_to_arrow(chunk) if isinstance(chunk, pd.DataFrame) else chunk
        unknown = [c for c in table.column_names if c not in self.actions]
        if unknown:
            raise InvalidInput(
                f"column {unknown[0]!r} has no de-identification action",
                hint="every column needs one (keep, drop, pseudonymize, ...): unlisted columns could carry PHI",
            )
        table = self._typed_dates(table, rows)
        present = table.column_names
        outputs: list[tuple[str, str | None]] = []  # (name, SQL); no SQL: the input column as it is
        digests: dict[tuple[str, str], str] = {}  # (id column, kind) -> the SQL name of its keyed digest
        texts: list[str] = []
        reference = f"TIMESTAMPTZ '{self.reference_date.isoformat()}'"
        for column in present:
            action, ident = self.actions[column], quote_ident(column)
            changed = len(table) - table.column(column).null_count
            if action == "drop":
                self.report.add(column, action, changed)
            elif action == "keep":
                outputs.append((column, None))
                self.report.add(column, action, 0)
                self._warn_if_identifying(column, table.column(column))
            elif action.startswith("pseudonymize"):
                kind = pseudonym_kind(column, action, self.patient_column)
                digest = digests.setdefault((column, kind), f"_d{len(digests)}")
                outputs.append((column, Pseudonymizer.pseudonym_from_digest_sql(digest, kind)))
                self.report.add(column, action, changed)
            elif action == "zip3":
                outputs.append((f"{column}3", zip3_sql(f"t.{ident}")))
                self.report.add(column, action, changed, f"restricted list {RESTRICTED_ZIP3_VERSION}")
            elif action == "year":
                birth, value = f"t.{quote_ident(self.birth_column)}", f"t.{ident}"
                if self.birth_column in present and column != self.birth_column:
                    old = f"{age_sql(birth, value)} >= 90"
                else:
                    old = f"{age_sql(value, reference)} >= 90"
                # A number, so it stays usable as a feature and as a period; withheld (missing) at 90 and over.
                outputs.append((f"{column}_year", f"CASE WHEN COALESCE({old}, FALSE) THEN NULL ELSE year({value}) END"))
                self.report.add(column, action, changed, "a number; missing where the person was 90 or older")
            elif action == "age" and _is_number(table.column(column).type):
                # An age recorded as a number: top-coded, keeping the column a number a model can use.
                outputs.append((column, f"CASE WHEN t.{ident} >= 90 THEN 90 ELSE t.{ident} END"))
                over = pc.sum(pc.greater(table.column(column), 90)).as_py() or 0
                self.report.add(column, action, over, "ages of 90 and over recorded as 90 (read: 90+)")
            elif action == "age":
                outputs.append(("age", age_label_sql(age_sql(f"t.{ident}", reference))))
                self.report.add(column, action, changed, f"at {self.reference_date}, 90+ pooled")
            elif action == "shift_dates":
                if self.patient_column not in present:
                    raise InvalidInput(
                        f"shifting dates in {column!r} needs the patient id column {self.patient_column!r}"
                    )
                digest = digests.setdefault((self.patient_column, "patient"), f"_d{len(digests)}")
                outputs.append((column, f"t.{ident} + to_days({Pseudonymizer.shift_from_digest_sql(digest)})"))
                self.report.add(column, action, changed, "per-patient keyed offset")
            elif action == "redact_text":
                outputs.append((column, None))
                texts.append(column)
                self.report.add(column, action, changed)
        out = self._run(table, outputs, digests)
        for column in texts:
            index = out.column_names.index(column)
            out = out.set_column(index, column, self._redact(table, column, rows))
        self.report.rows += table.num_rows
        self._count_quasi_identifiers(out)
        return out

    def _run(
        self, table: pa.Table, outputs: list[tuple[str, str | None]], digests: dict[tuple[str, str], str]
    ) -> pa.Table:
        """One query for the computed columns. A keyed digest is computed per row, or, for a column
        whose ids repeat (an HCP's many patients), once per distinct id and joined back."""
        computed = [(name, sql) for name, sql in outputs if sql is not None]
        if not computed:
            return pa.Table.from_arrays([table.column(n) for n, _ in outputs], names=[n for n, _ in outputs])
        per_row = []
        params = self.pseudonymizer.sql_params() if digests else None
        for (column, kind), name in digests.items():
            ident = quote_ident(column)
            values = table.column(column)
            sample = values.slice(0, DISTINCT_SAMPLE)
            if pc.count_distinct(sample).as_py() > REPEATED_IDS * max(len(sample), 1):
                per_row.append(f"{Pseudonymizer.digest_sql(ident, kind)} AS {name}")
                continue
            # Once per distinct id, then mapped back by position in Arrow (keeps the row order).
            ids = values.cast(pa.string())
            found = duck.query(
                self.con,
                f"SELECT v, {Pseudonymizer.digest_sql('v', kind)} AS d "
                "FROM (SELECT DISTINCT v FROM ids WHERE v IS NOT NULL)",
                params,
                unordered=True,  # mapped back by value
                ids=pa.table({"v": ids}),
            )
            where = pc.index_in(ids, value_set=found.column("v"))
            table = table.append_column(name, found.column("d").take(where))
        source = f"(SELECT *, {', '.join(per_row)} FROM t) AS t" if per_row else "t"
        select = ", ".join([duck.ROW, *(f"{sql} AS {quote_ident(name)}" for name, sql in computed)])
        sql = f"SELECT {select} FROM {source}"
        out = duck.rows(self.con, sql, params if per_row else None, name="t", table=table)
        columns = [table.column(n) if sql is None else out.column(n) for n, sql in outputs]
        return pa.Table.from_arrays(columns, names=[n for n, _ in outputs])

    def _typed_dates(self, table: pa.Table, rows: Sequence[int] | None) -> pa.Table:
        """Columns that date actions read, as UTC timestamps; text that is no date is an error."""
        dated = {c for c, a in self.actions.items() if a in ("year", "age", "shift_dates")}
        if any(self.actions.get(c) == "year" for c in table.column_names):
            dated.add(self.birth_column)
        for column in [c for c in table.column_names if c in dated]:
            values = table.column(column)
            if pa.types.is_timestamp(values.type) and values.type.tz is not None:
                continue
            if self.actions.get(column) == "age" and (read := _read_numbers(self.con, values)) is not None:
                numbers, text = read
                strays = 0 if text is None else pc.sum(text).as_py() or 0
                if not strays:  # an age in years, not a birth date
                    table = table.set_column(table.column_names.index(column), column, numbers)
                    continue
                if len(numbers) - numbers.null_count > strays:  # mostly numbers: ages with a stray token in them
                    assert text is not None
                    row = self._row_number(int(pc.indices_nonzero(text)[0].as_py()), rows)
                    raise InvalidInput(
                        f"column {column!r}, row {row}: not a number, among ages in years",
                        hint="if it marks a missing value, declare it in the table's contract (missing_values)",
                    )
            parsed, bad = duck.parse_timestamps(self.con, values)
            if pc.any(bad).as_py():
                row = self._row_number(int(pc.indices_nonzero(bad)[0].as_py()), rows)
                raise InvalidInput(f"column {column!r}, row {row}: not a date", hint="dates must be ISO 8601")
            table = table.set_column(table.column_names.index(column), column, parsed)
        return table

    def _redact(self, table: pa.Table, column: str, rows: Sequence[int] | None) -> pa.Array:
        """Redact one text column; each row's own names (the name columns) are looked for too."""
        name_values = [table.column(c).to_pylist() for c in self.name_columns if c in table.column_names]
        texts = table.column(column).to_pylist()
        present = [i for i, text in enumerate(texts) if text is not None]
        own = [[str(values[i]) for values in name_values if isinstance(values[i], str)] for i in present]
        redacted = self._scan([str(texts[i]) for i in present], own)
        out: list[str | None] = [None] * len(texts)
        for i, found in zip(present, redacted, strict=True):
            if self.text_phi == "fail" and found.labels:
                row = self._row_number(i, rows)
                raise InvalidInput(
                    f"column {column!r}, row {row}: free text holds PHI ({', '.join(sorted(set(found.labels)))})",
                    hint="the project's de-identification says text_phi: fail; use redact to redact it instead",
                )
            out[i] = found.text
        return pa.array(out, type=pa.string())

    def redact(self, text: str, names: Iterable[str] = ()) -> str:
        """Redact PHI, and the given names of the text's own record, from one text."""
        return self._scan([text], [list(names)])[0].text

    def _scan(self, texts: list[str], names: list[list[str]]) -> list[Redacted]:
        # Imported here: the engine loads spaCy and Presidio (a second), which only text columns need.
        from medops.data import text_phi

        engine = text_phi.engine()
        if self.report.text_engine is None:
            self.report.text_engine = engine.description
            if engine.warning is not None:
                self.report.warnings.append(engine.warning)
        found = text_phi.redact_many(texts, names)
        for item in found:
            self.report.text_redactions.update(item.labels)
        return found

    def _count_quasi_identifiers(self, out: pa.Table) -> None:
        """Count people (or, without a patient column, rows) per combination of quasi-identifiers: those the
        project declares, else (age band, sex, ZIP3) from the age or the kept birth year."""
        names = out.column_names
        parts, columns = self._qi_key(names)
        if not parts:
            return
        qs = [f"q{i}" for i in range(len(parts))]
        key = ", ".join(f"{sql} AS {q}" for sql, q in zip(parts, qs, strict=True))  # grouped as columns

        patient = self.patient_column if self.patient_column in names else None
        columns = [c for c in dict.fromkeys([*columns, *([patient] if patient else [])]) if c in names]
        if patient:  # people, not rows: a patient with many encounters is one person in a group
            if self._people is None:
                self._people = self._databases().attach(self.people_file)
                typed = ", ".join(f"{q} VARCHAR" for q in qs)
                self._people.con.execute(f"CREATE TABLE people ({typed}, patient VARCHAR)")
            duck.query(
                self._people.con,
                f"INSERT INTO people SELECT DISTINCT {key}, CAST({quote_ident(patient)} AS VARCHAR) FROM t "
                f"WHERE {quote_ident(patient)} IS NOT NULL",
                unordered=True,
                t=out.select(columns),
            )
            return
        groups = duck.query(
            self.con, f"SELECT {key}, count(*) AS n FROM t GROUP BY ALL", unordered=True, t=out.select(columns)
        )
        for *qi, n in zip(*(groups.column(c).to_pylist() for c in (*qs, "n")), strict=True):
            self._qi["|".join(qi)] += n

    def _qi_key(self, names: list[str]) -> tuple[list[str], list[str]]:
        """SQL for each quasi-identifier (as text, 'unknown' when missing), and the columns they read."""
        if self.quasi_identifiers:
            missing = [c for c in self.quasi_identifiers if c not in names]
            if missing:
                raise InvalidInput(
                    f"quasi-identifier {missing[0]!r} is not a column after de-identification",
                    hint=f"columns: {', '.join(names)}",
                )
            self.report.quasi_identifiers = list(self.quasi_identifiers)
            parts = [f"COALESCE(CAST({quote_ident(c)} AS VARCHAR), 'unknown')" for c in self.quasi_identifiers]
            return parts, list(self.quasi_identifiers)
        zipc = next((c for c in names if c.endswith("zip3") or c == "zip3"), None)
        birth_year = f"{self.birth_column}_year"
        if "sex" not in names or zipc is None:
            return [], []
        if "age" in names:
            age = "TRY_CAST(age AS INTEGER)"
            pooled = "CAST(age AS VARCHAR) = '90+'"  # the age action's label for 90 and over
        elif birth_year in names:  # the age reached in the reference year, from the kept birth year
            age = f"({self.reference_date.year} - TRY_CAST({quote_ident(birth_year)} AS INTEGER))"
            pooled = "FALSE"  # a birth year of someone 90 or older is withheld: its band is unknown
        else:
            return [], []
        self.report.quasi_identifiers = ["age band", "sex", zipc]
        band = (
            f"CASE WHEN {age} >= 90 THEN '90+' WHEN {age} IS NOT NULL THEN CAST({age} // 10 * 10 AS VARCHAR) || '-' "
            f"|| CAST({age} // 10 * 10 + 9 AS VARCHAR) WHEN {pooled} THEN '90+' ELSE 'unknown' END"
        )
        parts = [
            band,
            "COALESCE(CAST(sex AS VARCHAR), 'unknown')",
            f"COALESCE(CAST({quote_ident(zipc)} AS VARCHAR), 'unknown')",
        ]
        return parts, [c for c in ("age", birth_year, "sex", zipc) if c in names]

    def _warn_if_identifying(self, column: str, values: pa.ChunkedArray) -> None:
        """A kept column whose name reads like a direct identifier, an age above 89, or a birth year of
        someone 90 or older at the reference date, is flagged once (an age or birth-year column is looked
        at in every chunk until one holds such a value)."""
        if column in self._warned:
            return
        warning = None
        if _IDENTIFIER_NAME.search(column.lower()):
            warning = (
                f"column '{column}' is kept but its name reads like a direct identifier: drop or pseudonymize it "
                "unless it is not one"
            )
        elif _AGE_NAME.search(column.lower()) and (read := _read_numbers(self.con, values)) is not None:
            top = pc.max(read[0]).as_py()
            if top is not None and top > 89:
                warning = (
                    f"column '{column}' is kept with ages above 89 (up to {top:g}): Safe Harbor pools 90 and over; "
                    "give it the age action"
                )
        elif _BIRTH_YEAR_NAME.search(column.lower()) and (read := _read_numbers(self.con, values)) is not None:
            earliest = pc.min(read[0]).as_py()
            if earliest is not None and earliest <= self.reference_date.year - 90:
                warning = (
                    f"column '{column}' is kept with birth years of people 90 or older at {self.reference_date} "
                    f"(from {earliest:g}): Safe Harbor removes a year that reveals such an age; give the birth "
                    "date the year action, or drop the column"
                )
        if warning is not None:
            self._warned.add(column)
            self.report.warnings.append(warning)

    def _row_number(self, index: int, rows: Sequence[int] | None) -> int:
        """The source's row number of the chunk's ``index``-th row (counted from 1 across chunks)."""
        return rows[index] if rows is not None else self.report.rows + index + 1

    def finish(self, k: int = 5) -> DeidReport:
        """Close the report: k-anonymity over the quasi-identifiers, when there are any."""
        if self._people is not None:
            groups = duck.query(
                self._people.con, "SELECT * EXCLUDE (patient), count(DISTINCT patient) AS n FROM people GROUP BY ALL"
            )
            qs = [c for c in groups.column_names if c != "n"]
            for *qi, n in zip(*(groups.column(c).to_pylist() for c in (*qs, "n")), strict=True):
                self._qi["|".join(qi)] += n
            self.report.k_counts = "patients"
        self.close()
        if self._qi:
            self.report.k_anonymity = min(self._qi.values())
            small = sum(n for n in self._qi.values() if n < k)
            self.report.share_below_k5 = small / sum(self._qi.values())
        return self.report

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
        if self._people is not None:
            self._people.close()
        self._con = self._people = None
        if self._own_databases is not None:
            self._own_databases.close()
            self._own_databases = None
