"""The CLI as a client of `medops server` (MEDOPS_SERVER_URL): each command prints what it prints
against the workspace's database, byte for byte, tables and --json alike, with the same token; the
changes it makes over the server land in the workspace; a command with no server form is refused."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tests.cli.conftest import Both

pytestmark = pytest.mark.slow


def _production(both: Both) -> dict[str, str]:
    doc = json.loads(both.local("alice", "models", "show", "readmission_30d:1", "--json")[1])
    return {"run": doc["run"], "evaluation": doc["evaluation"]}


@pytest.mark.parametrize("as_json", [False, True], ids=["table", "json"])
def test_runs_read_the_same_over_the_server(both: Both, as_json: bool) -> None:
    flag = ["--json"] if as_json else []
    run = _production(both)["run"]
    listed = both.same("alice", "runs", "list", *flag)
    assert run[:12] in listed
    both.same("victor", "runs", "list", "--trials", "--limit", "3", *flag)
    both.same("alice", "runs", "list", "--metric", "test_auroc>0.5", "--tag", "model=lgbm", *flag)
    both.same("alice", "runs", "show", run[:8], *flag)
    others = json.loads(both.same("alice", "runs", "list", "--json"))
    both.same("ming", "runs", "compare", run, others[-1]["id"], *flag)


def test_a_command_with_no_server_form_is_refused_while_a_server_is_set(both: Both) -> None:
    code, out, err = both.remote("alice", "runs", "reproduce", "abcdef")
    assert code != 0 and out == ""
    assert "has no platform-server form" in err and "MEDOPS_SERVER_URL" in err


def test_a_run_artifact_is_fetched_checked_the_same_over_the_server(both: Both, tmp_path: Path) -> None:
    run = _production(both)["run"]
    here, there = tmp_path / "here.skops", tmp_path / "there.skops"
    local = both.local("alice", "runs", "artifact", run, "model.skops", "--out", str(here), "--json")
    remote = both.remote("alice", "runs", "artifact", run, "model.skops", "--out", str(there), "--json")
    assert local[0] == remote[0] == 0, (local[2], remote[2])
    assert here.read_bytes() == there.read_bytes()
    doc = json.loads(remote[1])
    assert doc["sha256"] == hashlib.sha256(there.read_bytes()).hexdigest() and doc["bytes"] == there.stat().st_size
    code, _, err = both.remote("alice", "runs", "artifact", run, "model.skops", "--out", str(there))
    assert code != 0 and "exists" in err and there.read_bytes() == here.read_bytes()  # nothing replaced unasked
    missing = both.remote("alice", "runs", "artifact", run, "nothing.bin", "--out", str(tmp_path / "x"))
    assert missing[0] == both.local("alice", "runs", "artifact", run, "nothing.bin", "--out", str(tmp_path / "x"))[0]
    assert "logged no artifact 'nothing.bin'" in missing[2] and not (tmp_path / "x").exists()
    refused = both.remote("pat", "runs", "artifact", run, "model.skops", "--out", str(tmp_path / "y"))
    assert refused[0] != 0 and not (tmp_path / "y").exists()


def test_the_client_pages_as_the_server_does_and_refuses_what_it_would_not_send(both: Both) -> None:
    from medops import client
    from medops.cli import remote
    from medops.server.api import pages

    assert (client.PAGE, remote.DEEPEST) == (pages.MAX_PAGE, pages.MAX_OFFSET)
    code, _, err = both.remote("alice", "runs", "show", " ")
    assert code != 0 and "an empty name or id" in err
    code, _, err = both.remote("victor", "predictions", "list", "--limit", "10501")
    assert code != 0 and "deeper than a platform server pages" in err
    assert both.remote("alice", "runs", "list", "--limit", "10000")[0] == 0


@pytest.mark.parametrize("as_json", [False, True], ids=["table", "json"])
def test_the_workspace_project_file_reads_the_same_over_the_server(both: Both, as_json: bool) -> None:
    out = both.same("victor", "project", "show", *(["--json"] if as_json else []))
    if as_json:
        doc = json.loads(out)
        assert doc["governs_production"] is True and len(doc["sha256"]) == 64
        assert doc["sources"] and all(s["exists"] for s in doc["sources"])
    else:
        assert "governs production in this workspace" in out
    assert both.remote("pat", "project", "show")[0] != 0  # a predictor reads no records
