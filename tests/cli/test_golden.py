"""The JSON of read commands on the demo workspace keeps its content (tests/golden/).

Volatile parts (ids, digests, timestamps, folders, durations) are normalized by
tests/goldens.py. A shape changed on purpose: `pytest tests/cli/test_golden.py
--update-goldens`, then review the diff of tests/golden/.
"""

from __future__ import annotations

import json

import pytest

from medops.workspace import Workspace
from tests.factories import DemoRun, run
from tests.goldens import check, normalize

MODEL = "readmission_30d:1"


def _json(args: list[str], capsys: pytest.CaptureFixture[str]) -> object:
    code, out, err = run([*args, "--json"], capsys)
    assert code == 0, err
    return json.loads(out)


def _version(capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    doc = _json(["models", "show", MODEL], capsys)
    assert isinstance(doc, dict)
    return doc


NEED_A_ROLE = {"user_list", "audit_log"}  # reads a caller without a login is refused
COMMANDS = {
    "data_list": lambda c: ["data", "list"],
    "data_show_patients": lambda c: ["data", "show", "patients"],
    "features_list": lambda c: ["features", "list", "--project", "{root}/project/medops.yaml"],
    "lineage_show_notes": lambda c: ["lineage", "show", "notes"],
    "runs_list": lambda c: ["runs", "list"],
    "runs_show_production": lambda c: ["runs", "show", str(_version(c)["run"])],
    "evaluations_show_production": lambda c: ["evaluations", "show", str(_version(c)["evaluation"])],
    "models_show_version": lambda c: ["models", "show", MODEL],
    "user_list": lambda c: ["user", "list"],
    "audit_log": lambda c: ["audit", "log"],
}


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_cli_json_matches_its_golden(
    name: str,
    demo_run: DemoRun,
    update_goldens: bool,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    roots = {str(demo_run.root): "<root>"}
    monkeypatch.setenv("MEDOPS_HOME", str(demo_run.result.home))  # reads need no login (login_for_reads is off)
    if name in NEED_A_ROLE:  # on a copy, as ada, through an API token (its creation is in the golden trail)
        copy = request.getfixturevalue("demo_copy")
        roots[str(copy)] = "<root>"
        monkeypatch.setenv("MEDOPS_HOME", str(copy / "workspace"))
        with Workspace.open(copy / "workspace") as ws:
            monkeypatch.setenv("MEDOPS_TOKEN", ws.tokens.create("ada", "golden test", expires_in_days=1)[1])
    args = [a.replace("{root}", str(demo_run.root)) for a in COMMANDS[name](capsys)]
    doc = normalize(_json(args, capsys), roots=roots)
    check(name, doc, update=update_goldens)
