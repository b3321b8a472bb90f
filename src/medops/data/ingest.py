"""Ingest: a source, through its contract and de-identification, into a dataset version.

Chunk by chunk: read raw rows, check and normalize them against the contract, de-identify
the rows that pass and the rows kept apart alike, and write both as Parquet into staging
files in the artifact store. Only de-identified rows are ever written. When every chunk is
done the files are profiled, published under their SHA-256 and recorded, with lineage and
an audit event, in one transaction. A crash before that commit leaves no dataset version,
only a staging file, which a later ingest removes once it is a day old (a live writer's
file keeps a fresh modification time).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import select
from sqlalchemy.orm import Session

from medops.clock import utc_now
from medops.data.contracts import Contract, ContractSpec, ValidationReport
from medops.data.datasets import DatasetInfo, get, set_head
from medops.data.deid import Deidentifier, DeidReport, Pseudonymizer, action_error
from medops.data.duck_connections import duck
from medops.data.parquet_sink import ParquetSink
from medops.data.prefetch import prefetch
from medops.data.profile import profile_parquet
from medops.data.sources import DEFAULT_CHUNK_ROWS, CsvSource, FhirNdjsonSource, ParquetSource, Source, SqlSource
from medops.errors import Conflict, InvalidInput
from medops.identity import Role
from medops.identity.pseudonym_key import load_key
from medops.platform import Platform
from medops.store.lineage import Edge, add_edges, dataset_node, file_node
from medops.store.schema import DatasetVersion
from medops.version import __version__

INGEST_ROLES = {Role.DATA_SCIENTIST, Role.ML_ENGINEER, Role.ADMIN}
DATASET_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
SAMPLES_PER_RULE = 5
STALE_STAGING_SECONDS = 24 * 3600
_KEYED_ACTIONS = ("pseudonymize", "shift_dates")


@dataclass(frozen=True)
class NameLookup:
    """Where free-text redaction finds the names of a record's patient (e.g. the patients table)."""

    source: Source
    id_column: str
    columns: tuple[str, ...]


@dataclass
class TablePlan:
    """Everything one ingest needs; built from the project file or by hand."""

    name: str
    source: Source
    actions: dict[str, str]
    contract: ContractSpec | None = None
    contract_file: str | None = None
    text_phi: str = "redact"
    reference_date: date = date(2026, 1, 1)
    names: NameLookup | None = None
    quasi_identifiers: tuple[str, ...] = ()  # k-anonymity's columns (default: age band, sex, ZIP3)

    def __post_init__(self) -> None:
        if not DATASET_NAME.match(self.name):
            raise InvalidInput(
                f"{self.name!r} is not a valid dataset name",
                hint="use lowercase letters, digits and '_', starting with a letter (at most 64)",
            )


@dataclass
class IngestResult:
    dataset: DatasetInfo
    quarantine: DatasetInfo | None
    new: bool
    validation: ValidationReport | None
    deid: DeidReport
    samples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset.ref,
            "version": self.dataset.version,
            "rows": self.dataset.rows,
            "new": self.new,
            "contract": self.dataset.contract_result,
            "quarantine": self.quarantine.ref if self.quarantine else None,
            "quarantined_rows": self.quarantine.rows if self.quarantine else 0,
        }


def source_kind(source: Source) -> str:
    kinds = {CsvSource: "csv", ParquetSource: "parquet", FhirNdjsonSource: "fhir", SqlSource: "sql"}
    return next((k for cls, k in kinds.items() if isinstance(source, cls)), type(source).__name__)


def _source_node(source: Source, fingerprint: str) -> str:
    return f"query:{fingerprint}" if isinstance(source, SqlSource) else file_node(fingerprint)


def uses_key(actions: dict[str, str]) -> bool:
    """Whether de-identification with these actions needs the pseudonymization key (its output depends on it)."""
    return any(a.split(":", 1)[0] in _KEYED_ACTIONS for a in actions.values())


def key_fingerprint(key: bytes) -> str:
    """Names the pseudonymization key (not reversible) so a dataset says which key made it."""
    return hashlib.sha256(b"medops-pseudonym-key-id:" + key).hexdigest()[:12]


def _jsonable(value: Any) -> Any:
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and np.isnan(value):
        return None
    if isinstance(value, date):  # datetimes too
        return value.isoformat()
    if isinstance(value, np.generic):
        return value.item()
    return value


