"""The closed loop on a drift scenario: an alert retrains on the latest extract; a failing challenger never
reaches production; a passing one waits for both signatures; the chain is one lineage (SQLite, PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from medops import demo
from medops.caller import Caller
from medops.errors import InvalidTransition
from medops.evaluation.records import get as get_evaluation
from medops.identity import Role
from medops.registry import approvals, versions
from medops.services import Services
from medops.services.projects import load_project
from medops.services.projects.templates import scaffold
from medops.store.lineage import walk
from medops.synth import write
from medops.synth.extracts import on_record
from medops.workspace import Workspace, init_workspace
from tests.factories import PASSWORD

pytestmark = pytest.mark.slow
NAME = "readmission_30d"
WORLD = demo.DEMO_PATIENTS  # the demo's hospital; its first extract holds about 2,460 of its patients


@pytest.fixture
def loop(tmp_path: Path, metadata_url: str, pseudonym_key: None) -> tuple[Workspace, Path, Any]:
    """A workspace governed by the readmission template on the first extract of a hospital whose north site
    draws fewer labs from June 2026; v1 trained by the pipeline, signed and in production."""
    folder = tmp_path / "project"
    scaffold(folder, "readmission", data=False)
    path = folder / "medops.yaml"
    path.write_text(path.read_text().replace("resamples: 2000", "resamples: 300"))
    world = demo.world(WORLD)
    write(on_record(world, demo.FIRST_EXTRACT), folder / "raw", "csv")
    ws = init_workspace(tmp_path / "ws", admin_username="admin", admin_full_name="Ada Admin", admin_password=PASSWORD,
                        metadata_url=metadata_url, project_file=str(path))  # fmt: skip
    for user, role in (("ming", Role.ML_ENGINEER), ("victor", Role.VALIDATOR), ("carol", Role.CLINICAL_REVIEWER)):
        ws.users.add("admin", user, user.title(), PASSWORD, [role])
    first = Services(ws).pipelines.run(Caller("ming"), load_project(path))
    assert first.state == "finished", first.error
    _sign(ws, 1)
    Services(ws).registry.promote(Caller("ming"), f"{NAME}:1", "production", reason="CAB approval")
    return ws, folder, world


def _sign(ws: Workspace, version: int) -> None:
    for user, role in (("carol", "clinical_reviewer"), ("victor", "validator")):
        approvals.approve(ws, (NAME, version), user, PASSWORD, role)


def _production(ws: Workspace) -> list[int]:
    return [v.version for v in versions.versions(ws, NAME) if v.stage == "production"]


def test_an_alert_retrains_and_only_a_signed_passing_challenger_reaches_production(
    loop: tuple[Workspace, Path, Any],
) -> None:
    ws, folder, world = loop
    services, ming = Services(ws), Caller("ming")
    first = datetime(2026, 3, 1, tzinfo=UTC)
    v1 = versions.get(ws, NAME, 1)
    _, logged, until = demo.simulate_production(ws, NAME, v1.run_id, first, 6, 250)
    assert logged > 1000

    # An extract lands whose outcome feed broke (19 stays in 20 without their outcome): the alert retrains, the
    # challenger, trained and tested on the few left, fails its gates; nothing is registered and production
    # stays where it was.
    broken = on_record(world, demo.LATEST_EXTRACT)
    labels = broken.outcomes["readmission_30d"]
    labels.loc[labels.index % 20 != 0, "readmitted_30d"] = None
    demo.land_extract(world, demo.LATEST_EXTRACT, folder / "raw")
    write_labels = folder / "raw" / "outcome_readmission_30d.csv"
    labels.to_csv(write_labels, index=False, date_format="%Y-%m-%dT%H:%M:%SZ")
    ran = services.monitoring.run(ming, NAME, since=first, until=until)
    assert [a.rule for a in ran.alerts] == ["data_quality"]
    (retrain,) = ran.retrained
    record = services.pipelines.show(ming, retrain.run_id)
    assert record.trigger == f"alert:{ran.alerts[0].id}" and record.state == "stopped"
    assert "did not pass" in record.steps[-1].note and _production(ws) == [1]
    assert [v.version for v in versions.versions(ws, NAME)] == [1]
    assert any(e.dst == f"pipeline:{record.id}" for e in walk(ws.db, f"alert:{ran.alerts[0].id}", "down", depth=1))

    # The real extract lands; `medops retrain` runs the pipeline again: the challenger passes, is compared with
    # production on rows production never trained on, and waits for both signatures.
    demo.land_extract(world, demo.LATEST_EXTRACT, folder / "raw")
    again = services.pipelines.run(ming, load_project(folder / "medops.yaml"), trigger="retrain")
    assert again.state == "finished", again.steps[-1].note
    evaluation = get_evaluation(ws, again.steps[-2].outputs["evaluation"])  # type: ignore[index]
    assert evaluation.passed and evaluation.champion_run_id == v1.run_id
    gate = next(g for g in evaluation.gates if g["kind"] == "non_inferiority")
    assert "it was trained on left out" in gate["why"]
    state = services.registry.approvals(ming, f"{NAME}:2")
    assert [sorted(r.roles) for r in state.requests] == [["clinical_reviewer", "validator"]]
    with pytest.raises(InvalidTransition, match="no clinical_reviewer approval"):
        services.registry.promote(ming, f"{NAME}:2", "production", reason="before the signatures")
    assert _production(ws) == [1]
    _sign(ws, 2)
    services.registry.promote(ming, f"{NAME}:2", "production", reason="the retrained challenger")
    assert _production(ws) == [2]
