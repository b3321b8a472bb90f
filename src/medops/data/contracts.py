"""Data contracts: a YAML file per table, compiled to a Pandera schema and applied per chunk.

A contract declares column types, nullability, plausible ranges, allowed codes,
uniqueness, cross-column rules, unit normalization and freshness, and what happens to
rows that break it: ``fail`` the ingest, ``quarantine`` them (kept apart with their
reasons), or ``warn``. Unknown keys in a contract are errors, not ignored.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import pandera.pandas as pa
import yaml
from pandera.errors import SchemaErrors
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from medops.errors import InvalidInput

TYPES = {"string": "string", "int": "Int64", "float": "Float64", "bool": "boolean", "datetime": "datetime64[ns, UTC]"}
SAMPLE_ROWS = 5


class DataContractError(InvalidInput):
    """A contract file is wrong, or data broke a contract whose outcome is ``fail``."""

    code = "data_contract"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ColumnSpec(_Strict):
    type: Literal["string", "int", "float", "bool", "datetime"] = "string"
    required: bool = True
    nullable: bool = True
    range: tuple[float, float] | None = None
    allowed: list[Any] | None = None
    unique: bool = False


class RuleSpec(_Strict):
    name: str
    expr: str
    when: str | None = None


class NormalizeSpec(_Strict):
    name: str
    when: str
    set: dict[str, str]


class FreshnessSpec(_Strict):
    column: str
    max_age_days: float = Field(gt=0)


class ContractSpec(_Strict):
    table: str
    version: int = 1
    on_failure: Literal["fail", "quarantine", "warn"] = "quarantine"
    columns: dict[str, ColumnSpec]
    unique: list[str] | None = None
    rules: list[RuleSpec] = []
    normalize: list[NormalizeSpec] = []
    freshness: FreshnessSpec | None = None

    @model_validator(mode="after")
    def _known_columns(self) -> ContractSpec:
        for name in (self.unique or []) + ([self.freshness.column] if self.freshness else []):
            if name not in self.columns:
                raise ValueError(f"{name!r} is not a declared column")
        return self


def load_contract(path: Path) -> ContractSpec:
    """Read and validate a contract file; errors name the file and the field path."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DataContractError(f"{path}: can't read the contract ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark else ""
        raise DataContractError(f"{path}{where}: not valid YAML") from None
    if not isinstance(raw, dict):
        raise DataContractError(f"{path}: a contract is a mapping with table, columns, ...")
    try:
        return ContractSpec.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        message = "unknown field" if first["type"] == "extra_forbidden" else first["msg"]
        raise DataContractError(f"{path}: {where}: {message}") from None


@dataclass
class RuleResult:
    rule: str
    failures: int = 0
    sample_rows: list[int] = field(default_factory=list)


@dataclass
class ValidationReport:
    table: str
    contract_version: int
    outcome: str
    rows: int = 0
    rows_failed: int = 0
    normalized: Counter[str] = field(default_factory=Counter)
    rules: dict[str, RuleResult] = field(default_factory=dict)
    stale: str | None = None

    @property
    def passed(self) -> bool:
        return self.rows_failed == 0 and self.stale is None

    def _record(self, rule: str, rows: list[int]) -> None:
        entry = self.rules.setdefault(rule, RuleResult(rule))
        entry.failures += len(rows)
        room = SAMPLE_ROWS - len(entry.sample_rows)
        entry.sample_rows.extend(rows[: max(room, 0)])


@dataclass
class Checked:
    """One chunk after the contract: rows that pass, and rows kept apart with their reasons."""

    good: pd.DataFrame
    quarantined: pd.DataFrame


