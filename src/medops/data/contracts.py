"""Data contracts: a YAML file per table, compiled to SQL checks (and to a Pandera schema).

A contract declares column types, nullability, plausible ranges, allowed codes,
uniqueness, cross-column rules, unit normalization and freshness, and what happens to
rows that break it: ``fail`` the ingest, ``quarantine`` them (kept apart with their
reasons), or ``warn``. Unknown keys in a contract are errors, not ignored.

Ingest applies a contract chunk by chunk as DuckDB SQL over the Arrow chunk, which stays
in Arrow from the reader to the Parquet writer (benchmarks/bench_ingest.py times it
against the same checks in Pandera). The same contract also compiles to a Pandera schema
(``Contract.pandera_schema``) for checking a DataFrame in Python; a test holds the two to
the same verdicts.
"""

from __future__ import annotations

import ast
import secrets
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from medops.data import duck
from medops.data.duck_connections import Attached, DuckConnections
from medops.data.sources import frame_to_arrow
from medops.data.sql_expr import ExpressionError, literal, quote_ident, to_sql
from medops.errors import InvalidInput

if TYPE_CHECKING:
    import pandera.pandas as pa_schema

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
    missing_values: list[str] | None = None  # this column's tokens for "no value" (default: the contract's)


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
    # Cells that mean "no value" in this source, read as missing rather than as malformed values:
    # R writes NA, SAS writes ".", databases NULL. Blank cells are always missing.
    missing_values: list[str] = []
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

    def _record(self, rule: str, failures: int, rows: list[int]) -> None:
        entry = self.rules.setdefault(rule, RuleResult(rule))
        entry.failures += failures
        room = SAMPLE_ROWS - len(entry.sample_rows)
        entry.sample_rows.extend(rows[: max(room, 0)])


@dataclass
class Checked:
    """One chunk after the contract: rows that pass, and rows kept apart with ``_row`` and ``_reasons``."""

    good: pa.Table
    quarantined: pa.Table


_SQL_TYPES = {"string": "VARCHAR", "int": "BIGINT", "float": "DOUBLE", "bool": "BOOLEAN", "datetime": "TIMESTAMPTZ"}
_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no")


