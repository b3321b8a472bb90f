"""`medops evidence` on a copy of the demo: a served prediction's package and a production version's release
file hold every element an auditor asks for, carry no identifier from the raw extracts, and verify offline
with the workspace's public key alone (exit 0), while a changed byte makes `evidence verify` exit 1 naming
the file."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from medops.demo import DEMO_PASSWORD
from tests.factories import log_in, run

pytestmark = pytest.mark.slow


@pytest.fixture
def auditor(demo_copy: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The demo copy as the current workspace, victor (validator and auditor) logged in."""
    monkeypatch.setenv("MEDOPS_HOME", str(demo_copy / "workspace"))
    monkeypatch.chdir(demo_copy / "project")
    log_in(demo_copy / "workspace", "victor", DEMO_PASSWORD)
    return demo_copy


def _raw_identifiers(project: Path) -> set[str]:
    """Direct identifiers of the raw extracts: record numbers, SSNs, phone numbers, e-mail addresses."""
    with open(project / "raw" / "patients.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return {row[column] for row in rows for column in ("mrn", "ssn", "phone", "email", "patient_id")}


def test_a_predictions_package_holds_every_element_and_verifies_offline(
    auditor: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    code, out, err = run(["predictions", "list", "--json", "--limit", "1"], capsys)
    assert code == 0, err
    prediction = json.loads(out)[0]["id"]
    package = tmp_path / "evidence"
    args = ["evidence", "prediction", prediction, "--out", str(package), "--html", str(tmp_path / "page.html")]
    code, out, err = run(args, capsys)
    assert code == 0, err
    for said in ("bundle sha256:", "signatures: 2 of 2 verify", "passed under the reviewed policy", "audit chain",
                 "replay: the same probability and decision", "package written to"):  # fmt: skip
        assert said in out, said
    doc = json.loads((package / "evidence.json").read_text())
    data = doc["data"]
    assert {Path(f["source"]).name for f in data["source_files"]} >= {"patients.csv", "encounters.csv"}
    ingested = [d for d in data["datasets"] if d["deid"]]
    assert ingested and all(d["contract"] and d["sources"] for d in ingested)
    patients = next(d for d in ingested if d["name"] == "patients")
    assert {c["column"]: c["action"] for c in patients["deid"]["columns"]}["ssn"] == "drop"
    assert doc["training"]["environment_sha256"] and "git_commit" in doc["training"]["code"]
    assert doc["explanation"]["contributions"] and doc["replay"]["identical"]

    text = "\n".join(p.read_text(errors="replace") for p in package.rglob("*") if p.is_file())
    leaked = [value for value in _raw_identifiers(auditor / "project") if value and value in text]
    assert leaked == []  # pseudonyms and de-identified records only

    code, key, err = run(["models", "public-key"], capsys)  # handed to the verifier out of band
    assert code == 0, err
    monkeypatch.delenv("MEDOPS_HOME")  # a verifier has the folder and the key, no workspace
    monkeypatch.chdir(tmp_path)
    key = key.strip()
    code, out, err = run(["evidence", "verify", str(package), "--public-key", key], capsys)
    assert code == 0 and "evidence intact" in out, err
    report = package / "records" / "evaluation" / "report.html"
    report.write_text(report.read_text().replace("AUROC", "AUROC ", 1))
    code, out, err = run(["evidence", "verify", str(package), "--public-key", key, "--json"], capsys)
    assert code == 1
    [problem] = json.loads(out)["problems"]
    assert problem["file"] == "records/evaluation/report.html" and "changed after" in problem["problem"]


def test_a_release_file_answers_the_auditors_questions(
    auditor: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, err = run(["evidence", "model", "readmission_30d:1", "--json"], capsys)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["project"]["intended_use"] and doc["project"]["population"]
    assert doc["evaluation"]["subgroups"]["groups"] and doc["evaluation"]["robustness"]
    production = doc["production"]
    assert production["windows"] and production["alerts"]
    assert production["alerts"][0]["acknowledged"]["by"] == "ming"  # the alert and its handling
    assert doc["changes"] is None  # the first production version: nothing before it
    sections = {s["section"]: s for s in doc["annex_iv"]}
    assert sections["1(a)"]["status"] == "filled" and sections["2(g)"]["status"] == "filled"
    assert sections["8"]["status"] == "to be supplied" and sections["9"]["status"] == "filled"

    code, out, err = run(["evidence", "model", "readmission_30d:3", "--json"], capsys)
    assert code == 0, err
    changes = json.loads(out)["changes"]
    assert changes["against"] == "readmission_30d:1"  # the version it replaced in production
    assert {m[0] for m in changes["metrics"]} >= {"test_auroc"} and changes["inputs"] and changes["gates"]


def test_evidence_is_for_auditors_and_admins(demo_copy: Path, capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setenv("MEDOPS_HOME", str(demo_copy / "workspace"))
    log_in(demo_copy / "workspace", "alice", DEMO_PASSWORD)
    code, _, err = run(["evidence", "model", "readmission_30d:3"], capsys)
    assert code != 0 and "may not evidence model" in err
