"""A year of the synthetic generator's discharges served to a model trained on a baseline period,
shared by the scenario tests and the false-alarm measurement (benchmarks/monitoring_false_alarms.py).

The served rows are what the EHR holds (medops.synth.production): no contract cleans them on the
way, so a site that switches to Fahrenheit sends Fahrenheit. Predictions are written to the log with
the times they would have had, scored by the trained model itself.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from medops.caller import Caller
from medops.monitoring.spec import MonitorSpec, PerformanceSpec
from medops.services import Services
from medops.serving import prediction_log
from medops.synth.generator import generate
from medops.synth.production import FEATURES, served_rows
from medops.training import Tracker, stored
from medops.workspace import Workspace
from tests.conftest import add_team, new_workspace
from tests.factories import LOGISTIC, PASSWORD, evaluate_run, put, train_run
from tests.monitoring.conftest import govern_monitor

# Sixteen months of care whose drift point is 2025-12-01; the twelve months from May 2025 are judged.
# The generator's first month (no readmission yet of an earlier stay) and last weeks (fewer first
# admissions) are changes of its own, so they are left out.
START, DAYS = date(2025, 4, 1), 488
DRIFT = "2025-12"
UNTIL = datetime(2026, 5, 1, tzinfo=UTC)
PATIENTS = 6000  # about 800 discharges a month
LARGER = 20_000  # about 2,500: a month's outcomes must show a change in calibration of this size


def build_model(folder: Path, metadata_url: str | None) -> str:
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


def serve_year(ws: Workspace, run: str, name: str, scenario: str, seed: int, patients: int = PATIENTS) -> None:
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


def alerts_by_window(ws: Workspace, name: str, until: datetime = UNTIL) -> tuple[Any, dict[str, set[str]]]:
    ran = Services(ws).monitoring.run(Caller("ming"), name, since=datetime(2025, 5, 1, tzinfo=UTC), until=until)
    labels = {w.id: w.label for w in ran.windows}
    fired: dict[str, set[str]] = {}
    for alert in ran.alerts:
        fired.setdefault(labels[alert.breaches[-1]["window"]], set()).add(alert.rule)
    return ran, fired