class Contract:
    def __init__(
        self,
        spec: ContractSpec,
        *,
        source: str = "",
        keys_file: Path | None = None,
        databases: DuckConnections | None = None,
    ) -> None:
        """``keys_file``: where the unique keys seen so far are kept (a DuckDB file, removed by
        ``close``), so memory stays bounded however many rows a table has; in memory without it.
        ``databases``: the workspace's DuckDB databases; without them, the contract opens its own."""
        self.spec = spec
        self._databases = databases or DuckConnections()
        self._own_databases = databases is None
        self.keys_file = keys_file
        self.source = source or spec.table
        self.report = ValidationReport(spec.table, spec.version, spec.on_failure)
        self._offset = 0
        self._newest: pd.Timestamp | None = None
        self._rules = [
            (r, self._sql(r.expr, f"rules[{i}].expr"), self._sql(r.when, f"rules[{i}].when"))
            for i, r in enumerate(spec.rules)
        ]
        self._normalize = [
            (
                n,
                self._sql(n.when, f"normalize[{i}].when"),
                {c: self._sql(e, f"normalize[{i}].set.{c}") for c, e in n.set.items()},
            )
            for i, n in enumerate(spec.normalize)
        ]
        for i, n in enumerate(spec.normalize):
            unknown = [c for c in n.set if c not in spec.columns]
            if unknown:
                raise DataContractError(f"{self.source}: normalize[{i}].set: {unknown[0]!r} is not a declared column")
        self._keys = [[n] for n, c in spec.columns.items() if c.unique] + ([spec.unique] if spec.unique else [])
        self._con: duckdb.DuckDBPyConnection | None = None
        self._seen: Attached | None = None
        # Unique keys (an MRN, say) are compared as hashes salted by a secret that lives only in
        # this process, so the hashes on disk can't be matched to identifiers afterwards.
        self._key_salt = secrets.token_hex(16)

    @classmethod
    def from_file(cls, path: Path) -> Contract:
        return cls(load_contract(path), source=str(path))

    def _sql(self, expression: str | None, where: str) -> str | None:
        if expression is None:
            return None
        try:
            return to_sql(expression, self.spec.columns)
        except ExpressionError as exc:
            raise DataContractError(f"{self.source}: {where}: {exc}") from None

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        if self._con is None:
            # sandboxed: the rules and normalizations are the project file's, turned into SQL
            self._con = self._databases.cursor(sandboxed=True)
        return self._con

    @property
    def seen(self) -> duckdb.DuckDBPyConnection:
        """The keys of earlier chunks: two 64-bit halves of an MD5 per key, one table per unique key."""
        if self._seen is None:
            self._seen = self._databases.attach(self.keys_file)
            for k in range(len(self._keys)):
                self._seen.con.execute(f"CREATE TABLE seen_{k} (a UBIGINT, b UBIGINT)")
        return self._seen.con

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
        if self._seen is not None:
            self._seen.close()
        self._con = self._seen = None
        if self._own_databases:
            self._databases.close()

    def pandera_schema(self) -> pa_schema.DataFrameSchema:
        """The contract's column checks and rules as Pandera, for a DataFrame of typed columns."""
        import pandera.pandas as pa_schema  # only here: ingest does not need it, and it is slow to import

        columns = {}
        for name, col in self.spec.columns.items():
            checks = []
            if col.range is not None:
                checks.append(pa_schema.Check.in_range(*col.range, name=_range_label(name, col.range)))
            if col.allowed is not None:
                checks.append(pa_schema.Check.isin(col.allowed, name=f"{name}: allowed values"))
            columns[name] = pa_schema.Column(
                nullable=col.nullable, checks=checks, required=col.required, coerce=False, name=name
            )
        rules = [pa_schema.Check(_eval_rule(rule), name=f"rule: {rule.name}") for rule in self.spec.rules]
        return pa_schema.DataFrameSchema(columns, checks=rules, strict=False)

    def apply(self, chunk: pa.Table | pd.DataFrame) -> Checked:
        """Coerce, normalize and check one chunk; raises on a ``fail`` contract with bad rows."""
        table = frame_to_arrow(chunk) if isinstance(chunk, pd.DataFrame) else chunk
        missing = [n for n, c in self.spec.columns.items() if c.required and n not in table.column_names]
        if missing:
            raise DataContractError(
                f"{self.source}: required column {missing[0]!r} is missing",
                hint=f"the contract for {self.spec.table} needs it",
            )
        checked, flags = self._evaluate(table)
        first_row = self._offset
        self._offset += table.num_rows
        self.report.rows += table.num_rows
        self._track_freshness(checked)
        return self._split(checked, flags, first_row)

    def _evaluate(self, table: pa.Table) -> tuple[pa.Table, list[tuple[str, pa.Array]]]:
        """Type, normalize and check a chunk in one query: the typed rows and one flag per rule (true: broken)."""
        table = self._blank_text_as_missing(table)
        sql, columns, labels, normalized, keys, computed = self._query(table.schema)
        out = duck.rows(self.con, sql, self._salt_param(sql), name="chunk", table=table)
        retry = self._reparse_dates(table, out, labels)
        if retry is not None:
            table = retry
            out = duck.rows(self.con, sql, self._salt_param(sql), name="chunk", table=table)
        for i, rule_name in normalized:
            count = pc.sum(out.column(f"_norm_{i}")).as_py()
            if count:
                self.report.normalized[rule_name] += count
        flags = [(label, out.column(f"_f{j}").combine_chunks()) for j, label in enumerate(labels)]
        for k, key in keys:
            halves = out.column(f"_h{k}a"), out.column(f"_h{k}b")
            flags.append((f"{'+'.join(key)}: duplicate", self._duplicates(k, *halves)))
        # Columns SQL did not change come straight from the Arrow chunk: no copy of their text.
        typed = [out.column(c) if c in computed else table.column(c) for c in columns]
        return pa.Table.from_arrays(typed, names=columns), flags

    def _blank_text_as_missing(self, table: pa.Table) -> pa.Table:
        """Declared text columns with blank cells (empty or spaces), and cells holding a declared
        missing-value token in any declared column, as missing values."""
        for name, col in self.spec.columns.items():
            tokens = self.spec.missing_values if col.missing_values is None else col.missing_values
            if (col.type != "string" and not tokens) or name not in table.column_names:
                continue
            values = table.column(name)
            if not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
                continue
            blank = pc.or_(pc.equal(values, ""), pc.utf8_is_space(values))  # no trimmed copy of the text
            if tokens:
                blank = pc.or_(blank, pc.is_in(pc.utf8_trim_whitespace(values), pa.array(tokens, values.type)))
            if pc.any(blank).as_py():
                missing = pa.scalar(None, values.type)
                table = table.set_column(table.column_names.index(name), name, pc.if_else(blank, missing, values))
        return table

    def _query(
        self, schema: pa.Schema
    ) -> tuple[str, list[str], list[str], list[tuple[int, str]], list[tuple[int, list[str]]], set[str]]:
        """The chunk's SQL, its data columns, rule labels (flag _f<j>), normalizations, unique keys
        and the columns the SQL computes (the others are taken from the chunk as they are)."""
        present = set(schema.names)
        cast, refine, checks = [], [], []
        computed: set[str] = set()
        for k, field_ in enumerate(schema):
            col, ident = self.spec.columns.get(field_.name), quote_ident(field_.name)
            if col is None or (col.type == "string" and duck.is_text(field_.type)):
                cast.append(ident)  # blank text is already missing (Contract._blank_text_as_missing)
                continue
            if col.type == "bool" and pa.types.is_boolean(field_.type):
                cast.append(ident)
                continue
            computed.add(field_.name)
            value, final = _cast_sql(ident, col.type, f"_raw{k}")
            cast.append(f"{value} AS {ident}, {ident} AS _raw{k}")
            if final:
                refine.append(f"{final} AS {ident}")
            raw = f"_raw{k}"
            there = f"{raw} IS NOT NULL"
            if duck.is_text(field_.type):
                there += f" AND trim({raw}) <> ''"
            elif pa.types.is_floating(field_.type):
                there += f" AND NOT isnan({raw})"
            article = "an" if col.type == "int" else "a"
            checks.append((f"{field_.name}: not {article} {col.type}", f"({ident} IS NULL AND {there})"))
        # Cast once, then refine (NaN as missing, whole numbers as int) and flag the cells that
        # were there but did not convert, as _t0, _t1, ... beside the typed values.
        raws = [f"_raw{k}" for k, f in enumerate(schema) if f.name in computed]
        ctes = [f"cast_ AS (SELECT {', '.join(cast)}, {duck.ROW} FROM chunk)"]  # duck.rows keeps the order
        exclude = f" EXCLUDE ({', '.join(raws)})" if raws else ""
        replace = f" REPLACE ({', '.join(refine)})" if refine else ""
        flags_sql = "".join(f", {sql} AS _t{j}" for j, (_, sql) in enumerate(checks))
        if refine:
            ctes.append(f"refined AS (SELECT *{replace} FROM cast_)")
            ctes.append(f"typed AS (SELECT *{exclude}{flags_sql} FROM refined)")
        else:
            ctes.append(f"typed AS (SELECT *{exclude}{flags_sql} FROM cast_)")
        type_checks = [(label, f"_t{j}") for j, (label, _) in enumerate(checks)]
        source, normalized = "typed", []
        for i, (step, when, sets) in enumerate(self._normalize):
            if not all(c in present for c in _names(step.when, *step.set.values(), *step.set)):
                continue
            normalized.append((i, step.name))
            computed.update(sets)
            replace = ", ".join(
                f"CASE WHEN COALESCE({when}, FALSE) THEN CAST({expr} AS {_SQL_TYPES[self.spec.columns[c].type]}) "
                f"ELSE {quote_ident(c)} END AS {quote_ident(c)}"
                for c, expr in sets.items()
            )
            ctes.append(f"n{i} AS (SELECT * REPLACE ({replace}), COALESCE({when}, FALSE) AS _norm_{i} FROM {source})")
            source = f"n{i}"
        rules: list[tuple[str, str]] = list(type_checks)
        for name, col in self.spec.columns.items():
            if name not in present:
                continue
            ident = quote_ident(name)
            if not col.nullable:
                rules.append((f"{name}: missing value", f"{ident} IS NULL"))
            if col.range is not None:
                lo, hi = col.range
                rules.append((_range_label(name, col.range), f"COALESCE({ident} < {lo!r} OR {ident} > {hi!r}, FALSE)"))
            if col.allowed is not None:
                items = ", ".join(literal(str(v) if col.type == "string" else v) for v in col.allowed)
                rules.append((f"{name}: allowed values", f"COALESCE({ident} NOT IN ({items}), FALSE)"))
        for rule, expr, when in self._rules:
            if not all(c in present for c in _names(rule.expr, rule.when)):
                continue
            broken = f"NOT COALESCE({expr}, TRUE)"
            rules.append((f"rule: {rule.name}", f"COALESCE({when}, FALSE) AND {broken}" if when else broken))
        select = [duck.ROW, *(quote_ident(c) for c in schema.names if c in computed)]
        select += [f"_norm_{i}" for i, _ in normalized]
        select += [f"({sql}) AS _f{j}" for j, (_, sql) in enumerate(rules)]
        keys, hashed = [], []
        for k, key in enumerate(self._keys):
            if all(c in present for c in key):
                if len(key) == 1:  # a missing value gives a missing hash: not compared
                    text = f"CAST({quote_ident(key[0])} AS VARCHAR)"
                else:  # a JSON list, so ("a,b", "c") and ("a", "b,c") differ
                    parts = ", ".join(f"CAST({quote_ident(c)} AS VARCHAR)" for c in key)
                    nulls = " OR ".join(f"{quote_ident(c)} IS NULL" for c in key)
                    text = f"CASE WHEN {nulls} THEN NULL ELSE to_json(list_value({parts})) END"
                hashed.append(f"md5_number($key_salt || {text}) AS _m{k}")
                select.append(
                    f"(_m{k} >> 64)::UBIGINT AS _h{k}a, (_m{k} & {(1 << 64) - 1}::UHUGEINT)::UBIGINT AS _h{k}b"
                )
                keys.append((k, key))
        if hashed:  # one MD5 per key, split into two 64-bit halves (Arrow has no 128-bit integer)
            ctes.append(f"keyed AS (SELECT *, {', '.join(hashed)} FROM {source})")
            source = "keyed"
        sql = f"WITH {', '.join(ctes)} SELECT {', '.join(select)} FROM {source}"
        return sql, list(schema.names), [label for label, _ in rules], normalized, keys, computed

    def _salt_param(self, sql: str) -> dict[str, Any] | None:
        return {"key_salt": self._key_salt} if "$key_salt" in sql else None

    def _reparse_dates(self, table: pa.Table, out: pa.Table, labels: list[str]) -> pa.Table | None:
        """Dates DuckDB could not read, given to pandas (``3/4/2025``); None when there are none."""
        fixed = table
        for name, col in self.spec.columns.items():
            if col.type != "datetime" or name not in table.column_names or not duck.is_text(table.column(name).type):
                continue
            label = f"{name}: not a datetime"
            flag = next((f"_f{j}" for j, f in enumerate(labels) if f == label), None)
            if flag is None or not pc.any(out.column(flag)).as_py():
                continue
            parsed, bad = duck.parse_timestamps(self.con, table.column(name))
            iso = pc.if_else(bad, table.column(name), pc.strftime(parsed, format="%Y-%m-%dT%H:%M:%SZ"))
            fixed = fixed.set_column(fixed.column_names.index(name), name, iso)
        return None if fixed is table else fixed

    def _duplicates(self, k: int, upper: pa.ChunkedArray, lower: pa.ChunkedArray) -> pa.Array:
        """Rows whose key came earlier, in this chunk or a previous one (keys with a missing part are not checked)."""
        keyed = pa.table({"_i": pa.array(np.arange(len(upper), dtype=np.int64)), "a": upper, "b": lower})
        repeated = duck.query(
            self.seen,
            "WITH twice AS (SELECT a, b, min(_i) AS first FROM keyed WHERE a IS NOT NULL GROUP BY a, b "
            "HAVING count(*) > 1) SELECT keyed._i FROM keyed JOIN twice ON keyed.a = twice.a AND keyed.b = twice.b "
            f"WHERE keyed._i > twice.first UNION ALL "
            f"SELECT _i FROM keyed SEMI JOIN seen_{k} AS s ON keyed.a = s.a AND keyed.b = s.b",
            unordered=True,  # rows named by _i
            keyed=keyed,
        )
        insert = f"INSERT INTO seen_{k} SELECT a, b FROM keyed WHERE a IS NOT NULL"
        duck.query(self.seen, insert, unordered=True, keyed=keyed)
        flag = np.zeros(len(upper), dtype=bool)
        flag[repeated.column("_i").to_numpy()] = True
        return pa.array(flag)

    def _split(self, table: pa.Table, flags: list[tuple[str, pa.Array]], first_row: int) -> Checked:
        bad = pa.array(np.zeros(table.num_rows, dtype=bool))
        for label, flag in flags:
            count = pc.sum(flag).as_py() or 0
            if count:
                rows = pc.indices_nonzero(flag).slice(0, SAMPLE_ROWS).to_numpy() + first_row + 1
                self.report._record(label, count, rows.tolist())
                bad = pc.or_(bad, flag)
        where = pc.indices_nonzero(bad).to_numpy()
        self.report.rows_failed += len(where)
        if len(where) and self.spec.on_failure == "fail":
            rule = next(label for label, flag in flags if flag[int(where[0])].as_py())
            raise DataContractError(
                f"{self.source}: row {first_row + int(where[0]) + 1} breaks {rule} "
                f"({len(where)} bad rows in this chunk)",
                hint="fix the data, or set on_failure: quarantine",
            )
        kept = pa.array(where)
        reasons: list[list[str]] = [[] for _ in range(len(where))]
        for label, flag in flags:
            for n, hit in enumerate(pc.take(flag, kept).to_pylist()):
                if hit:
                    reasons[n].append(label)
        quarantined = table.take(kept)
        quarantined = quarantined.append_column("_row", pa.array(where + first_row + 1, type=pa.int64()))
        quarantined = quarantined.append_column("_reasons", pa.array(["; ".join(r) for r in reasons], type=pa.string()))
        good = table if self.spec.on_failure == "warn" or not len(where) else table.filter(pc.invert(bad))
        return Checked(good=good, quarantined=quarantined)

    def _track_freshness(self, table: pa.Table) -> None:
        if self.spec.freshness and self.spec.freshness.column in table.column_names:
            newest = pc.max(table.column(self.spec.freshness.column)).as_py()
            if newest is not None:
                newest = pd.Timestamp(newest)
                if self._newest is None or newest > self._newest:
                    self._newest = newest

    def finish(self, now: pd.Timestamp | None = None) -> ValidationReport:
        """Close the report; a stale table fails unless the contract only warns."""
        self.close()
        spec = self.spec.freshness
        if spec is not None:
            now = now or pd.Timestamp.now(tz="UTC")
            if self._newest is None or (now - self._newest).total_seconds() > spec.max_age_days * 86400:
                newest = "no rows" if self._newest is None else f"newest {spec.column} {self._newest:%Y-%m-%d}"
                self.report.stale = f"older than {spec.max_age_days:g} days ({newest})"
                if self.spec.on_failure != "warn":
                    raise DataContractError(f"{self.source}: the data is stale: {self.report.stale}")
        return self.report


