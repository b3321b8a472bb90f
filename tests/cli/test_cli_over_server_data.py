"""`medops data`, `lineage`, `features show` and `pipelines` over `medops server` (MEDOPS_SERVER_URL):
each read prints what it prints against the workspace's database, tables and --json alike, with the
same token; `data use` made over the server is what the workspace then means by the name; a refused
caller is refused with the same exit code both ways; ingest and the project-file reads stay local."""

from __future__ import annotations

import json

import pytest

from tests.cli.conftest import Both

pytestmark = pytest.mark.slow

FLAGS = pytest.mark.parametrize("as_json", [False, True], ids=["table", "json"])


def _versions(both: Both, name: str) -> list[dict[str, object]]:
    """A dataset's versions, newest first, as the workspace lists them."""
    code, out, err = both.local("alice", "data", "list", name, "--json")
    assert code == 0, err
    return [v for v in json.loads(out) if v["name"] == name]


@FLAGS
def test_datasets_read_the_same_over_the_server(both: Both, as_json: bool) -> None:
    flag = ["--json"] if as_json else []
    listed = both.same("alice", "data", "list", *flag)
    assert "encounters" in listed and "observations.quarantine" in listed
    both.same("victor", "data", "list", "observations", "--limit", "1", *flag)
    newest, older = _versions(both, "observations")[:2]
    both.same("alice", "data", "show", "observations", *flag)  # a contract report and its quarantined rows
    both.same("carol", "data", "show", f"observations@{str(older['version'])[:8]}", *flag)
    both.same("alice", "data", "show", "notes", *flag)  # text redactions
    both.same("ming", "data", "diff", f"observations@{str(older['version'])[:8]}", "observations", *flag)
    both.same("alice", "data", "diff", "encounters", "encounters", *flag)  # the same version: identical


@FLAGS
def test_lineage_reads_the_same_over_the_server(both: Both, as_json: bool) -> None:
    flag = ["--json"] if as_json else []
    tree = both.same("alice", "lineage", "show", "readmission_30d:1", *flag)
    assert "readmission_training" in tree
    both.same("victor", "lineage", "show", "readmission_30d:1", "--no-down", *flag)
    both.same("alice", "lineage", "show", "encounters", "--no-up", *flag)
    both.same("carol", "lineage", "show", "notes", *flag)


@FLAGS
def test_a_feature_view_reads_the_same_over_the_server(both: Both, as_json: bool) -> None:
    flag = ["--json"] if as_json else []
    shown = both.same("alice", "features", "show", "admissions", *flag)
    assert "admissions" in shown
    both.same("ming", "features", "show", "labs", *flag)


@FLAGS
def test_pipeline_runs_read_the_same_over_the_server(both: Both, as_json: bool) -> None:
    flag = ["--json"] if as_json else []
    listed = both.same("ming", "pipelines", "list", *flag)
    assert "readmission" in listed
    both.same("victor", "pipelines", "list", "--project", "readmission_30d", "--limit", "1", *flag)
    both.same("ming", "pipelines", "show", *flag)  # the newest run
    run = json.loads(both.same("ming", "pipelines", "list", "--json"))[-1]["id"]
    both.same("carol", "pipelines", "show", run[:12], *flag)


def test_a_dataset_version_made_current_over_the_server_is_current_in_the_workspace(both: Both) -> None:
    newest, older = _versions(both, "encounters")[:2]
    assert newest["current"] and not older["current"]
    ref = f"encounters@{str(older['version'])[:12]}"
    code, out, err = both.remote("alice", "data", "use", ref, "-r", "the newest extract was truncated", "--json")
    assert code == 0, err
    assert json.loads(out)["version"] == older["version"]
    assert [v["current"] for v in _versions(both, "encounters")[:2]] == [False, True]
    shown = json.loads(both.local("alice", "data", "show", "encounters", "--json")[1])
    assert shown["version"] == older["version"]
    code, out, err = both.remote("ming", "data", "use", f"encounters@{str(newest['version'])[:12]}")
    assert code == 0, err
    assert f"encounters now means encounters@{str(newest['version'])[:12]}" in out
    assert _versions(both, "encounters")[0]["current"]


def test_a_caller_without_the_role_is_refused_the_same_both_ways(both: Both) -> None:
    older = _versions(both, "encounters")[1]
    ref = f"encounters@{str(older['version'])[:12]}"
    for user, args in (
        ("pat", ["data", "use", ref]),  # a predictor changes no dataset
        ("victor", ["data", "use", ref]),  # nor does a validator
        ("pat", ["pipelines", "list"]),  # a predictor reads nothing
        ("pat", ["pipelines", "show"]),
    ):
        here, there = both.local(user, *args), both.remote(user, *args)
        assert here[0] == there[0] != 0, (user, args, here, there)
        assert "may not" in here[2] and "may not" in there[2]
    assert _versions(both, "encounters")[0]["current"]  # nothing changed


def test_pat_reads_no_dataset_lineage_or_feature_view_over_the_server(both: Both) -> None:
    for args in (["data", "list"], ["data", "show", "encounters"], ["lineage", "show", "encounters"]):
        code, out, err = both.remote("pat", *args)
        assert code != 0 and out == "" and "may not" in err, (args, err)
    code, _, err = both.remote("pat", "features", "show", "labs")
    assert code != 0 and "may not" in err


def test_ingest_and_the_project_file_reads_are_refused_while_a_server_is_set(both: Both) -> None:
    project = str(both.platform.workspace.parent / "project" / "medops.yaml")
    for args in (["data", "ingest", "--all"], ["features", "list"], ["features", "check"]):
        code, out, err = both.remote("alice", *args, "--project", project)
        assert code != 0 and out == "", args
        assert "has no platform-server form" in err, (args, err)
    code, _, err = both.remote("alice", "data", "ingest", "--all")  # no project file here: still the server's refusal
    assert code != 0 and "has no platform-server form" in err, err
