"""Evidence for an auditor, on both backends: a served prediction's evidence holds the model and bundle,
the signatures verified, the evaluation and its gates, the training run, the audit excerpt with the chain
verified and a replay; its package verifies offline with the public key alone and names a changed,
missing or added file; a prediction logged with another probability than its bundle gives is reported;
only auditors and admins ask, and each export is audited."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from medops.audit import AuditFilter
from medops.audit.query import list_events
from medops.caller import Caller
from medops.errors import Conflict, PermissionDenied
from medops.evidence.package import verify
from medops.identity import Role
from medops.services import Services
from medops.workspace import Workspace
from tests.factories import COHORT_FEATURES, PASSWORD, cohort_rows

MODEL = "sepsis"


@pytest.fixture
def served(registry: tuple[Workspace, str]) -> Iterator[tuple[Workspace, str]]:
    """The registry's run registered, signed by both reviewers, in production, and one prediction served
    and logged; oscar is an auditor. Yields the workspace and the prediction's id."""
    from medops.serving import prediction_log
    from medops.serving.scoring import score

    ws, run = registry
    s = Services(ws)
    ws.users.add("admin", "oscar", "Oscar Diaz", PASSWORD, [Role.AUDITOR])
    s.registry.register(Caller("alice"), run, MODEL, profile=False)
    s.registry.approve(Caller("victor"), f"{MODEL}:1", PASSWORD, "validator")
    s.registry.approve(Caller("carol"), f"{MODEL}:1", PASSWORD, "clinical_reviewer")
    s.registry.promote(Caller("ming"), f"{MODEL}:1", "production", reason="both reviewers signed")
    model = s.serving.load([f"{MODEL}:1"])[MODEL]
    row = cohort_rows(1)[COHORT_FEATURES].to_dict("records")[0]
    answer = score(model, [row])[0]
    logged = prediction_log.record(model, answer, row, caller="pat", request_id="r1", latency_ms=2.0, entity="pat_42")
    prediction_log.store(ws)([logged])
    yield ws, answer["prediction_id"]


def test_a_predictions_evidence_holds_each_element_and_its_package_verifies(
    served: tuple[Workspace, str], tmp_path: Path
) -> None:
    ws, prediction = served
    evidence = Services(ws).evidence.prediction(Caller("oscar"), prediction, out=tmp_path / "package")
    doc = evidence.document
    assert doc["prediction"]["id"] == prediction and doc["prediction"]["entity"] == "pat_42"
    assert doc["explanation"]["source"].startswith("computed now") and doc["explanation"]["contributions"]
    assert doc["served_by"]["bundle_matches_log"] and doc["bundle"]["verified"]
    decisions = doc["approvals"]["decisions"]
    assert {(d["role"], d["username"], d["valid"]) for d in decisions} == {
        ("validator", "victor", True),
        ("clinical_reviewer", "carol", True),
    }
    assert [m["name"] for m in doc["stage_moves"]] == ["production"]
    assert doc["evaluation"]["passed"] and doc["evaluation"]["governing"] and doc["evaluation"]["gates"]
    training = doc["training"]
    assert training["by"] == "alice" and training["environment_sha256"] and training["params"]
    assert doc["audit"]["chain"]["ok"]
    actions = {e["action"] for e in doc["audit"]["events"]}
    assert {"model.register", "model.approved", "model.production", "evaluation.record", "run.start"} <= actions
    assert doc["replay"] == {"identical": True, "logged": doc["prediction"]["output"], "differences": []}

    folder = tmp_path / "package"
    check = verify(folder, ws.workspace_public_key())
    assert check.ok and check.checked == len(check.manifest["files"]) and check.manifest["subject"] == doc["subject"]
    on_disk = (folder / "evidence.json").read_bytes()
    assert json.loads(on_disk) == doc and hashlib.sha256(on_disk).hexdigest() == evidence.sha256
    assert "<script" not in (folder / "evidence.html").read_text()  # self-contained, nothing to run
    [event] = list_events(ws.db, AuditFilter(action="evidence.prediction"), limit=5)
    assert (event.actor, event.entity_id) == ("oscar", prediction)
    assert event.after["document_sha256"] == evidence.sha256
    assert event.after["manifest_sha256"] == hashlib.sha256((folder / "manifest.json").read_bytes()).hexdigest()

    with pytest.raises(Conflict, match="already exists"):  # evidence handed out is never overwritten
        Services(ws).evidence.prediction(Caller("oscar"), prediction, out=folder)


