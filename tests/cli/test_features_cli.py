"""`medops features apply|list|show|training-set|materialize|get|check`, then `medops train`, on the template."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.factories import run

pytestmark = pytest.mark.slow

CTRL_C_IN_TRIAL_2 = """
import medops.training.tuning as tuning
from medops.cli.main import main

original, calls = tuning._score, []


def score(*args, **kwargs):
    calls.append(1)
    if len(calls) == 2:
        raise KeyboardInterrupt  # as Ctrl-C does, in the middle of the second trial
    return original(*args, **kwargs)


tuning._score = score
main(["train", "--tune"])
"""


def test_features_from_apply_to_check(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["data", "ingest", "--all"], capsys)
    assert code == 0, err
    code, out, err = run(["features", "list", "--json"], capsys)
    assert code == 0 and {r["applied"] for r in json.loads(out)} == {"not applied"}, err
    code, out, err = run(["features", "apply", "--json", "-r", "first views"], capsys)
    applied = {r["view"]: r for r in json.loads(out)}
    assert code == 0 and set(applied) == {"admissions", "labs", "fills", "demographics"}, err
    assert all(r["new"] for r in applied.values())
    code, out, _ = run(["features", "apply", "labs", "--json"], capsys)
    assert json.loads(out)[0]["new"] is False
    code, out, _ = run(["features", "show", "labs", "--json"], capsys)
    shown = json.loads(out)
    assert shown["version"] == applied["labs"]["version"]
    assert any(e["relation"] == "features" for e in shown["lineage"])
    assert [h["action"] for h in shown["history"]] == ["features.apply"]
    code, out, err = run(
        [
            "features",
            "training-set",
            "train",
            "admissions",
            "labs",
            "age_years",
            "demographics:birth_year",
            "--labels",
            "readmission_labels",
            "--timestamp",
            "label_time",
            "--json",
        ],
        capsys,
    )
    assert code == 0, err
    assert json.loads(out)["rows"] > 0
    code, out, err = run(["features", "materialize"], capsys)  # ada, an admin, logged in by medops init
    assert code == 0 and "labs:" in out, err
    code, out, _ = run(["data", "show", "train", "--json"], capsys)
    patient = None
    for column in json.loads(out)["profile"]["patient_id"]["top"]:
        patient = column[0]
        break
    assert patient
    code, out, err = run(
        [
            "features",
            "get",
            "admissions",
            "age_years",
            "demographics:birth_year",
            "--entity",
            f"patient_id={patient}",
            "--json",
        ],
        capsys,
    )
    assert code == 0, err
    got = json.loads(out)
    assert got["found"]["admissions"] == [True] and got["rows"][0]["patient_id"] == patient
    code, out, err = run(["features", "check", "--sample", "20"], capsys)
    assert code == 0 and "online and offline agree" in out, err
    code, out, err = run(["train", "--json"], capsys)
    assert code == 0, err
    first = json.loads(out)
    code, out, err = run(["train", "--json"], capsys)
    assert json.loads(out)["model_sha256"] == first["model_sha256"]  # the same data, settings and seed
    code, out, _ = run(["runs", "show", first["run"], "--json"], capsys)
    shown = json.loads(out)
    assert shown["state"] == "finished"
    inputs = {(i["kind"], i["name"]) for i in shown["inputs"]}
    assert ("training_set", "readmission_training") in inputs and ("featureview", "labs") in inputs
    assert shown["project_sha256"] and shown["params"]["split.kind"] == "grouped"
    code, out, err = run(["runs", "reproduce", first["run"], "--json"], capsys)
    assert code == 0 and json.loads(out)["reproduced"] is True, err
    code, out, err = run(["evaluate", first["run"], "--out", "reports", "--json"], capsys)
    evaluated = json.loads(out)
    assert code == (0 if evaluated["passed"] else 1), err
    assert evaluated["run"] == first["run"] and {g["criterion"] for g in evaluated["gates"]} >= {
        "data contracts passed",
        "leakage checks passed",
    }
    assert (project / "reports" / "validation_report.html").stat().st_size > 10_000
    assert "## Intended use" in (project / "reports" / "model_card.md").read_text(encoding="utf-8")
    code, out, _ = run(["evaluations", "list", "--run", first["run"], "--json"], capsys)
    assert [e["id"] for e in json.loads(out)] == [evaluated["evaluation"]]
    code, out, _ = run(["evaluations", "show", evaluated["evaluation"][:8], "--report", "copy.html", "--json"], capsys)
    assert code == 0 and json.loads(out)["gates"] == evaluated["gates"]
    assert (project / "copy.html").read_bytes() == (project / "reports" / "validation_report.html").read_bytes()
    code, _, err = run(["evaluate", first["run"], "--champion", first["run"]], capsys)
    assert code == 2 and "the champion is the run being evaluated" in err
    code, out, err = run(
        ["train", "--estimator", "logistic_regression", "--param", "C=0.5", "--seed", "7", "--json"], capsys
    )
    assert code == 0, err
    flagged = json.loads(out)["run"]
    code, out, _ = run(["runs", "show", flagged, "--json"], capsys)
    params = json.loads(out)["params"]
    assert params["estimator"] == "logistic_regression" and params["model.C"] == "0.5"
    assert params["overridden"] == "estimator,params,seed" and "model.num_leaves" not in params
    code, out, err = run(["runs", "reproduce", flagged, "--json"], capsys)
    assert code == 0 and json.loads(out)["reproduced"] is True, err
    code, _, err = run(["train", "--param", "nope=1"], capsys)
    assert code == 2 and "lightgbm has no parameter 'nope'" in err
    code, _, err = run(["train", "--split", "random"], capsys)
    assert code == 2 and "split (train.split.kind)" in err and "--split" in err
    code, out, err = run(["train", "--tune", "--json"], capsys)
    assert code == 0, err
    code, out, _ = run(["runs", "list", "--trials", "--json"], capsys)
    assert sum(r["name"].startswith("trial-") for r in json.loads(out)) >= 1
    stopped = subprocess.run([sys.executable, "-c", CTRL_C_IN_TRIAL_2], capture_output=True, text=True, timeout=600)
    assert (stopped.returncode, stopped.stderr) == (130, "interrupted\n")  # one line: no traceback from Optuna
    code, _, err = run(["features", "get", "labs", "--entity", "patient"], capsys)
    assert code == 2 and "is not NAME=VALUE" in err
    code, _, err = run(["features", "training-set", "t2", "labs", "--labels", "nope", "--timestamp", "x"], capsys)
    assert code == 1 and "no dataset 'nope'" in err
