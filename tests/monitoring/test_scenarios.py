"""The synthetic generator's scenarios through monitoring: a year of discharges served to a model
trained on the baseline, judged month by month with the default rules, and each scenario's alert
raised in the month its change begins, after a quiet run before it.

The served rows are what the EHR holds (medops.synth.production): no contract cleans them on the
way, so a site that switches to Fahrenheit sends Fahrenheit. One backend: what is judged and
alerted is the same on both (tests/monitoring/test_windows.py and test_alerts.py run both).
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from medops.caller import Caller
from medops.monitoring.spec import MonitorSpec, PerformanceSpec
from medops.services import Services
from medops.serving import prediction_log
from medops.synth.generator import generate
from medops.synth.production import FEATURES, served_rows
from medops.training import Tracker, stored
from medops.workspace import Workspace
from tests.conftest import Templates, add_team, new_workspace
from tests.factories import LOGISTIC, PASSWORD, evaluate_run, put, train_run
from tests.monitoring.conftest import govern_monitor

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("pseudonym_key")]

# Sixteen months of care whose drift point is 2025-12-01; the twelve months from May 2025 are judged.
# The generator's first month (no readmission yet of an earlier stay) and last weeks (fewer first
# admissions) are changes of its own, so they are left out.
START, DAYS = date(2025, 4, 1), 488
DRIFT = "2025-12"
UNTIL = datetime(2026, 5, 1, tzinfo=UTC)
PATIENTS = 6000  # about 900 discharges a month
LARGER = 20_000  # about 2,500: a month's outcomes must show a change in calibration of this size


def _build(folder: Path, metadata_url: str | None) -> str:
    """The team's workspace with a logistic model trained on a baseline year (another seed)."""
    from medops.evaluation.records import record
    from medops.identity import Role

    ws = add_team(new_workspace(folder, metadata_url=metadata_url))
    try:
        ws.users.add("admin", "ming", "Ming Chen", PASSWORD, [Role.ML_ENGINEER])
        rows = served_rows(generate(PATIENTS, seed=1000, start=START, days=DAYS)).dropna(subset=["readmitted_30d"])
        frame = rows[[*FEATURES, "readmitted_30d"]].rename(columns={"readmitted_30d": "readmitted"})
        frame["readmitted"] = frame["readmitted"].astype(int)
        tracker = Tracker(ws)
        run = train_run(tracker, folder, "baseline_year", frame, LOGISTIC, FEATURES)
        policy = {"metrics": {"auroc": {"min": 0.55, "check": "ci_lower"}}, "prerequisites": ["leakage_checks"]}
        doc = evaluate_run(tracker, run, policy=policy, robustness={}, subgroups={"attributes": {"sex": {}}})
        record(ws, doc, "<html></html>", "# card", "<html></html>", actor="victor")
    finally:
        ws.close()
    return run


@pytest.fixture
def trained(tmp_path: Path, templates: Templates) -> tuple[Workspace, str]:
    run = templates.copy("scenarios", "sqlite:///", tmp_path, _build)
    ws = Workspace.open(tmp_path / "ws")
    return ws, str(run)


def _serve_year(ws: Workspace, run: str, name: str, scenario: str, seed: int, patients: int = PATIENTS) -> None:
    """Register the run as ``name``, log a year of the scenario's discharges as its served answers,
    and ingest the outcomes known by the year's end as the feed monitoring reads."""
    version = Services(ws).registry.register(Caller("alice"), run, name)
    rows = served_rows(generate(patients, seed=seed, scenario=scenario, start=START, days=DAYS))
    tracker = Tracker(ws)
    scores = stored.model(tracker, tracker.get(run)).predict_proba(rows[FEATURES])
    features = rows[FEATURES].astype(object).where(rows[FEATURES].notna(), None).to_dict("records")
    records = [
        {
            "id": str(uuid.uuid4()),
            "at": at.tz_localize(UTC).isoformat(),
            "model": name,
            "version": version.version,
            "bundle_sha256": version.artifact_sha256,
            "variant": "champion",
            "request_id": uuid.uuid4().hex,
            "caller": "ehr",
            "entity": f"encounter_id={encounter}",
            "inputs": json.dumps(row),
            "output": json.dumps({"probability": float(p), "decision": int(p >= 0.5), "threshold": 0.5}),
            "explanation": None,
            "latency_ms": 1.0,
        }
        for at, encounter, row, p in zip(rows["discharge_time"], rows["encounter_id"], features, scores, strict=True)
    ]
    prediction_log.store(ws)(records)
    known = rows.dropna(subset=["readmitted_30d"])[
        ["encounter_id", "discharge_time", "readmitted_30d", "label_available_at"]
    ]
    known = known.assign(readmitted_30d=known["readmitted_30d"].astype(int))
    put(ws, ws.settings.home, f"outcomes_{scenario}", pa.Table.from_pandas(known, preserve_index=False))
    govern_monitor(
        ws,
        MonitorSpec(
            performance=PerformanceSpec(
                labels=f"outcomes_{scenario}",
                entity="encounter_id",
                label="readmitted_30d",
                time="discharge_time",
                available="label_available_at",
            )
        ),
    )


