"""Shared by the monitoring tests: a registered version with two months of logged answers."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pytest

from medops.caller import Caller
from medops.identity import Role
from medops.services import Services
from medops.serving import prediction_log
from medops.training import Tracker, stored
from medops.workspace import Workspace
from tests.factories import COHORT_FEATURES, PASSWORD, cohort

OCTOBER = datetime(2026, 10, 1, tzinfo=UTC)
NOVEMBER = datetime(2026, 11, 1, tzinfo=UTC)


def log_rows(ws: Workspace, run: str, version: Any, frame: pd.DataFrame, month: datetime) -> None:
    """``frame`` scored by the run's model and written to the log as served answers within ``month``."""
    tracker = Tracker(ws)
    scores = stored.model(tracker, tracker.get(run)).predict_proba(frame[COHORT_FEATURES])
    step = timedelta(days=28) / len(frame)
    records = [
        {
            "id": str(uuid.uuid4()),
            "at": (month + i * step).isoformat(),
            "model": version.model,
            "version": version.version,
            "bundle_sha256": version.artifact_sha256,
            "variant": "champion",
            "request_id": uuid.uuid4().hex,
            "caller": "ehr",
            "entity": None,
            "inputs": json.dumps({k: float(row[k]) for k in COHORT_FEATURES}),
            "output": json.dumps({"probability": float(p), "decision": int(p >= 0.5), "threshold": 0.5}),
            "explanation": None,
            "latency_ms": 1.0,
        }
        for i, ((_, row), p) in enumerate(zip(frame.iterrows(), scores, strict=True))
    ]
    prediction_log.store(ws)(records)


@pytest.fixture
def monitored(pseudonym_key: None, registry: tuple[Workspace, str]) -> tuple[Workspace, Any]:
    """readmission:1 (registered, so profiled) with 900 answers logged in October 2026 like its training
    rows, and 900 in November from patients 14 years older; audrey is an auditor, pete a predictor."""
    ws, run = registry
    ws.users.add("admin", "audrey", "Audrey Lind", PASSWORD, [Role.AUDITOR])
    ws.users.add("admin", "pete", "Pete Ehr", PASSWORD, [Role.PREDICTOR])
    version = Services(ws).registry.register(Caller("alice"), run, "readmission")
    log_rows(ws, run, version, cohort(900, biased=False, seed=21), OCTOBER)
    older = cohort(900, biased=False, seed=22)
    older["age"] = older["age"] + 14  # a population that aged: more than a standard deviation of age
    log_rows(ws, run, version, older, datetime(2026, 11, 1, tzinfo=UTC))
    return ws, version


def govern_monitor(ws: Workspace, spec: Any) -> None:
    """Make ``spec`` the workspace's governing monitor section (its reviewed project file's), as a team would."""
    import yaml

    path = ws.settings.home / "medops.yaml"
    doc = yaml.safe_load(path.read_text()) if path.exists() else {}
    doc["monitor"] = spec.model_dump(mode="json")
    path.write_text(yaml.safe_dump(doc))
