"""`medops init --template`, `project check`, `data ingest|list|show|diff`, `lineage show`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.factories import run


def test_template_check_ingest_list_show_diff_lineage(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    code, out, err = run(["project", "check"], capsys)
    assert code == 0 and "project file is valid" in out and "readmission_30d" in out, err
    code, out, err = run(["data", "ingest", "--all", "--reason", "first load"], capsys)
    assert code == 0, err
    assert "observations@" in out and "new version" in out
    code, out, _ = run(["data", "ingest", "encounters", "--json"], capsys)
    (doc,) = json.loads(out)
    assert code == 0 and doc["new"] is False and doc["dataset"].startswith("encounters@")
    code, out, _ = run(["data", "list", "--json"], capsys)
    names = {d["name"] for d in json.loads(out)}
    assert {"patients", "encounters", "observations", "notes", "readmission_labels"} <= names
    code, out, _ = run(["data", "show", "patients"], capsys)
    assert code == 0 and "de-identification" in out and "zip3" in out and "k-anonymity" in out
    code, out, _ = run(["data", "show", "patients", "--json"], capsys)
    shown = json.loads(out)
    assert shown["deid"]["k_anonymity"] >= 1 and shown["contract"]["passed"] is True
    code, out, _ = run(["data", "diff", "encounters", "patients"], capsys)
    assert code == 0 and "removed" in out and "added" in out
    code, out, _ = run(["lineage", "show", "notes"], capsys)
    assert code == 0 and "redaction_names" in out and "ingest" in out
    code, out, _ = run(["lineage", "show", "observations", "--json"], capsys)
    up = json.loads(out)["upstream"]
    assert [e["relation"] for e in up] == ["ingest"]
    code, out, _ = run(["audit", "log", "--action", "dataset.ingest", "--json"], capsys)
    events = json.loads(out)
    assert (
        len(events)
        == len(names & {"patients", "encounters", "observations", "medications", "notes", "readmission_labels"}) + 1
    )
    assert any(e["reason"] == "first load" for e in events)


def test_errors_are_one_line(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    code, _, err = run(["data", "ingest"], capsys)
    assert code != 0 and "name the sources to ingest, or give --all" in err
    code, _, err = run(["data", "ingest", "labs"], capsys)
    assert code != 0 and "no source 'labs'" in err and "Traceback" not in err
    code, _, err = run(["data", "show", "nothing"], capsys)
    assert code != 0 and "no dataset 'nothing'" in err
    code, _, err = run(["lineage", "show", "zzz"], capsys)
    assert code != 0 and "nothing in the lineage graph" in err
    (project / "medops.yaml").write_text("name: x\nsauces: {}\n", encoding="utf-8")
    code, _, err = run(["project", "check"], capsys)
    assert code == 2 and "line 2: sauces: unknown field" in err


def test_the_cli_default_chunk_equals_the_sources_default() -> None:
    from medops.cli.data import DEFAULT_CHUNK_ROWS
    from medops.data.sources import DEFAULT_CHUNK_ROWS as SOURCES_DEFAULT

    assert DEFAULT_CHUNK_ROWS == SOURCES_DEFAULT
