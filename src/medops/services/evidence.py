"""Evidence for an auditor: who, what, when, why and with which data, for one prediction or one model
version, gathered from the records medops already keeps (prediction log, registry, signatures,
evaluations, runs, datasets, lineage, monitoring, the audit chain) into one JSON document, an HTML
page a person reads, and on request a package whose signed manifest a verifier checks offline.

Nothing here is new data: each part is what the other services return, with the checks redone now
(signatures verified, the bundle loaded through its checksums, the chain verified, the prediction
scored again). Auditors and admins ask for it; each export is audited with the SHA-256 of what was
handed out.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medops.audit import AuditFilter
from medops.audit.trail import NewEvent
from medops.caller import Caller
from medops.clock import utc_now
from medops.errors import MedopsError
from medops.identity import Role
from medops.public_keys import key_id
from medops.version import __version__

if TYPE_CHECKING:
    from medops.evidence.package import Written
    from medops.registry.versions import VersionInfo
    from medops.services import Services

EVIDENCE_ROLES = {Role.AUDITOR, Role.ADMIN}
SMALL_ARTIFACT = 1_000_000  # a run's logged files up to this size go into the package
DATASET_PARTS = ("name", "version", "kind", "rows", "created_at", "created_by", "contract", "deid", "sources", "schema")


@dataclass
class Evidence:
    """One evidence document (plain JSON), the raw records behind it, and the package if one was written."""

    kind: str  # prediction or model
    subject: str
    document: dict[str, Any]
    records: dict[str, bytes] = field(default_factory=dict)
    written: Written | None = None

    @property
    def sha256(self) -> str:
        return hashlib.sha256(document_bytes(self.document)).hexdigest()

    def to_json(self) -> dict[str, Any]:
        return self.document


def document_bytes(document: dict[str, Any]) -> bytes:
    return (json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


class EvidenceService:
    def __init__(self, services: Services) -> None:
        self.services = services
        self.platform = services.platform

    # --- the two questions ------------------------------------------------------------------------
    def prediction(self, caller: Caller, prediction_id: str, *, out: Path | None = None) -> Evidence:
        """Which model made this prediction, on what evidence it was released, what it was trained on, and
        the prediction scored again by the same bundle."""
        from medops.serving import prediction_log

        self.platform.users.require_role(caller.user, "evidence.prediction", EVIDENCE_ROLES)
        _check_out(out)
        prediction_log.recover(self.platform)  # a prediction still in the spool is in the log first
        logged = prediction_log.get(self.platform, prediction_id)
        info = self._version(f"{logged.model}:{logged.version}")
        gathered = _Gathered(entities=[("prediction", logged.id)])  # earlier evidence of it, if any
        release = self._release(caller, info, gathered)
        document = {
            "evidence": "prediction",
            **self._header(caller, f"prediction:{logged.id}"),
            "prediction": logged.to_json(),
            "explanation": self._explanation(logged),
            "served_by": {
                **_plain(info.to_json()),
                "bundle_matches_log": logged.bundle_sha256 == info.artifact_sha256,
            },
            **release,
            "replay": self._replay(logged),
            "audit": self._audit(caller, gathered.entities),
        }
        records = {"records/prediction.json": document_bytes(_plain(logged.to_json())), **gathered.records}
        return self._hand_out(caller, Evidence("prediction", logged.id, _plain(document), records), out)

    def model(self, caller: Caller, ref: str, *, out: Path | None = None) -> Evidence:
        """The release file of one version: intended use, data to its source files, validation, approvals,
        life in production since, and what changed against the production version before it."""
        from medops.evidence.annex_iv import annex_iv

        self.platform.users.require_role(caller.user, "evidence.model", EVIDENCE_ROLES)
        _check_out(out)
        info = self._version(ref)
        gathered = _Gathered()
        release = self._release(caller, info, gathered, full=True)
        document = {
            "evidence": "model",
            **self._header(caller, f"model:{info.ref}"),
            "project": self._project(caller),
            "version": _plain(info.to_json()),
            **release,
            "production": self._since_release(caller, info, gathered),
            "changes": self._changes(caller, info),
            "audit": self._audit(caller, gathered.entities),
        }
        document = _plain(document)
        document["annex_iv"] = annex_iv(document)
        return self._hand_out(caller, Evidence("model", info.ref, document, gathered.records), out)

    # --- the parts ----------------------------------------------------------------------------------
    def _header(self, caller: Caller, subject: str) -> dict[str, Any]:
        return {
            "subject": subject,
            "made_at": utc_now().isoformat(),
            "made_by": caller.user,
            "medops": __version__,
            "workspace": {
                "id": self.platform.settings.workspace_id,
                "key_id": key_id(self.platform.workspace_public_key()),
            },
        }

    def _version(self, ref: str) -> VersionInfo:
        from medops.registry.versions import get
        from medops.services.registry import version_ref

        return get(self.platform, *version_ref(ref))

    def _release(self, caller: Caller, info: VersionInfo, gathered: _Gathered, *, full: bool = False) -> dict[str, Any]:
        """What the version was released on: signatures verified now, its evaluation and gates, the run
        with its code and environment, and the data behind it down to the source files."""
        s = self.services
        ref = info.ref
        gathered.entities += [("model", ref), ("model_version", ref)]
        approvals = s.registry.approvals(caller, ref).to_json()
        moves = [m for m in s.registry.history(caller, info.model).moves if m.version == info.version]
        part: dict[str, Any] = {
            "bundle": self._bundle(info),
            "approvals": approvals,
            "stage_moves": [_plain(m.to_json()) for m in moves],
        }
        if info.evaluation_id:
            part["evaluation"] = self._evaluation(caller, info.evaluation_id, gathered, full=full)
        if info.run_id:
            part["training"] = self._run(caller, info.run_id, gathered)
        part["data"] = self._data(caller, ref, gathered)
        return part

    def _bundle(self, info: VersionInfo) -> dict[str, Any]:
        """The bundle loaded as serving loads it: its signature and every checksum checked now."""
        from medops.registry.predictor import load_model

        try:
            load_model(self.platform, (info.model, info.version))
        except MedopsError as exc:
            return {"sha256": info.artifact_sha256, "verified": False, "problem": exc.message}
        return {"sha256": info.artifact_sha256, "verified": True, "problem": None}

    def _evaluation(self, caller: Caller, evaluation_id: str, gathered: _Gathered, *, full: bool) -> dict[str, Any]:
        shown = self.services.evaluation.show(caller, evaluation_id).info
        gathered.entities.append(("evaluation", shown.id))
        raw = self.platform.artifacts.read_bytes(shown.document)  # verified against its digest
        gathered.records[f"records/evaluation/{shown.document}.json"] = raw
        for kind, digest in (("report", shown.report), ("model_card", shown.card_html)):
            gathered.records[f"records/evaluation/{kind}.html"] = self.platform.artifacts.read_bytes(digest)
        doc = json.loads(raw)
        part = {
            "id": shown.id,
            "passed": shown.passed,
            "governing": shown.governing,
            "policy_sha256": shown.policy_sha256,
            "document_sha256": shown.document,
            "made": {"at": shown.created_at.isoformat(), "by": shown.created_by},
            "gates": shown.gates,
            "metrics": doc.get("metrics", {}),
            "threshold": doc.get("threshold"),
        }
        if full:
            part |= {k: doc.get(k) for k in ("subgroups", "robustness", "input_checks", "serving", "card", "data")}
        return part

    def _run(self, caller: Caller, run_id: str, gathered: _Gathered) -> dict[str, Any]:
        run = self.services.training.show(caller, run_id).info
        gathered.entities.append(("run", run.id))
        for artifact in run.artifacts:
            if int(artifact.get("size") or 0) <= SMALL_ARTIFACT and not str(artifact["path"]).endswith(
                (".pkl", ".joblib")
            ):
                gathered.records[f"records/run/{artifact['path']}"] = self.platform.artifacts.read_bytes(
                    artifact["digest"]
                )
        return {
            "id": run.id,
            "experiment": run.experiment,
            "by": run.created_by,
            "host": run.host,
            "started_at": run.started_at.isoformat(),
            "ended_at": run.ended_at.isoformat() if run.ended_at else None,
            "seed": run.seed,
            "code": {"git_commit": run.git_commit, "git_dirty": run.git_dirty, "project_sha256": run.project_sha256},
            "environment_sha256": run.env_digest,
            "params": run.params,
            "metrics": run.metrics,
            "inputs": run.inputs,
            "artifacts": [{"path": a["path"], "sha256": a["digest"]} for a in run.artifacts],
        }

    def _data(self, caller: Caller, ref: str, gathered: _Gathered) -> dict[str, Any]:
        """The lineage up to the source files, and each dataset on it with its contract and
        de-identification reports."""
        view = self.services.lineage.show(caller, ref, down=False)
        edges = [{"from": e.src, "to": e.dst, "relation": e.relation} for e in view.upstream]
        files = [
            {"node": e.src, "sha256": e.src.removeprefix("file:"), "source": e.attrs.get("source")}
            for e in view.upstream
            if e.src.startswith("file:")
        ]
        datasets = []
        for node in sorted({n for e in view.upstream for n in (e.src, e.dst) if n.startswith("dataset:")}):
            name_version = node.removeprefix("dataset:")
            shown = _plain(self.services.data.show(caller, name_version).to_json())
            gathered.entities.append(("dataset", name_version))
            gathered.records[f"records/datasets/{name_version}.json"] = document_bytes(shown)
            datasets.append({k: shown.get(k) for k in DATASET_PARTS})
        features = sorted({n for e in view.upstream for n in (e.src, e.dst) if n.startswith("featureview:")})
        gathered.entities += [("feature_view", n.removeprefix("featureview:")) for n in features]
        pipelines = sorted({e.src.removeprefix("pipeline:") for e in view.upstream if e.src.startswith("pipeline:")})
        gathered.entities += [("pipeline_run", p) for p in pipelines]
        gathered.records["records/lineage.json"] = document_bytes({"node": view.node, "edges": edges})
        return {"source_files": files, "datasets": datasets, "feature_views": features, "lineage": edges}

    def _explanation(self, logged: Any) -> dict[str, Any]:
        """The explanation logged with the prediction, else the same bundle's, computed now."""
        if logged.explanation is not None:
            return {"source": "logged with the prediction", **logged.explanation}
        from medops.serving.replay import Replayer

        try:
            answer = Replayer(self.platform).answer(logged, explained=True)
        except MedopsError as exc:
            return {"source": "none", "why": exc.message}
        return {"source": "computed now by the same bundle (the prediction was not explained when made)",
                **(answer.get("explanation") or {})}  # fmt: skip

    def _replay(self, logged: Any) -> dict[str, Any]:
        """The prediction scored again by the bundle that answered it: the same probability and decision, or
        each difference named."""
        from medops.serving.replay import Replayer, ReplayReport

        try:
            report = Replayer(self.platform).replay([[logged]], ReplayReport())
        except MedopsError as exc:
            return {"identical": False, "problem": exc.message, "differences": []}
        return {
            "identical": report.identical,
            "logged": logged.output,
            "differences": [_plain(d.to_json()) for d in report.differences],
        }

    def _audit(self, caller: Caller, entities: list[tuple[str, str]]) -> dict[str, Any]:
        """Every event on the records this evidence names, in order, and the whole chain verified now."""
        from medops.services.audit import verification_json

        found: dict[int, dict[str, Any]] = {}
        for kind, ident in dict.fromkeys(entities):
            for event in self.services.audit.log(caller, AuditFilter(entity_type=kind, entity_id=ident), limit=1000):
                found[event.seq] = event.as_dict()
        events = [found[seq] for seq in sorted(found)]
        return {"events": events, "chain": verification_json(self.services.audit.verify(caller), None)}

    def _project(self, caller: Caller) -> dict[str, Any] | None:
        try:
            return self.services.data.project(caller)
        except MedopsError as exc:
            return {"problem": exc.message}

    def _since_release(self, caller: Caller, info: VersionInfo, gathered: _Gathered) -> dict[str, Any]:
        """Stage and alias moves, monitored windows and alerts with their handling, for this version."""
        s = self.services
        windows = [w for w in s.monitoring.windows(caller, info.model, limit=1000) if w.version == info.version]
        alerts = [
            a for a in s.monitoring.alerts(caller, limit=1000) if a.model == info.model and a.version == info.version
        ]
        gathered.entities += [("alert", a.id) for a in alerts]
        return {
            "windows": [_plain(w.to_json()) for w in sorted(windows, key=lambda w: w.start)],
            "alerts": [_plain(a.to_json()) for a in alerts],
        }

    def _changes(self, caller: Caller, info: VersionInfo) -> dict[str, Any] | None:
        """Against the production version this one replaced (or, not yet in production, the one it would
        replace): data and features, parameters, metrics, code and environment, gates."""
        s = self.services
        moves = s.registry.history(caller, info.model).moves
        entered = [m for m in moves if m.name == "production" and m.version == info.version]
        if entered:  # the version it first replaced there (none: it was the first in production)
            before = entered[0].previous
        else:
            current = [v.version for v in s.registry.show(caller, info.model).versions if v.stage == "production"]
            before = current[0] if current else None
        if before is None:
            return None
        previous = self._version(f"{info.model}:{before}")
        part: dict[str, Any] = {"against": previous.ref}
        if previous.run_id and info.run_id:
            part |= _plain(s.training.compare(caller, previous.run_id, info.run_id).to_json())
        if previous.evaluation_id and info.evaluation_id:
            old = {g["criterion"]: g for g in s.evaluation.show(caller, previous.evaluation_id).info.gates}
            new = {g["criterion"]: g for g in s.evaluation.show(caller, info.evaluation_id).info.gates}
            part["gates"] = [
                {
                    "criterion": c,
                    "before": _gate_value(old.get(c)),
                    "after": _gate_value(new.get(c)),
                    "passed_before": old[c]["passed"] if c in old else None,
                    "passed_after": new[c]["passed"] if c in new else None,
                }
                for c in dict.fromkeys([*old, *new])
            ]
        return part

    # --- handing it out -------------------------------------------------------------------------------
    def _hand_out(self, caller: Caller, evidence: Evidence, out: Path | None) -> Evidence:
        """The export audited with the document's SHA-256 (and the package's manifest); a package whose
        event could not be written is removed: nothing leaves unrecorded."""
        from medops.evidence import render
        from medops.evidence.package import write

        text = document_bytes(evidence.document)
        after: dict[str, Any] = {"document_sha256": hashlib.sha256(text).hexdigest()}
        if out is not None:
            files = {
                "evidence.json": text,
                "evidence.html": render.html(evidence.document).encode(),
                **evidence.records,
            }
            header = {"subject": evidence.document["subject"], "made_at": evidence.document["made_at"],
                      "made_by": caller.user, "workspace_id": self.platform.settings.workspace_id}  # fmt: skip
            evidence.written = write(out, files, header, self.platform.signing_key())
            after |= {"manifest_sha256": evidence.written.manifest_sha256, "files": evidence.written.files}
        try:
            kind, ident = (
                ("prediction", evidence.subject) if evidence.kind == "prediction" else ("model", evidence.subject)
            )
            self.platform.trail.record(NewEvent(caller.user, f"evidence.{evidence.kind}", kind, ident, after=after))
        except BaseException:
            if evidence.written is not None:
                shutil.rmtree(evidence.written.folder, ignore_errors=True)
            raise
        return evidence


@dataclass
class _Gathered:
    """What the parts collect on the way: the audited entities they touched and the raw records."""

    entities: list[tuple[str, str]] = field(default_factory=list)
    records: dict[str, bytes] = field(default_factory=dict)


def _check_out(out: Path | None) -> None:
    """A package's folder is checked before seconds of gathering, not after."""
    if out is not None:
        from medops.evidence.package import check_target

        check_target(out)


def _gate_value(gate: dict[str, Any] | None) -> Any:
    if gate is None:
        return None
    value = gate.get("value")
    return value.get("value") if isinstance(value, dict) else value


def _plain(value: Any) -> Any:
    """JSON types only (times as ISO 8601), so the document hashes the same wherever it is read."""
    return json.loads(json.dumps(value, default=_default))


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "to_json"):
        return value.to_json()
    raise TypeError(f"{type(value).__name__} is not JSON")
