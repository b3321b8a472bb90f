"""The synthetic generator's scenarios through monitoring: a year of discharges served to a model
trained on the baseline, judged month by month with the default rules, and each scenario's alert
raised in the month its change begins, after a quiet run before it.

One backend: what is judged and alerted is the same on both (tests/monitoring/test_windows.py and
test_alerts.py run both).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from medops.workspace import Workspace
from tests.conftest import Templates
from tests.monitoring.scenario_year import DRIFT, LARGER, alerts_by_window, build_model, serve_year

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("pseudonym_key")]


@pytest.fixture
def trained(tmp_path: Path, templates: Templates) -> tuple[Workspace, str]:
    run = templates.copy("scenarios", "sqlite:///", tmp_path, build_model)
    ws = Workspace.open(tmp_path / "ws")
    return ws, str(run)


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
    serve_year(ws, run, "readmission", scenario, seed=7)
    ran, fired = alerts_by_window(ws, "readmission")
    assert [w.label for w in ran.windows if w.label < DRIFT and w.drifted] == []  # quiet before the change
    assert min(fired) == DRIFT and expected <= fired[DRIFT], fired  # nothing before; the expected alert then


def test_the_baseline_year_raises_no_alert(trained: tuple[Workspace, str]) -> None:
    ws, run = trained
    serve_year(ws, run, "readmission", "baseline", seed=8)
    ran, fired = alerts_by_window(ws, "readmission")
    assert len(ran.windows) == 12 and all(w.judged for w in ran.windows)
    assert fired == {} and [w.label for w in ran.windows if w.drifted] == []
    judged = [w for w in ran.windows if "performance.auroc" in w.metrics]
    assert len(judged) == 12  # every month's outcomes arrived, and performance held


def test_a_new_treatment_alerts_on_performance_in_the_month_it_begins(trained: tuple[Workspace, str]) -> None:
    """Concept drift: the inputs hold still, the outcomes they lead to change, and only the outcomes
    show it: performance (calibration-in-the-large first) from December, no drift or quality alert."""
    ws, run = trained
    serve_year(ws, run, "readmission", "new_treatment", seed=7, patients=LARGER)
    ran, fired = alerts_by_window(ws, "readmission")
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
    serve_year(ws, run, "readmission", "label_delay", seed=9)
    monkeypatch.setattr(windows, "utc_now", lambda: datetime(2026, 1, 15, tzinfo=UTC))
    early, _ = alerts_by_window(ws, "readmission")
    judged = {w.label: "performance.auroc" in w.metrics for w in early.windows}
    assert judged["2025-11"] and not judged["2025-12"], judged  # December's outcomes are not known by Jan 15
    monkeypatch.undo()
    later, fired = alerts_by_window(ws, "readmission", until=datetime(2026, 8, 1, tzinfo=UTC))
    completeness = {w.label: w.metrics["performance.label_completeness"] for w in later.windows}
    judged = {w.label: "performance.auroc" in w.metrics for w in later.windows}
    assert all(judged[month] for month in completeness if month <= "2026-04"), judged  # December now too
    assert not any(judged[month] for month in ("2026-05", "2026-06", "2026-07")), completeness
    assert completeness["2026-06"] < 0.1 < 0.9 < completeness["2026-03"], completeness
    assert not {"performance_decay", "bias_drift"} & set().union(*fired.values()), fired
