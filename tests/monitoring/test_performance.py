"""Performance on delayed labels: the join never uses a label before it was available, windows are
judged only with enough labels, a decay and a subgroup's decay are found with the validation's
intervals and raise alerts; a date-shifted label feed is refused. Both backends."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from medops.caller import Caller
from medops.errors import InvalidInput
from medops.monitoring import windows
from medops.monitoring.performance import Labeled, join_labels, judge_performance
from medops.monitoring.spec import MonitorSpec, PerformanceSpec
from medops.services import Services
from medops.serving import prediction_log
from medops.training import Tracker, stored
from medops.workspace import Workspace
from tests.factories import COHORT_FEATURES, cohort, put
from tests.monitoring.conftest import govern_monitor

OCTOBER = datetime(2026, 10, 1, tzinfo=UTC)
NOVEMBER = datetime(2026, 11, 1, tzinfo=UTC)
DECEMBER = datetime(2026, 12, 1, tzinfo=UTC)
OUTCOMES = PerformanceSpec(labels="outcomes", entity="patient_id", label="readmitted", time="discharged",
                           available="known_at", min_labels=200)  # fmt: skip


def t(day: str) -> pd.Timestamp:
    return pd.Timestamp(day, tz="UTC")


def test_the_join_never_uses_a_label_before_it_was_available() -> None:
    predictions = pd.DataFrame(
        {
            "entity": ["a", "a", "b", None, "c"],
            "at": [t("2026-10-01"), t("2026-10-20"), t("2026-10-05"), t("2026-10-05"), t("2026-10-05")],
        }  # fmt: skip
    )
    labels = pd.DataFrame(
        {
            "entity": ["a", "a", "b", "c"],
            "time": [t("2026-10-01 06:00"), t("2026-10-20 01:00"), t("2026-10-05"), t("2026-10-09")],
            "label": [1.0, 0.0, 1.0, 1.0],
            "available": [t("2026-10-31"), t("2026-11-19"), t("2026-11-30"), t("2026-10-10")],
        }
    )
    as_of = t("2026-11-20").to_pydatetime()
    found = join_labels(predictions, labels, as_of=as_of, match_within=timedelta(days=1))
    # a's two stays each meet their own label; b's was known only on Nov 30; no entity, no label;
    # c's label is 4 days from its prediction, beyond the day allowed
    assert found.tolist()[:2] == [1.0, 0.0] and np.isnan(found.tolist()[2:]).all()
    later = join_labels(predictions, labels, as_of=t("2026-12-01").to_pydatetime(), match_within=timedelta(days=1))
    assert later.tolist()[2] == 1.0  # judged again later, the window gains the label that arrived


def test_performance_is_judged_only_with_enough_labels_and_a_decay_needs_its_interval() -> None:
    rng = np.random.default_rng(3)
    p = rng.uniform(0, 1, 3_000)
    y = (rng.uniform(0, 1, 3_000) < p).astype(np.int8)  # calibrated scores: AUROC about 0.83
    reference = {"metrics": {"auroc": {"value": 0.83}, "sensitivity": {"value": 0.9}}}
    kept = Labeled(rows=3_000, with_entity=3_000, y=[y], p=[p])
    args = {"min_labels": 200, "min_completeness": 0.5, "max_drop": {"auroc": 0.05}, "resamples": 200, "level": 0.95}
    doc = judge_performance(kept, reference, 0.3, **args)
    assert doc["judged"] and doc["degraded"] == [] and doc["metrics"]["auroc"]["low"] < 0.83 < 0.9
    few = Labeled(rows=3_000, with_entity=3_000, y=[y[:1_000]], p=[p[:1_000]])
    doc = judge_performance(few, reference, 0.3, **args)
    assert not doc["judged"] and "33%" in doc["why_not_judged"]
    noise = Labeled(rows=3_000, with_entity=3_000, y=[rng.permutation(y)], p=[p])
    doc = judge_performance(noise, reference, 0.3, **args)
    assert doc["degraded"] == ["auroc"] and doc["metrics"]["auroc"]["drop"] > 0.25


def test_a_validated_value_is_an_estimate_and_the_window_carries_its_uncertainty() -> None:
    """A drop is judged with both intervals, after a Bonferroni over the window's comparisons: a
    validated AUROC that was high by chance on a small test set does not make the same model look
    degraded; the same value validated on a large test set does."""
    rng = np.random.default_rng(5)
    p = rng.uniform(0, 1, 1_500)
    y = (rng.uniform(0, 1, 1_500) < p).astype(np.int8)  # AUROC about 0.83
    window = Labeled(rows=1_500, with_entity=1_500, y=[y], p=[p])
    args = {"min_labels": 200, "min_completeness": 0.5, "max_drop": {"auroc": 0.05}, "resamples": 300, "level": 0.95}
    lucky = {"metrics": {"auroc": {"value": 0.92, "low": 0.84, "high": 0.99}}, "level": 0.95}
    doc = judge_performance(window, lucky, 0.3, **args)
    entry = doc["metrics"]["auroc"]
    assert entry["high"] < 0.92 - 0.05  # the window's interval alone lies beyond the tolerated drop
    assert doc["degraded"] == [] and entry["drop_low"] < 0.05
    precise = {"metrics": {"auroc": {"value": 0.92, "low": 0.915, "high": 0.925}}, "level": 0.95}
    assert judge_performance(window, precise, 0.3, **args)["degraded"] == ["auroc"]
    assert doc["comparisons"] == 5 and doc["z"] > 2.5  # five metrics, overall only: one-sided 0.5 % each


def test_calibration_in_the_large_sees_fewer_events_than_predicted() -> None:
    rng = np.random.default_rng(6)
    p = rng.uniform(0.05, 0.4, 3_000)
    odds = p / (1 - p) * 0.55  # the same ranking, events at about half the predicted odds
    y = (rng.uniform(0, 1, 3_000) < odds / (1 + odds)).astype(np.int8)
    reference = {"metrics": {"calibration_intercept": {"value": 0.0}, "auroc": {"value": 0.6}}}
    args = {"min_labels": 200, "min_completeness": 0.5, "resamples": 300, "level": 0.95,
            "max_drop": {"auroc": 0.05, "calibration_intercept": 0.2}}  # fmt: skip
    doc = judge_performance(Labeled(rows=3_000, with_entity=3_000, y=[y], p=[p]), reference, 0.3, **args)
    assert doc["degraded"] == ["calibration_intercept"]
    assert doc["metrics"]["calibration_intercept"]["value"] == pytest.approx(np.log(0.55), abs=0.15)


def log_month(
    ws: Workspace, run: str, version: Any, frame: pd.DataFrame, month: datetime, *, shuffle: bool
) -> pd.DataFrame:
    """``frame``'s patients discharged through ``month``, scored and logged at discharge by patient id; their
    outcomes (shuffled: a model that no longer ranks) known two days later."""
    tracker = Tracker(ws)
    scores = stored.model(tracker, tracker.get(run)).predict_proba(frame[COHORT_FEATURES])
    step = timedelta(days=27) / len(frame)
    discharged = [month + timedelta(hours=6) + i * step for i in range(len(frame))]
    records = [
        {"id": str(uuid.uuid4()), "at": (at + timedelta(minutes=5)).isoformat(), "model": version.model,
         "version": version.version, "bundle_sha256": version.artifact_sha256, "variant": "champion",
         "request_id": uuid.uuid4().hex, "caller": "ehr", "entity": f"patient_id={pid}",
         "inputs": json.dumps({k: float(row[k]) for k in COHORT_FEATURES}),
         "output": json.dumps({"probability": float(p), "decision": int(p >= 0.5), "threshold": 0.5}),
         "explanation": None, "latency_ms": 1.0}
        for (pid, at, (_, row), p) in zip(frame["patient_id"], discharged, frame.iterrows(), scores, strict=True)
    ]  # fmt: skip
    prediction_log.store(ws)(records)
    outcome = frame["readmitted"].to_numpy()
    return pd.DataFrame(
        {
            "patient_id": frame["patient_id"],
            "discharged": pd.to_datetime(discharged, utc=True),
            "readmitted": np.random.default_rng(0).permutation(outcome) if shuffle else outcome,
            "known_at": pd.to_datetime(discharged, utc=True) + pd.Timedelta(days=2),
        }
    )


@pytest.fixture
def labeled(pseudonym_key: None, registry: tuple[Workspace, str], tmp_path: Path) -> tuple[Workspace, Any]:
    ws, run = registry
    version = Services(ws).registry.register(Caller("alice"), run, "readmission")
    october = cohort(900, biased=False, seed=31)
    november = cohort(900, biased=False, seed=32)
    november["patient_id"] = [f"n{i:05d}" for i in range(len(november))]
    outcomes = pd.concat([log_month(ws, run, version, october, OCTOBER, shuffle=False),
                          log_month(ws, run, version, november, NOVEMBER, shuffle=True)])  # fmt: skip
    put(ws, tmp_path, "outcomes", pa.Table.from_pandas(outcomes, preserve_index=False))
    return ws, version


def test_a_month_that_no_longer_ranks_raises_the_performance_alert(
    labeled: tuple[Workspace, Any], tmp_path: Path
) -> None:
    ws, version = labeled
    govern_monitor(ws, MonitorSpec(performance=OUTCOMES))  # the reviewed project file names the outcome feed
    result = Services(ws).monitoring.run(Caller("ming"), "readmission", since=OCTOBER, until=DECEMBER)
    october, november = (windows.document(ws, w) for w in result.windows)
    assert october["performance"]["judged"] and october["performance"]["degraded"] == []
    assert october["performance"]["label_completeness"] == 1.0
    assert november["performance"]["judged"] and "auroc" in november["performance"]["degraded"]
    assert result.windows[1].metrics["performance.auroc_drop"] > 0.1
    bands = {g["group"] for g in november["performance"]["subgroups"]}
    assert bands == {"<50", "50–<75", "≥75"}  # the policy's age bands, from the logged feature; sex is not logged
    assert "performance_decay" in {a.rule for a in result.alerts}
    assert version.version == result.windows[1].version
    # the monitoring report: one page, nothing fetched, the windows, charts and the alert, no patient's data
    html = Services(ws).monitoring.report(Caller("victor"), "readmission")
    assert html.count("<svg") == 6 and "http://" not in html.replace("http://www.w3.org", "")
    assert "<script" not in html and "2026-11" in html and "performance_decay" in html and "degraded: auroc" in html
    assert not re.search(r"\b[pn]0\d{4}\b", html)  # no patient id of the log or the outcome feed
    empty = Services(ws).monitoring.report(Caller("victor"), "readmission", since=DECEMBER)
    assert "No window of this model was judged in the period." in empty
    # as of November 10, most of November's outcomes were not known yet: the window is not judged
    span = windows.Span("2026-11", NOVEMBER, DECEMBER)
    early = windows.compute(ws, "readmission", version.version, span, MonitorSpec(performance=OUTCOMES),
                            as_of=datetime(2026, 11, 10, tzinfo=UTC))  # fmt: skip
    assert not early["performance"]["judged"] and 0.1 < early["performance"]["label_completeness"] < 0.5
    assert "performance.auroc" not in early["metrics"] and early["metrics"]["performance.degraded"] == 0
    # an outcome feed whose times were date-shifted per patient can't be matched to real times: refused
    from medops.data.ingest import TablePlan, ingest
    from medops.data.sources import ParquetSource

    frame = pd.DataFrame({"patient_id": ["p1"], "discharged": [t("2026-10-02")], "readmitted": [1]})
    path = tmp_path / "shifted.parquet"
    frame.to_parquet(path)
    actions = {"patient_id": "pseudonymize", "discharged": "shift_dates", "readmitted": "keep"}
    ingest(ws, TablePlan("shifted", ParquetSource(path), actions), actor="admin")
    shifted = MonitorSpec(performance=PerformanceSpec(labels="shifted", entity="patient_id", label="readmitted",
                                                      time="discharged"))  # fmt: skip
    with pytest.raises(InvalidInput, match="date-shifted per patient"):
        windows.compute(ws, "readmission", version.version, windows.Span("2026-10", OCTOBER, NOVEMBER), shifted)


@pytest.mark.slow
def test_on_dask_a_window_is_summarized_in_slices_and_judged_the_same(
    labeled: tuple[Workspace, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``executor = dask-local``: each month cut in time slices, each summarized by a worker process that
    reads the store itself; the merged summaries and labels judge exactly as one pass in this process."""
    ws, _ = labeled
    govern_monitor(ws, MonitorSpec(performance=OUTCOMES))
    spec = MonitorSpec(performance=OUTCOMES, drift={"alpha": 0.05})  # exploring: nothing stored, same both ways
    here = Services(ws).monitoring.run(Caller("ming"), "readmission", since=OCTOBER, until=DECEMBER, spec=spec)
    monkeypatch.setenv("MEDOPS_EXECUTOR", "dask-local")
    on_dask = Workspace.open(ws.settings.home)
    try:
        assert on_dask.settings.executor == "dask-local"
        there = Services(on_dask).monitoring.run(
            Caller("ming"), "readmission", since=OCTOBER, until=DECEMBER, spec=spec
        )
    finally:
        on_dask.close()
    assert [w.label for w in there.windows] == [w.label for w in here.windows] == ["2026-10", "2026-11"]
    for a, b in zip(here.windows, there.windows, strict=True):
        assert (a.rows, a.judged, a.drifted) == (b.rows, b.judged, b.drifted)
        assert a.metrics.keys() == b.metrics.keys()
        for key, value in a.metrics.items():
            assert b.metrics[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key
    assert there.windows[1].metrics["performance.degraded"] > 0  # the shuffled month, found the same way


def test_time_slices_cover_a_span_once() -> None:
    start, end = OCTOBER, NOVEMBER + timedelta(microseconds=7)
    for parts in (1, 3, 4, 7):
        cut = windows.time_slices(start, end, parts)
        assert cut[0][0] == start and cut[-1][1] == end and len(cut) == parts
        assert all(a[1] == b[0] for a, b in zip(cut, cut[1:], strict=False))