def _range_label(name: str, bounds: tuple[float, float]) -> str:
    return f"{name}: range {bounds[0]:g}..{bounds[1]:g}"


def _names(*expressions: str | None) -> set[str]:
    """Column names an expression (or a bare column name) refers to."""
    found: set[str] = set()
    for expression in expressions:
        if expression:
            tree = ast.parse(expression.strip(), mode="eval")
            found |= {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id not in ("True", "False")}
    return found


def _eval_rule(rule: RuleSpec) -> Any:
    def check(frame: pd.DataFrame) -> pd.Series:
        # A rule judges values that are there; a missing value is nullability's business.
        ok = frame.eval(rule.expr).astype("boolean").fillna(True).astype(bool)
        if rule.when:
            ok = ok | ~frame.eval(rule.when).fillna(False).astype(bool)
        return ok

    return check


def _cast_sql(ident: str, kind: str, raw: str) -> tuple[str, str | None]:
    """SQL for a column's cast (one per cell), and for its refinement over the cast value, if any."""
    if kind == "string":
        return f"CAST({ident} AS VARCHAR)", None
    if kind == "datetime":  # ISO 8601; other spellings get a second chance (Contract._reparse_dates)
        return f"TRY_CAST({ident} AS TIMESTAMPTZ)", None
    if kind == "float":
        return f"TRY_CAST({ident} AS DOUBLE)", f"CASE WHEN isnan({ident}) THEN NULL ELSE {ident} END"
    if kind == "int":  # via DOUBLE, so 3.5 is refused rather than rounded; exact BIGINT when whole
        exact = f"COALESCE(TRY_CAST({raw} AS BIGINT), TRY_CAST({ident} AS BIGINT))"
        whole = f"CASE WHEN {ident} = trunc({ident}) THEN {exact} END"
        return f"TRY_CAST({ident} AS DOUBLE)", whole
    word = f"lower(trim(CAST({ident} AS VARCHAR)))"
    return f"CASE WHEN {word} IN {tuple(_TRUE)} THEN TRUE WHEN {word} IN {tuple(_FALSE)} THEN FALSE END", None