class _Names:
    """The lookup table of names, attached to each chunk as hidden (later dropped) columns."""

    def __init__(self, lookup: NameLookup, chunk_rows: int) -> None:
        self.lookup = lookup
        self.hidden = [f"_name_{c}" for c in lookup.columns]
        parts = []
        for table in lookup.source.tables(chunk_rows):
            missing = [c for c in (lookup.id_column, *lookup.columns) if c not in table.column_names]
            if missing:
                raise InvalidInput(f"{lookup.source.name}: names lookup needs column {missing[0]!r}")
            parts.append(table.select([lookup.id_column, *lookup.columns]))
        table = pa.concat_tables(parts) if parts else pa.table({lookup.id_column: pa.array([], pa.string())})
        table = table.filter(pc.is_valid(table.column(lookup.id_column)))
        ids = table.column(lookup.id_column).cast(pa.string())
        position = pc.index_in(ids, value_set=ids).to_numpy()
        first = pa.array(np.flatnonzero(position == np.arange(len(ids))))  # the first row of each id
        self.ids = ids.take(first)
        self.columns = [table.column(c).take(first) for c in lookup.columns]

    def attach(self, chunk: pa.Table) -> pa.Table:
        if self.lookup.id_column not in chunk.column_names:
            return chunk
        where = pc.index_in(chunk.column(self.lookup.id_column).cast(pa.string()), value_set=self.ids)
        for name, values in zip(self.hidden, self.columns, strict=True):
            chunk = chunk.append_column(name, values.take(where))
        return chunk


class _Run:
    """One ingest in progress: the stages, the two sinks and what they learn."""

    def __init__(self, ws: Platform, plan: TablePlan, chunk_rows: int) -> None:
        self.ws, self.plan, self.chunk_rows = ws, plan, chunk_rows
        self.contract = (
            Contract(
                plan.contract,
                source=plan.contract_file or plan.source.name,
                keys_file=ws.artifacts.staging_path().with_suffix(".keys.duckdb"),
                databases=duck(ws),
            )
            if plan.contract
            else None
        )
        self.names = _Names(plan.names, chunk_rows) if plan.names else None
        actions = dict(plan.actions)
        name_columns: tuple[str, ...] = ("first_name", "last_name")
        if self.names:
            actions.update({h: "drop" for h in self.names.hidden})
            name_columns = (*name_columns, *self.names.hidden)
        self.keyed = uses_key(actions)
        self.key = load_key(key_file=ws.settings.pseudonym_key_file) if self.keyed else b"\0" * 32

        def deidentifier() -> Deidentifier:
            return Deidentifier(
                actions,
                Pseudonymizer(self.key),
                reference_date=plan.reference_date,
                name_columns=name_columns,
                text_phi=plan.text_phi,
                quasi_identifiers=tuple(plan.quasi_identifiers),
                people_file=ws.artifacts.staging_path().with_suffix(".people.duckdb"),
                databases=duck(ws),
            )

        self.deid, self.deid_bad = deidentifier(), deidentifier()
        self.samples: dict[str, list[dict[str, Any]]] = {}
        self.data = ParquetSink(ws.artifacts.staging_path(), f"dataset {plan.name}")
        self.bad = ParquetSink(ws.artifacts.staging_path(), f"dataset {plan.name}.quarantine")
        self.read = 0

    def chunk(self, raw: pa.Table) -> None:
        if self.names:
            raw = self.names.attach(raw)
        rows = np.arange(self.read + 1, self.read + raw.num_rows + 1)
        self.read += raw.num_rows
        if self.contract is None:
            self.data.write(self.deid.apply(raw, rows.tolist()))
            return
        checked = self.contract.apply(raw)
        outcome = self.contract.spec.on_failure
        good_rows = rows  # a warn contract keeps every row
        bad_rows = checked.quarantined.column("_row").to_numpy()
        if outcome != "warn" and len(bad_rows):
            good_rows = np.delete(rows, bad_rows - rows[0])
        self.data.write(self.deid.apply(checked.good, good_rows.tolist()))
        if len(bad_rows):
            meta = checked.quarantined.select(["_row", "_reasons"])
            cleaned = self.deid_bad.apply(checked.quarantined.drop_columns(["_row", "_reasons"]), bad_rows.tolist())
            kept = pa.Table.from_arrays(
                [*meta.columns, *cleaned.columns], names=meta.column_names + cleaned.column_names
            )
            self._sample(kept, raw, int(rows[0]))
            if outcome == "quarantine":
                self.bad.write(kept)

    def _sample(self, kept: pa.Table, raw: pa.Table, first_row: int) -> None:
        """A few rows per broken rule: the failing column's value as it came (where its de-identification
        keeps it: a value of an identifying column is never shown), the row's key, the row."""
        keys = [c for c in (self.deid.patient_column, *self.unique_keys()) if c in kept.column_names]
        for record in kept.slice(0, SAMPLES_PER_RULE * 20).to_pylist():
            for rule in str(record["_reasons"]).split("; "):
                bucket = self.samples.setdefault(rule, [])
                if len(bucket) >= SAMPLES_PER_RULE:
                    continue
                sample = {k: _jsonable(v) for k, v in record.items() if k != "_reasons"}
                column = rule.split(":", 1)[0]
                if ":" in rule and column in raw.column_names and not rule.startswith("rule: "):
                    kept_as_is = self.deid.actions.get(column) == "keep"
                    value = raw.column(column)[int(record["_row"]) - first_row].as_py() if kept_as_is else None
                    sample["_column"] = column
                    sample["_value"] = _jsonable(value) if kept_as_is else "(withheld: the column is de-identified)"
                sample["_key"] = {k: _jsonable(record.get(k)) for k in dict.fromkeys(keys)}
                bucket.append(sample)

    def unique_keys(self) -> list[str]:
        if self.contract is None:
            return []
        spec = self.contract.spec
        return [n for n, c in spec.columns.items() if c.unique] + list(spec.unique or [])

    def abort(self) -> None:
        if self.contract:
            self.contract.close()
        self.deid.close()
        self.deid_bad.close()
        self.data.abort()
        self.bad.abort()


