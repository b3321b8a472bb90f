"""Project templates: each one's project file, contracts and de-identification fit the synthetic data it
writes, and each runs end to end (ingest, features, training, evaluation) with the commands a user types."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
import typer

from medops.errors import ConfigError
from medops.services.projects import load_project
from medops.services.projects import templates as templates_module
from medops.services.projects.ingest import table_plan
from medops.services.projects.templates import scaffold, synth_options, templates
from tests.factories import PASSWORD, PSEUDONYM_KEY, log_in, run

TEMPLATES = templates()


def _header(path: Path) -> list[str]:
    with path.open(newline="", encoding="utf-8") as handle:
        return next(csv.reader(handle))


def test_the_bundled_templates() -> None:
    assert TEMPLATES == ["adherence", "hcp-churn", "readmission"]


@pytest.mark.parametrize("template", TEMPLATES)
def test_a_template_fits_the_data_it_writes(tmp_path: Path, template: str) -> None:
    scaffold(tmp_path, template, patients=60, seed=3)
    loaded = load_project(tmp_path / "medops.yaml")
    spec = loaded.spec
    assert spec.owner and spec.description and spec.evaluate is not None and spec.evaluate.model_card.limitations
    columns = {}
    for name, source in spec.sources.items():
        assert source.path is not None
        columns[name] = _header(loaded.resolve(source.path))
        # every column the synthetic file has gets its own de-identification rule, and no rule is stale
        assert sorted(spec.deidentify.tables[name].columns) == sorted(columns[name]), name
        assert set(table_plan(loaded, name).actions) >= set(columns[name])
        if name in loaded.contracts:
            assert sorted(loaded.contracts[name].columns) == sorted(columns[name]), name
    for name, rules in spec.deidentify.tables.items():  # HCP ids share one id space in every template
        for column, action in rules.columns.items():
            if "hcp" in column or column == "pcp_id":
                assert action == "pseudonymize:hcp", (name, column)
    train = spec.train
    assert train is not None and train.training_set is not None
    labels = columns[train.training_set.labels]
    assert train.label in labels and train.training_set.timestamp in labels
    assert train.split.kind == "grouped" and train.split.group in labels and train.model.estimator == "lightgbm"
    # the views describe the entity the use case predicts for, the entity the split groups by
    assert {view.entity for view in loaded.features.views.values()} == {train.split.group}
    assert set(train.training_set.features) <= set(loaded.features.views) | set(loaded.features.on_demand)
    assert {view.source for view in loaded.features.views.values()} | {train.training_set.labels} == set(
        spec.sources
    ) - ({"notes"} if template == "readmission" else set())  # every other source feeds the model


def test_the_churn_template_has_a_prescriber_universe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert synth_options("readmission", 2000) == {} and synth_options("adherence", 2000) == {}
    assert synth_options("hcp-churn", 2000) == {"hcps": 1000}
    assert synth_options("hcp-churn", 4) == {"hcps": 10}  # never fewer than the generator's minimum
    scaffold(tmp_path / "churn", "hcp-churn", patients=100, seed=1)
    with (tmp_path / "churn" / "raw" / "hcps.csv").open(encoding="utf-8") as handle:
        assert sum(1 for _ in handle) == 1 + 50
    assert not (tmp_path / "churn" / "synth.yaml").exists()  # how data is made is not part of the project
    folder = tmp_path / "templates" / "broken"
    folder.mkdir(parents=True)
    monkeypatch.setattr(templates_module, "TEMPLATES_DIR", tmp_path / "templates")
    (folder / "synth.yaml").write_text("patients_per_hcp: 2\n")
    with pytest.raises(ConfigError, match="unknown setting 'patients_per_hcp'"):
        synth_options("broken", 100)
    (folder / "synth.yaml").write_text("hcps_per_patient: -1\n")
    with pytest.raises(ConfigError, match="hcps_per_patient is a positive number"):
        synth_options("broken", 100)


def test_the_cli_names_every_template() -> None:
    from medops.cli.main import app

    root = typer.main.get_command(app)
    ctx = typer.Context(root)
    for path in (["init"], ["project", "new"]):
        command = root
        for name in path:
            command = command.get_command(ctx, name)  # type: ignore[attr-defined]
        option = next(p for p in command.params if "--template" in p.opts)
        assert all(t in str(getattr(option, "help", "")) for t in TEMPLATES), path


def _end_to_end(
    home: Path, template: str, patients: int, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> tuple[dict[str, Any], dict[str, Any]]:
    """`medops init --template`, ingest, features apply, train (a data scientist), evaluate: (run, evaluation)."""
    monkeypatch.setenv("MEDOPS_ADMIN_PASSWORD", PASSWORD)
    monkeypatch.setenv("MEDOPS_PSEUDONYM_KEY", PSEUDONYM_KEY)
    init = ["init", str(home), "--admin", "ada", "--template", template, "--patients", str(patients)]
    code, _, err = run(init, capsys)
    assert code == 0, err
    monkeypatch.chdir(home)
    code, out, err = run(["data", "ingest", "--all", "--json"], capsys)
    assert code == 0, err
    code, out, err = run(["features", "apply", "--json"], capsys)
    assert code == 0 and all(r["new"] for r in json.loads(out)), err
    role = ["user", "add", "dana", "--name", "Dana Scientist", "--role", "data_scientist", "--password-stdin"]
    code, _, err = run(role, capsys, stdin=PASSWORD + "\n", monkeypatch=monkeypatch)
    assert code == 0, err
    log_in(home, "dana")
    code, out, err = run(["train", "--json"], capsys)
    assert code == 0, err
    trained = json.loads(out)
    code, out, err = run(["evaluate", trained["run"], "--out", "reports", "--json"], capsys)
    evaluated = json.loads(out)
    assert code == (0 if evaluated["passed"] else 1), err
    assert (home / "reports" / "validation_report.html").is_file()
    return trained, evaluated


@pytest.mark.slow
@pytest.mark.parametrize(
    ("template", "labels"),
    [("adherence", "adherence_labels"), ("hcp-churn", "churn_labels")],
)
def test_a_template_runs_end_to_end(
    tmp_path: Path,
    template: str,
    labels: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    home = tmp_path / template
    trained, evaluated = _end_to_end(home, template, 600, capsys, monkeypatch)
    train = load_project(home / "medops.yaml").spec.train
    assert train is not None and train.training_set is not None
    code, out, _ = run(["runs", "show", trained["run"], "--json"], capsys)
    shown = json.loads(out)
    assert shown["state"] == "finished" and shown["created_by"] == "dana"
    assert ("training_set", train.training_set.name) in {(i["kind"], i["name"]) for i in shown["inputs"]}
    code, out, _ = run(["data", "show", labels, "--json"], capsys)
    assert code == 0 and json.loads(out)["rows"] > 250
    gates = {g["criterion"]: g for g in evaluated["gates"]}
    assert gates["data contracts passed"]["passed"] and gates["leakage checks passed"]["passed"]
    assert "auroc ≥ 0.55 on the CI lower bound" in gates and any(c.startswith("calibration_slope") for c in gates)
    assert 0.5 < evaluated["metrics"]["auroc"]["value"] < 0.9  # signal, and no label in disguise


@pytest.mark.slow
@pytest.mark.parametrize("template", ["adherence", "hcp-churn"])
def test_a_template_passes_its_policy_on_its_default_data(
    tmp_path: Path, template: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, evaluated = _end_to_end(tmp_path / template, template, 2000, capsys, monkeypatch)
    failed = [g["why"] for g in evaluated["gates"] if not g["passed"]]
    assert evaluated["passed"] and not failed, failed
    assert evaluated["metrics"]["auroc"]["low"] > 0.55


@pytest.mark.slow
@pytest.mark.parametrize("template", ["adherence", "hcp-churn"])
def test_a_template_runs_as_a_pipeline(
    tmp_path: Path, template: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`medops run` from `medops init --template`: every step the file makes, then nothing the second time."""
    home = tmp_path / template
    monkeypatch.setenv("MEDOPS_ADMIN_PASSWORD", PASSWORD)
    monkeypatch.setenv("MEDOPS_PSEUDONYM_KEY", PSEUDONYM_KEY)
    code, _, err = run(["init", str(home), "--admin", "ada", "--template", template, "--patients", "600"], capsys)
    assert code == 0, err
    monkeypatch.chdir(home)
    role = ["user", "add", "dana", "--name", "Dana Scientist", "--role", "data_scientist", "--password-stdin"]
    code, _, err = run(role, capsys, stdin=PASSWORD + "\n", monkeypatch=monkeypatch)
    assert code == 0, err
    log_in(home, "dana")
    code, out, err = run(["run", "--json"], capsys)
    first = json.loads(out)
    steps = [s["step"] for s in first["steps"]]
    assert steps[-5:] == ["features", "training_set", "train", "evaluate", "register"], steps
    assert all(s["state"] == "done" for s in first["steps"][:-1]) and code == (0 if first["state"] == "finished" else 1)
    code, out, err = run(["run", "--json"], capsys)
    again = json.loads(out)
    assert [s["state"] for s in again["steps"]][:-1] == ["skipped"] * (len(steps) - 1), err
