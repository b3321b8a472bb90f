"""Stored evaluations: the document, report and model card in the artifact store, the gates in the
metadata store, and one audit event, all written in one role-checked transaction.

An evaluation is never changed: evaluating again makes a new one, and the registry reads the
latest (or a named) evaluation of a version's run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import select

from medops.errors import InvalidInput, NotFound
from medops.evaluation.governing import governing_policy
from medops.identity.roles import Role
from medops.platform import Platform
from medops.store.id_prefix import is_hex, starts_with
from medops.store.lineage import Edge, add_edges
from medops.store.schema import Evaluation, GateResult
from medops.training.tracking import run_node

EVALUATE_ROLES = {Role.DATA_SCIENTIST, Role.ML_ENGINEER, Role.VALIDATOR, Role.ADMIN}
PREDICTIONS = "_predictions"  # a document's per-row table until it is stored: never part of the JSON
EXPORT_ROLES = EVALUATE_ROLES | {Role.AUDITOR}  # an auditor recomputes; nobody else needs the rows


@dataclass(frozen=True)
class EvaluationInfo:
    id: str
    run_id: str
    passed: bool
    champion_run_id: str | None
    created_at: datetime
    created_by: str
    document: str
    report: str
    card_markdown: str
    card_html: str
    gates: list[dict[str, Any]]
    policy_sha256: str = ""
    governing: bool = False  # made under the workspace's reviewed policy: only then may it gate production
    project_sha256: str | None = None

    @property
    def short(self) -> str:
        return self.id[:12]

    def to_json(self) -> dict[str, Any]:
        """The summary a listing shows; `show` adds the gates and the stored artifacts."""
        return {
            "id": self.id,
            "run": self.run_id,
            "passed": self.passed,
            "governing": self.governing,
            "policy_sha256": self.policy_sha256,
            "champion": self.champion_run_id,
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
        }


def evaluation_node(evaluation_id: str) -> str:
    return f"evaluation:{evaluation_id}"


def record(
    ws: Platform, doc: dict[str, Any], report: str, card_markdown: str, card_html: str, *, actor: str
) -> EvaluationInfo:
    """Store an evaluation: files first (content-addressed, harmless if the transaction fails), then rows."""
    governing = finalize(ws, doc)
    digests = {
        "document": ws.artifacts.put(json.dumps(doc, sort_keys=True, default=str, allow_nan=True).encode()),
        "report": ws.artifacts.put(report.encode()),
        "card_markdown": ws.artifacts.put(card_markdown.encode()),
        "card_html": ws.artifacts.put(card_html.encode()),
    }
    champion = (doc.get("champion") or {}).get("run")
    with ws.users.authorized(actor, "evaluation.record", "evaluation", doc["id"], EVALUATE_ROLES) as ch:
        row = Evaluation(
            id=doc["id"],
            run_id=doc["run"]["id"],
            passed=bool(doc["passed"]),
            champion_run_id=champion,
            policy_sha256=doc["policy_sha256"],
            governing=governing,
            project_sha256=(doc.get("project") or {}).get("sha256"),
            created_at=datetime.fromisoformat(doc["created_at"]),
            created_by=actor,
            **digests,
        )
        ch.session.add(row)
        ch.session.flush()
        for position, gate in enumerate(doc["gates"]):
            ch.session.add(
                GateResult(
                    evaluation_id=doc["id"],
                    position=position,
                    criterion=gate["criterion"],
                    kind=gate["kind"],
                    value=_finite(gate["value"]),
                    threshold=json.dumps(gate["threshold"]),  # a number or a text, read back as it was
                    passed=bool(gate["passed"]),
                    why=gate["why"],
                )
            )
        add_edges(ch.session, [Edge(run_node(doc["run"]["id"]), evaluation_node(doc["id"]), "evaluated_by", {})], actor)
        ch.after = {
            "run": doc["run"]["id"],
            "passed": bool(doc["passed"]),
            "champion": champion,
            "policy_sha256": doc["policy_sha256"],
            "governing": governing,
            "gates": [{"criterion": g["criterion"], "passed": g["passed"]} for g in doc["gates"]],
            **digests,
        }
    return get(ws, doc["id"])


def _put_parquet(ws: Platform, table: pa.Table) -> str:
    path = ws.artifacts.staging_path()
    try:
        pq.write_table(table, path)
        return ws.artifacts.adopt(path)
    finally:
        path.unlink(missing_ok=True)


def predictions(ws: Platform, ref: str, *, actor: str) -> pa.Table:
    """An evaluation's per-row predictions, read back verified; reading them is role-checked and audited."""
    info = get(ws, ref)
    doc = json.loads(ws.artifacts.read_bytes(info.document))
    digest = (doc.get("predictions") or {}).get("sha256")
    if not digest:
        raise NotFound(f"evaluation {info.short} stored no per-row predictions", hint="evaluate the run again")
    with ws.users.authorized(actor, "evaluation.export", "evaluation", info.id, EXPORT_ROLES) as ch:
        table = pq.read_table(ws.artifacts.local_path(digest))
        ch.after = {"predictions": digest, "rows": table.num_rows}
    return table