class Contract:
    def __init__(self, spec: ContractSpec, *, source: str = "") -> None:
        self.spec = spec
        self.source = source or spec.table
        self.report = ValidationReport(spec.table, spec.version, spec.on_failure)
        self._seen_keys: set[tuple[Any, ...]] = set()
        self._offset = 0
        self._newest: pd.Timestamp | None = None
        self.schema = self._compile()

    @classmethod
    def from_file(cls, path: Path) -> Contract:
        return cls(load_contract(path), source=str(path))

    def _compile(self) -> pa.DataFrameSchema:
        columns = {}
        for name, col in self.spec.columns.items():
            checks = []
            if col.range is not None:
                checks.append(pa.Check.in_range(*col.range, name=f"{name}: range {col.range[0]:g}..{col.range[1]:g}"))
            if col.allowed is not None:
                checks.append(pa.Check.isin(col.allowed, name=f"{name}: allowed values"))
            columns[name] = pa.Column(
                nullable=col.nullable, checks=checks, unique=False, required=col.required, coerce=False, name=name
            )
        rules = [pa.Check(self._rule_fn(rule), name=f"rule: {rule.name}") for rule in self.spec.rules]
        return pa.DataFrameSchema(columns, checks=rules, strict=False)

    @staticmethod
    def _rule_fn(rule: RuleSpec) -> Any:
        def check(frame: pd.DataFrame) -> pd.Series:
            # A rule judges values that are there; a missing value is nullability's business.
            ok = frame.eval(rule.expr).astype("boolean").fillna(True).astype(bool)
            if rule.when:
                ok = ok | ~frame.eval(rule.when).fillna(False).astype(bool)
            return ok

        return check

    def apply(self, chunk: pd.DataFrame) -> Checked:
        """Coerce, normalize and check one chunk; raises on a ``fail`` contract with bad rows."""
        missing = [n for n, c in self.spec.columns.items() if c.required and n not in chunk.columns]
        if missing:
            raise DataContractError(
                f"{self.source}: required column {missing[0]!r} is missing",
                hint=f"the contract for {self.spec.table} needs it",
            )
        frame = chunk.reset_index(drop=True)
        reasons: dict[int, list[str]] = defaultdict(list)
        frame = self._coerce(frame, reasons)
        frame = self._normalize(frame)
        self._check(frame, reasons)
        self._check_unique(frame, reasons)
        self._track_freshness(frame)
        bad_rows = sorted(reasons)
        self.report.rows += len(frame)
        self.report.rows_failed += len(bad_rows)
        first_row = self._offset
        self._offset += len(frame)
        if bad_rows and self.spec.on_failure == "fail":
            rule = next(iter(reasons[bad_rows[0]]))
            raise DataContractError(
                f"{self.source}: row {first_row + bad_rows[0] + 1} breaks {rule} "
                f"({len(bad_rows)} bad rows in this chunk)",
                hint="fix the data, or set on_failure: quarantine",
            )
        mask = frame.index.isin(bad_rows)
        quarantined = frame[mask].copy()
        quarantined["_row"] = [first_row + i + 1 for i in quarantined.index]
        quarantined["_reasons"] = ["; ".join(reasons[i]) for i in quarantined.index]
        good = frame if self.spec.on_failure == "warn" else frame[~mask]
        return Checked(good=good.reset_index(drop=True), quarantined=quarantined.reset_index(drop=True))

    def _fail_rows(self, rule: str, rows: list[int], reasons: dict[int, list[str]]) -> None:
        for row in rows:
            if rule not in reasons[row]:
                reasons[row].append(rule)
        self.report._record(rule, [self._offset + r + 1 for r in rows])

    def _coerce(self, frame: pd.DataFrame, reasons: dict[int, list[str]]) -> pd.DataFrame:
        for name, col in self.spec.columns.items():
            if name not in frame:
                continue
            raw = frame[name]
            blank = raw.isna() | raw.astype("string").str.strip().eq("")
            if col.type == "datetime":
                value = pd.to_datetime(raw.where(~blank), errors="coerce", utc=True, format="mixed")
            elif col.type in ("int", "float"):
                value = pd.to_numeric(raw.where(~blank), errors="coerce")
                if col.type == "int":
                    whole = value.isna() | (value % 1 == 0)
                    value = value.where(whole)
                value = value.astype(TYPES[col.type])
            elif col.type == "bool":
                text = raw.astype("string").str.strip().str.lower()
                value = text.map({"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False})
                value = value.astype("boolean")
            else:
                value = raw.astype("string").where(~blank)
            broken = value.isna() & ~blank
            if broken.any():
                self._fail_rows(f"{name}: not a {col.type}", list(frame.index[broken]), reasons)
            frame[name] = value
        return frame

    def _normalize(self, frame: pd.DataFrame) -> pd.DataFrame:
        for rule in self.spec.normalize:
            mask = frame.eval(rule.when).fillna(False).astype(bool)
            if not mask.any():
                continue
            updates = {col: frame.loc[mask].eval(expr) for col, expr in rule.set.items()}
            for col, values in updates.items():
                if not isinstance(values, pd.Series):
                    values = pd.Series(values, index=frame.index[mask])
                frame.loc[mask, col] = values.astype(frame[col].dtype) if col in frame else values
            self.report.normalized[rule.name] += int(mask.sum())
        return frame

    def _check(self, frame: pd.DataFrame, reasons: dict[int, list[str]]) -> None:
        try:
            self.schema.validate(frame, lazy=True)
        except SchemaErrors as exc:
            failing: dict[str, set[int]] = defaultdict(set)
            for case in exc.failure_cases.itertuples(index=False):
                if pd.isna(case.index):
                    continue
                failing[self._label(case)].add(int(case.index))
            for label, rows in failing.items():
                self._fail_rows(label, sorted(rows), reasons)

    def _label(self, case: Any) -> str:
        """Name a Pandera failure the way the contract file does."""
        number = None if pd.isna(case.check_number) else int(case.check_number)
        if case.schema_context == "DataFrameSchema" and number is not None:
            return f"rule: {self.spec.rules[number].name}"
        if case.check == "not_nullable":
            return f"{case.column}: missing value"
        if case.schema_context == "Column" and number is not None:
            return str(self.schema.columns[case.column].checks[number].name)
        return f"{case.column}: {case.check}"

    def _check_unique(self, frame: pd.DataFrame, reasons: dict[int, list[str]]) -> None:
        keys = [[n] for n, c in self.spec.columns.items() if c.unique and n in frame]
        if self.spec.unique:
            keys.append(self.spec.unique)
        for key in keys:
            rows = []
            for i, values in zip(frame.index, frame[key].itertuples(index=False, name=None), strict=True):
                marker = (tuple(key), values)
                if marker in self._seen_keys:
                    rows.append(i)
                else:
                    self._seen_keys.add(marker)
            if rows:
                self._fail_rows(f"{'+'.join(key)}: duplicate", rows, reasons)

    def _track_freshness(self, frame: pd.DataFrame) -> None:
        if self.spec.freshness and self.spec.freshness.column in frame:
            newest = frame[self.spec.freshness.column].max()
            if pd.notna(newest) and (self._newest is None or newest > self._newest):
                self._newest = newest

    def finish(self, now: pd.Timestamp | None = None) -> ValidationReport:
        """Close the report; a stale table fails unless the contract only warns."""
        spec = self.spec.freshness
        if spec is not None:
            now = now or pd.Timestamp.now(tz="UTC")
            if self._newest is None or (now - self._newest).total_seconds() > spec.max_age_days * 86400:
                newest = "no rows" if self._newest is None else f"newest {spec.column} {self._newest:%Y-%m-%d}"
                self.report.stale = f"older than {spec.max_age_days:g} days ({newest})"
                if self.spec.on_failure != "warn":
                    raise DataContractError(f"{self.source}: the data is stale: {self.report.stale}")
        return self.report
