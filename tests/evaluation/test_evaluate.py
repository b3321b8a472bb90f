"""A run validated end to end on both metadata backends: a model poor for one sex fails the subgroup gate,
a model worse than the champion fails non-inferiority, a good model passes; bad input is named."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from medops.audit.query import AuditFilter, list_events
from medops.errors import InvalidInput, PermissionDenied
from medops.evaluation.evaluate import binary_label, evaluate
from medops.evaluation.records import list_for, record
from medops.evaluation.spec import EvaluateSpec
from medops.training import Tracker
from medops.workspace import Workspace
from tests.factories import COHORT_FEATURES as FEATURES
from tests.factories import LOGISTIC, POLICY, cohort, evaluate_run, train_run

pytestmark = pytest.mark.usefixtures("pseudonym_key")


def _gate(doc: dict[str, Any], start: str) -> dict[str, Any]:
    return next(g for g in doc["gates"] if g["criterion"].startswith(start))


def test_a_good_model_passes_and_the_result_is_stored_and_audited(team: Workspace, tmp_path: Path) -> None:
    tracker = Tracker(team)
    run = train_run(tracker, tmp_path, "fair", cohort(2400, biased=False), LOGISTIC, FEATURES)
    doc = evaluate_run(tracker, run)
    failed = [g["criterion"] + ": " + g["why"] for g in doc["gates"] if not g["passed"]]
    assert doc["passed"], failed
    assert _gate(doc, "leakage checks")["passed"]
    strict = evaluate_run(tracker, run, policy={**POLICY["policy"], "prerequisites": ["data_contract"]})
    assert not strict["passed"] and "no passed contract for fair@" in _gate(strict, "data contracts")["why"]
    assert doc["metrics"]["auroc"]["low"] < doc["metrics"]["auroc"]["value"] < doc["metrics"]["auroc"]["high"]
    names = {(g["attribute"], g["group"]) for g in doc["subgroups"]["groups"]}
    assert {("sex", "F"), ("sex", "M"), ("age_band", "<50"), ("age_band", "50–<75"), ("age_band", "≥75")} <= names
    unit = next(r for r in doc["robustness"] if r["name"] == "unit:age")
    assert unit["caught"] and unit["flagged_rate"] == 1.0  # ages in months are outside every training age
    info = record(team, doc, "<html></html>", "# card", "<html></html>", actor="victor")
    assert info.passed and [g["criterion"] for g in info.gates] == [g["criterion"] for g in doc["gates"]]
    assert list_for(team, run)[0].id == doc["id"]
    events = list_events(team.db, AuditFilter(action="evaluation.record"), limit=None)
    assert [e.entity_id for e in events] == [doc["id"]] and events[0].after["passed"] is True
    with pytest.raises(PermissionDenied):  # a clinical reviewer signs; she does not record validations
        record(team, {**doc, "id": "f" * 32}, "", "", "", actor="carol")


def test_a_model_poor_for_one_sex_fails_the_subgroup_gate(team: Workspace, tmp_path: Path) -> None:
    tracker = Tracker(team)
    run = train_run(tracker, tmp_path, "biased", cohort(2400, biased=True), LOGISTIC, FEATURES)
    doc = evaluate_run(tracker, run)
    gate = _gate(doc, "auroc gap")
    assert not gate["passed"] and "sex=F" in gate["why"], gate
    women = next(g for g in doc["subgroups"]["groups"] if g["group"] == "F")
    assert "auroc" in women["flagged"] and women["gaps"]["auroc"]["value"] < -0.1
    assert not doc["passed"]


def test_a_model_worse_than_the_champion_fails_non_inferiority(team: Workspace, tmp_path: Path) -> None:
    tracker = Tracker(team)
    frame = cohort(2400, biased=False)
    champion = train_run(tracker, tmp_path, "cohort", frame, LOGISTIC, FEATURES)
    weaker = train_run(tracker, tmp_path, "cohort", frame, LOGISTIC, ["age"])  # the same rows, one feature
    doc = evaluate_run(tracker, weaker, champion=champion)
    gate = _gate(doc, "auroc not worse")
    assert not gate["passed"] and doc["champion"]["high"] < -0.02, doc["champion"]
    again = evaluate_run(tracker, champion, champion=weaker)  # the other way round it is not inferior
    assert _gate(again, "auroc not worse")["passed"]


def test_bad_input_is_named_before_any_work(team: Workspace, tmp_path: Path) -> None:
    tracker = Tracker(team)
    run = train_run(tracker, tmp_path, "fair", cohort(800, biased=False), LOGISTIC, FEATURES)
    at = "medops.yaml, line 9: evaluate.subgroups.attributes.payer"
    spec = EvaluateSpec.model_validate({**POLICY, "subgroups": {"attributes": {"payer": {}}}, "policy": {}})
    with pytest.raises(InvalidInput, match=f"{at}: the test set has no column 'payer'"):
        evaluate(
            tracker, run, spec, project={}, where=lambda loc: f"medops.yaml, line 9: {'.'.join(loc)}", actor="admin"
        )
    spec = EvaluateSpec.model_validate({**POLICY, "robustness": {"unit_errors": {"temp_c": {"scale": 1.8}}}})
    with pytest.raises(InvalidInput, match="evaluate.robustness.unit_errors.temp_c: 'temp_c' is not a feature"):
        evaluate(tracker, run, spec, project={}, actor="admin")
    with pytest.raises(InvalidInput, match="one class only"):
        binary_label(pd.Series([1, 1, 1], name="readmitted"), lambda loc: ".".join(loc))
    with pytest.raises(InvalidInput, match="not binary"):
        binary_label(pd.Series([0, 1, 2], name="readmitted"), lambda loc: ".".join(loc))
    with pytest.raises(InvalidInput, match="the champion is the run being evaluated"):
        evaluate_run(tracker, run, champion=run)


def test_the_threshold_is_solved_on_held_out_training_predictions_so_its_gate_can_fail(
    team: Workspace, tmp_path: Path
) -> None:
    """A sensitivity gate at the rule's own target passed always when the rule was solved on the test rows."""
    tracker = Tracker(team)
    outcomes = []
    for seed in range(4):
        run = train_run(tracker, tmp_path, f"c{seed}", cohort(900, biased=False, seed=seed), LOGISTIC, FEATURES)
        doc = evaluate_run(
            tracker,
            run,
            threshold={"target_sensitivity": 0.7, "folds": 4},
            subgroups=None,
            robustness={},
            policy={"metrics": {"sensitivity": {"min": 0.7}}, "prerequisites": []},
        )
        assert doc["threshold"]["chosen_on"].startswith("out-of-fold predictions on the training side (4 folds")
        assert doc["threshold"]["held_out"]["sensitivity"] >= 0.7
        outcomes.append(_gate(doc, "sensitivity")["passed"])
    assert True in outcomes and False in outcomes, outcomes  # judged on rows it was not fitted to: it can fail


