"""`medops lineage show NAME:VERSION`: a model version back to the source files, on the demo's workspace."""

from __future__ import annotations

import json
from collections import defaultdict

import pytest

from medops.demo import DemoResult
from tests.factories import run


@pytest.fixture
def on_demo(demo: DemoResult, monkeypatch: pytest.MonkeyPatch) -> DemoResult:
    monkeypatch.setenv("MEDOPS_HOME", str(demo.home))
    return demo


def test_a_model_version_leads_back_to_its_source_files(
    on_demo: DemoResult, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(["lineage", "show", "readmission_30d:1", "--no-down", "--json"], capsys)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["node"] == "model:readmission_30d:1" and doc["downstream"] == []
    fed_by: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for edge in doc["upstream"]:
        fed_by[edge["dst"]].append((edge["src"], edge["relation"]))
    [(run_node, relation)] = fed_by["model:readmission_30d:1"]
    assert run_node.startswith("run:") and relation == "registered_as"
    [training_set] = [src for src, rel in fed_by[run_node] if rel == "trained_on" and src.startswith("dataset:")]
    assert training_set.startswith("dataset:readmission_training@")
    views = [src for src, rel in fed_by[training_set] if rel == "training_set"]
    assert sorted(v.split("@")[0] for v in views) == [
        "featureview:admissions",
        "featureview:demographics",
        "featureview:fills",
        "featureview:labs",
    ]
    assert [rel for _, rel in fed_by[training_set] if rel == "labels"] == ["labels"]
    for view in views:  # each view: built from a dataset, ingested from a source file
        [(dataset, rel)] = fed_by[view]
        assert dataset.startswith("dataset:") and rel == "features"
        assert any(src.startswith("file:") and rel == "ingest" for src, rel in fed_by[dataset]), dataset

    code, out, _ = run(["lineage", "show", "readmission_30d:1", "--no-down"], capsys)
    assert code == 0
    assert "model readmission_30d:1" in out and "registered_as" in out and "featureview admissions@" in out
    assert "patients.csv" in out  # the tree reaches the files


def test_a_model_version_that_is_not_there(on_demo: DemoResult, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["lineage", "show", "readmission_30d:9"], capsys)
    assert code != 0 and "no model version readmission_30d:9" in err and "medops models show readmission_30d" in err
    code, _, err = run(["lineage", "show", "no_such_model:1"], capsys)
    assert code != 0 and "no model version no_such_model:1" in err