def _contract_result(report: ValidationReport | None) -> str:
    if report is None:
        return "none"
    if report.passed:
        return "passed"
    return {"quarantine": "quarantined", "warn": "warned"}.get(report.outcome, report.outcome)


def _validation_doc(report: ValidationReport | None, samples: dict[str, list[dict[str, Any]]]) -> dict[str, Any] | None:
    if report is None:
        return None
    return {
        "table": report.table,
        "version": report.contract_version,
        "outcome": report.outcome,
        "passed": report.passed,
        "rows": report.rows,
        "rows_failed": report.rows_failed,
        "normalized": dict(report.normalized),
        "stale": report.stale,
        "rules": [
            {"rule": r.rule, "failures": r.failures, "samples": samples.get(r.rule, [])}
            for r in sorted(report.rules.values(), key=lambda r: -r.failures)
        ],
    }


def _deid_doc(report: DeidReport, key: str | None) -> dict[str, Any]:
    return {
        "rows": report.rows,
        "key_id": key,
        "columns": [
            {"column": c.column, "action": c.action, "changed": c.changed, "note": c.note}
            for c in report.columns.values()
            if not c.column.startswith("_name_")
        ],
        "text_redactions": dict(report.text_redactions),
        "text_engine": report.text_engine,
        "k_anonymity": report.k_anonymity,
        "share_below_k5": report.share_below_k5,
        "k_counts": report.k_counts,
        "restricted_zip3_version": report.restricted_zip3_version,
        "quasi_identifiers": report.quasi_identifiers,
        "warnings": report.warnings,
    }


