"""A dataset version scored in batch, judged as a window of its own on both backends: found through
lineage, scored again by the verified bundle, stored, listed and alerted on like the log's windows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from medops.audit import AuditFilter, list_events
from medops.caller import Caller
from medops.errors import InvalidInput, PermissionDenied
from medops.services import Services
from medops.workspace import Workspace
from tests.factories import cohort, log_in, put, run

pytestmark = pytest.mark.usefixtures("pseudonym_key")


def _batch(ws: Workspace, tmp_path: Path, name: str, seed: int, older: int = 0) -> str:
    frame = cohort(700, biased=False, seed=seed)
    frame["age"] = (frame["age"] + older).clip(upper=100)  # inside the served range: the batch scores
    put(ws, tmp_path, name, pa.Table.from_pandas(frame, preserve_index=False))
    return name


def test_a_batch_scored_by_the_model_is_a_window_and_an_aged_one_drifts(
    registry: tuple[Workspace, str], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: Any
) -> None:
    ws, run_id = registry
    services = Services(ws)
    version = services.registry.register(Caller("alice"), run_id, "readmission")
    march = _batch(ws, tmp_path, "march", seed=31)
    april = _batch(ws, tmp_path, "april", seed=32, older=14)
    for name in (march, april):
        source = services.serving.score_input(name)
        services.serving.score(Caller("ming"), "readmission:1", source, tmp_path / f"{name}-scores.parquet")

    monitoring = services.monitoring
    with pytest.raises(PermissionDenied):
        monitoring.run(Caller("carol"), "readmission", dataset=march)  # a clinical reviewer reads, never writes
    first = monitoring.run(Caller("ming"), "readmission", dataset=march)
    (quiet,) = first.windows
    assert (quiet.source, quiet.version, quiet.rows, quiet.judged) == ("dataset:march", 1, 700, True)
    assert quiet.label.startswith("march@") and quiet.drifted == [] and first.alerts == []
    aged = monitoring.run(Caller("ming"), "readmission", dataset=april).windows[0]
    assert aged.drifted == ["age"] and aged.metrics["drift.age.psi"] > 0.2 > quiet.metrics["drift.age.psi"]
    _, doc = monitoring.show(Caller("carol"), aged.id)
    assert doc["dataset"].startswith("april@") and doc["prediction"]["drifted"]  # older: riskier
    listed = monitoring.windows(Caller("carol"), "readmission")
    assert {w.source for w in listed} == {"dataset:march", "dataset:april"}
    events = list_events(ws.db, AuditFilter(action="monitor.window"))
    assert [e.actor for e in events] == ["ming", "ming"]

    # a looser copy of the thresholds explores a batch: shown, never stored, no alert
    from medops.monitoring.spec import DriftSpec, MonitorSpec

    looser = monitoring.run(Caller("ming"), "readmission", dataset=april, spec=MonitorSpec(drift=DriftSpec(psi=5)))
    assert looser.exploratory and looser.alerts == [] and [w.id for w in looser.windows] == ["-"]
    assert len(monitoring.windows(Caller("carol"), "readmission")) == len(listed)

    # the same rows the batch scored: the window's score distribution is the prediction file's
    import pyarrow.parquet as pq

    scored = pq.read_table(tmp_path / "april-scores.parquet")["probability"].to_numpy()
    share = doc["prediction"]["above_threshold"]
    assert aged.rows == len(scored) == 700
    assert share["current"] == pytest.approx(float((scored >= share["threshold"]).mean()))

    # not scored by the model: refused with the way forward, unless the version is named
    may = _batch(ws, tmp_path, "may", seed=33)
    with pytest.raises(InvalidInput, match="was not scored") as refused:
        monitoring.run(Caller("ming"), "readmission", dataset=may)
    assert refused.value.code == "dataset_not_scored"
    named = monitoring.run(Caller("ming"), f"readmission:{version.version}", dataset=may).windows
    assert [(w.source, w.drifted) for w in named] == [("dataset:may", [])]
    assert named[0].metrics["quality.los.out_of_range"] > 0  # rows the version would refuse: counted, not a stop

    # the CLI: the same, as a data team runs it
    monkeypatch.setenv("MEDOPS_HOME", str(ws.settings.home))
    log_in(ws, "ming")
    code, out, err = run(["monitor", "run", "readmission", "--dataset", april, "--json"], capsys)
    assert code == 0, err
    assert '"drifted": [' in out and '"age"' in out
    code, _, err = run(["monitor", "run", "readmission", "--dataset", may], capsys)
    assert code != 0 and f"medops score readmission --input {may}@" in err  # the way forward, spelled for the CLI
    code, _, err = run(["monitor", "run", "readmission", "--dataset", "nope"], capsys)
    assert code != 0 and "no dataset 'nope'" in err and "Traceback" not in err


@pytest.mark.slow
def test_on_dask_a_batch_is_scored_and_summarized_by_row_groups_and_judged_the_same(
    registry: tuple[Workspace, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``executor = dask-local``: the stored batch's row groups split among worker processes, each
    verifying the bundle it is sent and scoring its share; the merged window is the local one."""
    import pyarrow.parquet as pq

    from medops.data.ingest import TablePlan, ingest
    from medops.data.sources import ParquetSource

    ws, run_id = registry
    services = Services(ws)
    services.registry.register(Caller("alice"), run_id, "readmission")
    frame = cohort(900, biased=False, seed=41)
    frame["age"] = (frame["age"] + 14).clip(upper=100)
    path = tmp_path / "june.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
    plan = TablePlan("june", ParquetSource(path), {c: "keep" for c in frame.columns})
    monkeypatch.setattr("medops.data.parquet_sink.ROW_GROUP_ROWS", 200)  # a stored file of five row groups
    stored = ingest(ws, plan, actor="admin", chunk_rows=200).dataset
    assert pq.ParquetFile(ws.artifacts.local_path(stored.version)).num_row_groups == 5
    here = services.monitoring.run(Caller("ming"), "readmission:1", dataset="june").windows[0]
    monkeypatch.setenv("MEDOPS_EXECUTOR", "dask-local")
    on_dask = Workspace.open(ws.settings.home)
    try:
        there = Services(on_dask).monitoring.run(Caller("ming"), "readmission:1", dataset="june").windows[0]
    finally:
        on_dask.close()
    assert (there.rows, there.drifted) == (here.rows, here.drifted) == (900, ["age"])
    assert there.metrics.keys() == here.metrics.keys()
    for key, value in here.metrics.items():
        assert there.metrics[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key


def test_a_flat_extract_read_as_text_is_judged_with_its_stray_tokens_as_missing(
    registry: tuple[Workspace, str], tmp_path: Path
) -> None:
    """A CSV extract ingested without a contract holds every cell as text, a stray "NA" among the numbers:
    the window reads each number as the model does, and what is no number as missing (not a traceback)."""
    ws, run_id = registry
    services = Services(ws)
    services.registry.register(Caller("alice"), run_id, "readmission")
    frame = cohort(700, biased=False, seed=51)
    text = frame.astype(str)
    text.loc[text.index[:70], "los"] = "NA"  # a tenth of the stays not recorded, as the EHR's export writes it
    put(ws, tmp_path, "extract", pa.Table.from_pandas(text, preserve_index=False))
    (window,) = services.monitoring.run(Caller("ming"), "readmission:1", dataset="extract").windows
    assert (window.rows, window.judged) == (700, True)
    _, doc = services.monitoring.show(Caller("ming"), window.id)
    assert doc["features"]["los"]["missing"]["current"] == pytest.approx(0.1)
    assert doc["features"]["los"]["missing"]["flagged"]  # up from none in the training rows
    assert "age" not in window.drifted  # the same patients, read from text