def _alerts_by_window(ws: Workspace, name: str, until: datetime = UNTIL) -> tuple[Any, dict[str, set[str]]]:
    ran = Services(ws).monitoring.run(Caller("ming"), name, since=datetime(2025, 5, 1, tzinfo=UTC), until=until)
    labels = {w.id: w.label for w in ran.windows}
    fired: dict[str, set[str]] = {}
    for alert in ran.alerts:
        fired.setdefault(labels[alert.breaches[-1]["window"]], set()).add(alert.rule)
    return ran, fired


@pytest.mark.parametrize(
    ("scenario", "expected"),
    [
        ("aging", {"feature_drift"}),
        ("unit_change", {"unit_change"}),
        ("missingness_spike", {"data_quality"}),
    ],
)
def test_each_input_scenario_alerts_in_the_month_it_begins(
    trained: tuple[Workspace, str], scenario: str, expected: set[str]
) -> None:
    ws, run = trained
    _serve_year(ws, run, "readmission", scenario, seed=7)
    ran, fired = _alerts_by_window(ws, "readmission")
    assert [w.label for w in ran.windows if w.label < DRIFT and w.drifted] == []  # quiet before the change
    assert min(fired) == DRIFT and expected <= fired[DRIFT], fired  # nothing before; the expected alert then


def test_the_baseline_year_raises_no_alert(trained: tuple[Workspace, str]) -> None:
    ws, run = trained
    _serve_year(ws, run, "readmission", "baseline", seed=8)
    ran, fired = _alerts_by_window(ws, "readmission")
    assert len(ran.windows) == 12 and all(w.judged for w in ran.windows)
    assert fired == {} and [w.label for w in ran.windows if w.drifted] == []
    judged = [w for w in ran.windows if "performance.auroc" in w.metrics]
    assert len(judged) == 12  # every month's outcomes arrived, and performance held


def test_a_new_treatment_alerts_on_performance_in_the_month_it_begins(trained: tuple[Workspace, str]) -> None:
    """Concept drift: the inputs hold still, the outcomes they lead to change, and only the outcomes
    show it: performance (calibration-in-the-large first) from December, no drift or quality alert."""
    ws, run = trained
    _serve_year(ws, run, "readmission", "new_treatment", seed=7, patients=LARGER)
    ran, fired = _alerts_by_window(ws, "readmission")
    assert min(fired) == DRIFT and "performance_decay" in fired[DRIFT], fired
    assert set().union(*fired.values()) <= {"performance_decay", "bias_drift"}, fired
    assert [w.label for w in ran.windows if w.drifted] == []  # the same inputs throughout
    december = next(w for w in ran.windows if w.label == DRIFT)
    assert december.metrics["performance.calibration_intercept"] < -0.3  # fewer readmissions than predicted


def test_delayed_labels_hold_performance_back_until_they_arrive(
    trained: tuple[Workspace, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A window is judged on performance only once its outcomes are known: as of mid-January,
    December's 30-day readmissions are not; in the label_delay scenario the last months' outcomes
    come 60 to 150 days late, so those months stay unjudged, and missing labels raise no alert."""
    import medops.monitoring.windows as windows

    ws, run = trained
    _serve_year(ws, run, "readmission", "label_delay", seed=9)
    monkeypatch.setattr(windows, "utc_now", lambda: datetime(2026, 1, 15, tzinfo=UTC))
    early, _ = _alerts_by_window(ws, "readmission")
    judged = {w.label: "performance.auroc" in w.metrics for w in early.windows}
    assert judged["2025-11"] and not judged["2025-12"], judged  # December's outcomes are not known by Jan 15
    monkeypatch.undo()
    later, fired = _alerts_by_window(ws, "readmission", until=datetime(2026, 8, 1, tzinfo=UTC))
    completeness = {w.label: w.metrics["performance.label_completeness"] for w in later.windows}
    judged = {w.label: "performance.auroc" in w.metrics for w in later.windows}
    assert all(judged[month] for month in completeness if month <= "2026-04"), judged  # December now too
    assert not any(judged[month] for month in ("2026-05", "2026-06", "2026-07")), completeness
    assert completeness["2026-06"] < 0.1 < 0.9 < completeness["2026-03"], completeness
    assert not {"performance_decay", "bias_drift"} & set().union(*fired.values()), fired