def test_a_changed_missing_or_added_file_and_another_key_are_named(
    served: tuple[Workspace, str], tmp_path: Path
) -> None:
    ws, prediction = served
    folder = tmp_path / "package"
    Services(ws).evidence.prediction(Caller("admin"), prediction, out=folder)
    public = ws.workspace_public_key()
    [document] = (folder / "records" / "evaluation").glob("*.json")
    data = bytearray(document.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit of the evaluation the release stood on
    document.write_bytes(bytes(data))
    (folder / "records" / "prediction.json").unlink()
    (folder / "records" / "note.txt").write_text("added later")
    found = {p["file"]: p["problem"] for p in verify(folder, public).problems}
    name = document.relative_to(folder).as_posix()
    assert found.keys() == {name, "records/prediction.json", "records/note.txt"}
    assert "changed after the package was signed" in found[name]

    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"] = [f for f in manifest["files"] if f["path"] != name]  # hide the changed file
    (folder / "manifest.json").write_text(json.dumps(manifest))
    assert "signature does not verify" in verify(folder, public).problems[0]["problem"]
    other = Ed25519PrivateKey.generate().public_key()
    assert not verify(tmp_path / "package", other).ok
    (folder / "manifest.sig").write_bytes(base64.b64encode(b"x" * 64))
    assert not verify(folder, public).ok


def test_a_logged_answer_its_bundle_does_not_give_is_reported(served: tuple[Workspace, str]) -> None:
    from medops.serving import prediction_log

    ws, prediction = served
    logged = Services(ws).predictions.show(Caller("admin"), prediction)
    forged = {**logged.to_json(), "id": "forged-0001", "at": logged.to_json()["at"]}
    forged["output"] = {**logged.output, "probability": 0.987654}
    prediction_log.store(ws)([{**forged, "inputs": json.dumps(forged["inputs"]), "output": json.dumps(forged["output"]),
                                "explanation": None}])  # fmt: skip
    doc = Services(ws).evidence.prediction(Caller("admin"), "forged-0001").document
    assert doc["replay"]["identical"] is False
    [difference] = doc["replay"]["differences"]
    assert (difference["what"], difference["logged"]) == ("probability", 0.987654)
    assert difference["replayed"] == logged.output["probability"]


def test_only_auditors_and_admins_get_evidence_and_a_refusal_is_audited(
    served: tuple[Workspace, str], tmp_path: Path
) -> None:
    ws, prediction = served
    for user in ("alice", "victor", "carol", "ming"):  # every other role, the signers included
        with pytest.raises(PermissionDenied):
            Services(ws).evidence.prediction(Caller(user), prediction, out=tmp_path / "package")
        with pytest.raises(PermissionDenied):
            Services(ws).evidence.model(Caller(user), f"{MODEL}:1")
        assert not (tmp_path / "package").exists()
        denied = list_events(ws.db, AuditFilter(actor=user, action="evidence.*"), limit=5)
        assert {e.action for e in denied} == {"evidence.prediction.denied", "evidence.model.denied"}


def test_a_flat_extracts_release_file_names_its_quarantine_and_no_patient(tmp_path: Path) -> None:
    """The real-style extract (NA tokens, ages up to 104, repeat visits, a year column) through the
    pipeline: its release file reads the contract's quarantine and the top-coded ages back to the source
    file, and carries no identifier of the extract."""
    import pandas as pd

    from medops.services.projects import load_project
    from medops.workspace import init_workspace
    from tests.real_style import write_project

    project = write_project(tmp_path / "project")
    with init_workspace(tmp_path / "ws", admin_username="ada", admin_full_name="Ada Admin", admin_password=PASSWORD,
                        project_file=str(project)) as ws:  # fmt: skip
        ws.users.add("ada", "alice", "Alice Moreau", PASSWORD, [Role.DATA_SCIENTIST])
        done = Services(ws).pipelines.run(Caller("alice"), load_project(project))
        assert done.steps[-1].step == "register" and done.steps[-1].outputs, done.steps[-1].note
        doc = Services(ws).evidence.model(Caller("ada"), "pbc_mortality:1").document
    assert doc["project"]["intended_use"].startswith("Flag adults with primary biliary cholangitis")
    assert [Path(f["source"]).name for f in doc["data"]["source_files"]] == ["visits.csv"]
    visits = next(d for d in doc["data"]["datasets"] if d["name"] == "visits")
    assert (visits["contract"]["rows"], visits["contract"]["rows_failed"]) == (988, 2)
    age = next(c for c in visits["deid"]["columns"] if c["column"] == "age")
    assert age["action"] == "age" and age["changed"] == 19  # the three patients above 90, in repeat visits
    assert doc["approvals"]["missing"] and doc["changes"] is None  # awaiting signatures, nothing before it
    sections = {s["section"]: s["status"] for s in doc["annex_iv"]}
    assert sections["2(d)"] == "filled" and sections["9"] == "to be supplied"  # never monitored yet
    text = json.dumps(doc)
    extract = set(pd.read_csv(tmp_path / "project" / "raw" / "visits.csv", dtype=str)["patient_id"])
    assert [p for p in extract if p in text] == []