def test_the_share_lost_to_quarantine_is_stated_and_gated(team: Workspace, tmp_path: Path) -> None:
    from medops.evaluation.gates import quarantine_gate

    tracker = Tracker(team)
    run = train_run(tracker, tmp_path, "fair", cohort(800, biased=False), LOGISTIC, FEATURES)
    doc = evaluate_run(tracker, run, subgroups=None, robustness={}, policy={"max_quarantined_share": 0.0})
    assert doc["data"]["quarantine"]["recorded"] and doc["data"]["quarantine"]["share_lost"] == 0.0
    assert _gate(doc, "quarantined share")["passed"]
    spec = EvaluateSpec.model_validate({"policy": {"max_quarantined_share": 0.05}})
    lost = {"share_lost": 0.08, "labels_quarantined": 3, "label_rows_dropped": 5}
    [gate] = quarantine_gate(spec, lost)
    assert not gate.passed and "8.0% of examples lost to quarantine" in gate.why and "above 5.0%" in gate.why


def test_the_noise_test_names_the_features_that_are_mostly_zero() -> None:
    from medops.evaluation.robustness import perturbations
    from medops.evaluation.spec import RobustnessSpec
    from medops.training.input_schema import InputSchema

    frame = pd.DataFrame({"visits_30d": [0] * 8 + [1, 3], "age": np.arange(60, 70)})
    schema = InputSchema.from_frame(frame, ["visits_30d", "age"])
    [noise, *_] = perturbations(frame, ["visits_30d", "age"], schema, RobustnessSpec(missing=0, out_of_range=0))
    assert noise[0] == "noise" and "mostly zero, their zeros perturbed too: visits_30d 80%" in noise[1]
    assert "age" not in noise[1].split("mostly zero")[1]


def test_out_of_fold_thresholds_say_what_to_change_when_the_training_side_is_too_small() -> None:
    from medops.evaluation.heldout import out_of_fold
    from medops.training.train import TrainConfig

    frame = pd.DataFrame({"x": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6], "y": [0, 0, 0, 0, 0, 1], "patient_id": list("abcdef")})
    config = TrainConfig(["x"], "y", LOGISTIC, group="patient_id")
    with pytest.raises(InvalidInput) as err:
        out_of_fold(frame, config, 3)
    assert "leaves one class to train on" in err.value.message and "evaluate.threshold.folds" in str(err.value.hint)
