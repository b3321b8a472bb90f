"""`medops runs list|show|compare` over runs logged with the Python API."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medops.training import Tracker
from medops.workspace import Workspace
from tests.factories import run


def test_list_show_compare(
    team: Workspace, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MEDOPS_HOME", str(team.settings.home))
    tracker = Tracker(team)
    ids = []
    for lr, auc in ((0.1, 0.78), (0.2, 0.83)):
        with tracker.start_run("readmission", params={"lr": lr}, tags={"model": "lgbm"}, actor="alice") as r:
            r.log_metric("auroc", auc)
        ids.append(r.id)
    code, out, err = run(["runs", "list", "--metric", "auroc>0.8", "--tag", "model=lgbm", "--json"], capsys)
    assert code == 0 and [r["id"] for r in json.loads(out)] == [ids[1]], err
    code, out, _ = run(["runs", "list"], capsys)
    assert code == 0 and ids[0][:8] in out and "auroc" in out
    code, out, _ = run(["runs", "show", ids[0][:8], "--json"], capsys)
    assert json.loads(out)["params"] == {"lr": "0.1"}
    code, out, _ = run(["runs", "compare", ids[0], ids[1], "--json"], capsys)
    doc = json.loads(out)
    assert doc["params"] == [["lr", "0.1", "0.2"]] and doc["metrics"] == [["auroc", 0.78, 0.83]]
    code, _, err = run(["runs", "list", "--metric", "auroc"], capsys)
    assert code == 2 and "METRIC<op>NUMBER" in err
    code, _, err = run(["runs", "show", "ffffff"], capsys)
    assert code == 1 and "no run 'ffffff'" in err
    assert Path(team.settings.home).exists()


def test_the_list_shows_the_filtered_and_test_metrics_first() -> None:
    from medops.cli.runs import metric_columns

    present = {"a_loss", "b_rate", "c", "d", "pruned", "search_seconds", "test_auprc", "test_auroc", "zz"}
    assert metric_columns(["zz"], present) == ["zz", "test_auroc", "test_auprc", "a_loss", "b_rate"]
    assert metric_columns([], {"test_brier", "c"}) == ["test_brier", "c"]
