"""Listing with filters, and exports an auditor can verify without the database."""

from __future__ import annotations

import csv
from datetime import timedelta
from pathlib import Path

import pytest

from medops.audit import AuditFilter, NewEvent, export, list_events
from medops.audit.query import read_export
from medops.audit.verify import ALTERED, verify_rows
from medops.clock import utc_now
from medops.errors import InvalidInput
from medops.workspace import Workspace


@pytest.fixture
def trail(workspace: Workspace) -> Workspace:
    workspace.trail.record_many(
        [
            NewEvent("alice", "model.train", "run", "r1", after={"auc": 0.81, "note": "première"}),
            NewEvent(
                "bob",
                "model.promote",
                "model",
                "m1",
                before={"stage": "staging"},
                after={"stage": "production"},
                reason="signed off",
            ),
            NewEvent("alice", "model.register", "model", "m1"),
        ]
    )
    return workspace


def test_filters(trail: Workspace) -> None:
    def actions(**kw: object) -> list[str]:
        return [e.action for e in list_events(trail.db, AuditFilter(**kw), newest_first=False)]  # type: ignore[arg-type]

    assert actions(actor="alice") == ["model.train", "model.register"]
    assert actions(entity_type="model", entity_id="m1") == ["model.promote", "model.register"]
    assert actions(action="model.*") == ["model.train", "model.promote", "model.register"]
    assert actions(since=utc_now() + timedelta(minutes=1)) == []
    assert len(actions(until=utc_now() + timedelta(minutes=1))) == 5
    assert len(list_events(trail.db, AuditFilter(), limit=2)) == 2
    assert AuditFilter.parse_entity("user:alice") == ("user", "alice")
    with pytest.raises(InvalidInput):
        AuditFilter.parse_entity(":x")


def test_floats_are_kept_exactly(trail: Workspace) -> None:
    event = list_events(trail.db, AuditFilter(action="model.train"))[0]
    assert event.after == {"auc": "0.81", "note": "première"}


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_export_verifies_offline_and_shows_edits(trail: Workspace, tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"trail.{fmt}"
    with open(path, "w", encoding="utf-8", newline="") as out:
        assert export(trail.db, out, fmt) == 5
    result = verify_rows(read_export(path))
    assert result.ok and result.checked == 5
    path.write_text(path.read_text(encoding="utf-8").replace("signed off", "signed off obviously"), encoding="utf-8")
    broken = verify_rows(read_export(path))
    assert broken.problem is not None and (broken.problem.seq, broken.problem.kind) == (4, ALTERED)


FORMULAS = ["=cmd|' /C calc'!A0", "@SUM(1+1)*cmd|' /C calc'!A0", "+1+1", "-2+3", "\t=1+1", "\r=1+1", "'=1+1"]


def test_a_csv_export_runs_no_formula_and_still_verifies(workspace: Workspace, tmp_path: Path) -> None:
    """`=cmd`, `@SUM`, `+` and `-` cells were written raw: opening the export in a spreadsheet ran them."""
    workspace.trail.record_many(
        [NewEvent("alice", "model.note", "model", cell, after=-5, reason=cell) for cell in FORMULAS]
    )
    path = tmp_path / "trail.csv"
    with open(path, "w", encoding="utf-8", newline="") as out:
        export(workspace.db, out, "csv")
    with open(path, encoding="utf-8", newline="") as handle:
        cells = [cell for row in csv.reader(handle) for cell in row]
    assert not [c for c in cells if c.startswith(("=", "+", "-", "@", "\t", "\r"))]
    assert "'=cmd|' /C calc'!A0" in cells and "'-5" in cells
    result = verify_rows(read_export(path))  # the auditor's offline check undoes the quoting exactly
    assert result.ok and result.checked == len(list_events(workspace.db, AuditFilter(), limit=None))
    edited = path.read_text(encoding="utf-8").replace("'@SUM(1+1)", "'@SUM(9+9)")
    path.write_text(edited, encoding="utf-8")
    broken = verify_rows(read_export(path))
    assert broken.problem is not None and broken.problem.kind == ALTERED


def test_not_an_export(trail: Workspace, tmp_path: Path) -> None:
    bad = tmp_path / "x.jsonl"
    bad.write_text('{"hello": 1}\n')
    with pytest.raises(InvalidInput, match="not a medops audit export"):
        read_export(bad)
    csv_path = tmp_path / "t.csv"
    with open(csv_path, "w", encoding="utf-8", newline="") as out:
        export(trail.db, out, "csv")
    csv_path.write_text(csv_path.read_text().replace("signed off", "signed off, obviously"))
    with pytest.raises(InvalidInput, match="line 5 has 13 fields, expected 12"):
        read_export(csv_path)


def test_an_entity_family_is_the_id_and_its_versions_read_in_the_database(workspace: Workspace) -> None:
    """`features show` reads a view's whole history: no cut-off, no neighbour with a longer name."""
    events = [NewEvent("alice", "feature_view.apply", "feature_view", f"labs@{i}") for i in range(1200)]
    events += [
        NewEvent("alice", "feature_view.retire", "feature_view", "labs"),
        NewEvent("alice", "feature_view.apply", "feature_view", "labs_extra@1"),
        NewEvent("alice", "feature_view.apply", "feature_view", "lab%@1"),
    ]
    workspace.trail.record_many(events)
    family = list_events(workspace.db, AuditFilter(entity_type="feature_view", entity_family="labs"), limit=None)
    assert len(family) == 1201 and {e.entity_id for e in family} >= {"labs", "labs@0", "labs@1199"}
    odd = list_events(workspace.db, AuditFilter(entity_family="lab%"), limit=None)
    assert [e.entity_id for e in odd] == ["lab%@1"]  # LIKE wildcards in a name are matched literally