def finalize(ws: Platform, doc: dict[str, Any]) -> bool:
    """Complete a new evaluation's document before its report is rendered (so the report's hash of it holds):
    whether it governs, and its per-row predictions stored as Parquet. Returns whether it governs."""
    table = doc.pop(PREDICTIONS, None)
    if table is not None:  # pseudonymized ids only: for recomputing every number independently
        doc["predictions"] = {**(doc.get("predictions") or {}), "sha256": _put_parquet(ws, table)}
    return mark_governing(ws, doc)


def mark_governing(ws: Platform, doc: dict[str, Any]) -> bool:
    """Decide (never trust the document's word) whether it was made under the workspace's policy."""
    policy = governing_policy(ws)
    governing = policy is not None and doc["policy_sha256"] == policy.sha256
    doc["governing"] = governing
    doc["governing_policy_sha256"] = policy.sha256 if policy is not None else None
    return governing


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if number == number and abs(number) != float("inf") else None


def get(ws: Platform, ref: str) -> EvaluationInfo:
    """An evaluation by id or an unambiguous prefix (at least 6 hex characters)."""
    ref = ref.strip().removeprefix("evaluation:").lower()
    if len(ref) < 6 or not is_hex(ref):
        raise InvalidInput(f"{ref!r} is not an evaluation id", hint="give at least 6 hex characters of it")
    with ws.db.read() as session:
        rows = session.execute(select(Evaluation).where(starts_with(Evaluation.id, ref)).limit(2)).scalars().all()
        if not rows:
            raise NotFound(f"no evaluation {ref!r}", code="evaluation_not_found")
        if len(rows) > 1:
            raise InvalidInput(f"{ref!r} matches more than one evaluation", hint="give more characters of the id")
        return _info(session, rows[0])


def list_for(ws: Platform, run_id: str | None = None, limit: int = 50) -> list[EvaluationInfo]:
    with ws.db.read() as session:
        query = select(Evaluation).order_by(Evaluation.created_at.desc()).limit(limit)
        if run_id is not None:
            query = query.where(Evaluation.run_id == run_id)
        return [_info(session, row) for row in session.execute(query).scalars().all()]


def _info(session: Any, row: Evaluation) -> EvaluationInfo:
    gates = session.execute(
        select(GateResult).where(GateResult.evaluation_id == row.id).order_by(GateResult.position)
    ).scalars()
    return EvaluationInfo(
        row.id,
        row.run_id,
        row.passed,
        row.champion_run_id,
        row.created_at,
        row.created_by,
        row.document,
        row.report,
        row.card_markdown,
        row.card_html,
        [
            {
                "criterion": g.criterion,
                "kind": g.kind,
                "value": g.value,
                "threshold": json.loads(g.threshold) if g.threshold is not None else None,
                "passed": g.passed,
                "why": g.why,
            }
            for g in gates
        ],
        row.policy_sha256,
        bool(row.governing),
        row.project_sha256,
    )