def ingest(
    ws: Platform,
    plan: TablePlan,
    *,
    actor: str,
    reason: str | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    now: pd.Timestamp | None = None,
    progress: Callable[[int], None] = lambda rows: None,
) -> IngestResult:
    """Ingest one table; the same data ingested again gives the same version and stores nothing."""
    ws.users.require_role(actor, "dataset.ingest", INGEST_ROLES)
    for column, action in plan.actions.items():  # before any file is read
        problem = action_error(action)
        if problem:
            raise InvalidInput(f"table {plan.name}, column {column!r}: {problem}")
    ws.artifacts.clean_temp(older_than=STALE_STAGING_SECONDS)
    fingerprint = plan.source.fingerprint()
    run = _Run(ws, plan, chunk_rows)
    staged: list[Path] = []
    try:
        chunks: Iterator[pa.Table] = prefetch(plan.source.tables(chunk_rows))
        for raw in chunks:
            try:
                run.chunk(raw)
            except InvalidInput as exc:
                if exc.message.startswith(plan.source.name) or exc.message.startswith(str(plan.contract_file)):
                    raise
                raise type(exc)(f"{plan.source.name}: {exc.message}", hint=exc.hint) from None
            progress(run.read)
        if run.read == 0:
            raise InvalidInput(f"{plan.source.name}: no data rows", hint="the source has a header but no rows")
        validation = run.contract.finish(now) if run.contract else None
        deid_report = run.deid.finish()
        run.data.close()
        staged.append(run.data.path)
        quarantined = run.bad.total > 0
        if quarantined:
            run.bad.close()
            staged.append(run.bad.path)
        else:
            run.bad.abort()
        # How many patients is a number people quote: counted exactly. Other distinct counts are estimates
        # (an exact count of a million unique ids costs more than the rest of the profile) and say so.
        patients = (
            [run.deid.patient_column] if plan.actions.get(run.deid.patient_column, "").startswith("pseudo") else []
        )
        profiles = [profile_parquet(p, exact=patients, databases=duck(ws)) for p in staged]
        schemas = [[{"name": f.name, "type": str(f.type)} for f in sink.schema or []] for sink in (run.data, run.bad)]
        sizes = [p.stat().st_size for p in staged]
        versions = [ws.artifacts.adopt(p) for p in staged]
    except BaseException:
        run.abort()
        raise
    key_id = key_fingerprint(run.key) if run.keyed else None
    sources = [{"name": plan.source.name, "kind": source_kind(plan.source), "sha256": fingerprint}]
    names_fingerprint = None
    if plan.names:
        names_fingerprint = plan.names.source.fingerprint()
        sources.append(
            {
                "name": plan.names.source.name,
                "kind": source_kind(plan.names.source),
                "sha256": names_fingerprint,
                "role": "names for text redaction",
            }
        )
    common = {
        "sources": sources,
        "contract_file": plan.contract_file,
        "ingest": {"medops": __version__, "reference_date": plan.reference_date.isoformat(), "text_phi": plan.text_phi},
    }
    records = [
        DatasetVersion(
            name=plan.name,
            version=versions[0],
            kind="data",
            rows=run.data.rows,
            column_count=len(schemas[0]),
            size_bytes=sizes[0],
            contract_result=_contract_result(validation),
            details="",
            created_by=actor,
        )
    ]
    docs = [
        {
            **common,
            "schema": schemas[0],
            "profile": profiles[0],
            "contract": _validation_doc(validation, run.samples),
            "deid": _deid_doc(deid_report, key_id),
        }
    ]
    if quarantined:
        records.append(
            DatasetVersion(
                name=f"{plan.name}.quarantine",
                version=versions[1],
                kind="quarantine",
                rows=run.bad.rows,
                column_count=len(schemas[1]),
                size_bytes=sizes[1],
                contract_result="quarantine",
                details="",
                created_by=actor,
            )
        )
        docs.append(
            {
                **common,
                "schema": schemas[1],
                "profile": profiles[1],
                "quarantine_of": dataset_node(plan.name, versions[0]),
                "deid": _deid_doc(run.deid_bad.finish(), key_id),
            }
        )
    run.deid_bad.close()  # finished above only when the quarantine is kept
    try:
        new = _record(ws, actor, reason, plan, records, docs, fingerprint, names_fingerprint)
    except Conflict:
        # Another ingest of the same data committed the same version between our check and our
        # insert (possible on PostgreSQL): the transaction rolled back whole; record it again,
        # now as unchanged.
        new = _record(ws, actor, reason, plan, records, docs, fingerprint, names_fingerprint)
    dataset = get(ws.db, f"{plan.name}@{versions[0]}")
    bad = get(ws.db, f"{plan.name}.quarantine@{versions[1]}") if quarantined else None
    return IngestResult(dataset, bad, new, validation, deid_report, run.samples)


def _stored(session: Session, record: DatasetVersion) -> bool:
    found = session.execute(
        select(DatasetVersion.version).where(
            DatasetVersion.name == record.name, DatasetVersion.version == record.version
        )
    ).first()
    return found is not None


def _record(
    ws: Platform,
    who: str,
    reason: str | None,
    plan: TablePlan,
    records: list[DatasetVersion],
    docs: list[dict[str, Any]],
    fingerprint: str,
    names_fingerprint: str | None,
) -> bool:
    """One transaction: the versions not stored yet, their lineage edges and the audit event."""
    main = records[0]
    entity = f"{main.name}@{main.version}"
    src = _source_node(plan.source, fingerprint)
    with ws.users.authorized(who, "dataset.ingest", "dataset", entity, INGEST_ROLES, reason=reason) as ch:
        new = False
        for record, doc in zip(records, docs, strict=True):
            if _stored(ch.session, record):
                continue
            record.details = json.dumps(doc, sort_keys=True, default=str)
            record.created_at = utc_now()
            ch.session.add(record)
            new = True
        ch.session.flush()
        previous = set_head(ch.session, main.name, main.version, who, "ingest")  # identical content: current again
        attrs = {"source": plan.source.name, "kind": source_kind(plan.source)}
        edges = [
            Edge(src, dataset_node(r.name, r.version), "ingest" if r.kind == "data" else "quarantine", attrs)
            for r in records
        ]
        if plan.names and names_fingerprint:
            names = file_node(names_fingerprint)
            edges.append(
                Edge(
                    names, dataset_node(main.name, main.version), "redaction_names", {"source": plan.names.source.name}
                )
            )
        add_edges(ch.session, edges, who)
        ch.after = {
            "dataset": main.name,
            "version": main.version,
            "rows": main.rows,
            "columns": main.column_count,
            "contract": main.contract_result,
            "quarantine": f"{records[1].name}@{records[1].version}" if len(records) > 1 else None,
            "source_sha256": fingerprint,
            "unchanged": not new,
            "replaces": previous if previous != main.version else None,
        }
    return new
