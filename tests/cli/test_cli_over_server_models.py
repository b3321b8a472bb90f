"""`medops models` and `medops evaluations` as clients of `medops server` (MEDOPS_SERVER_URL): every read
prints what it prints against the workspace's database, tables and --json alike, with the same token; a
report downloaded over the server is the stored one, byte for byte; a signature made over the server
checks the signer's password again there (a wrong one is refused as it is locally); registrations,
signatures, stage moves, aliases and rollbacks made over the server land in the workspace; a change by
the wrong role is refused the same way in both modes.

The tests share one workspace (the module's server) but none needs another to have run: the reads see
the demo's registry (readmission_30d 1 and 2 archived, 3 in production, whatever later versions other
tests add), and each change works on a version a fixture registered for it.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from medops.caller import Caller
from medops.demo import DEMO_PASSWORD
from medops.services import Services
from medops.workspace import Workspace
from tests.cli.conftest import Both
from tests.factories import Platform

pytestmark = pytest.mark.slow

MODEL = "readmission_30d"
PASSWORD = DEMO_PASSWORD + "\n"


def _register(platform: Platform) -> int:
    """A new version of the model from the production version's run, registered by alice: unsigned."""
    with Workspace.open(platform.workspace) as ws:
        registry = Services(ws).registry
        production = next(v for v in registry.show(Caller("alice"), MODEL).versions if v.stage == "production")
        return registry.register(Caller("alice"), production.run_id or "", MODEL, profile=False).version


@pytest.fixture(scope="module")
def candidate(platform: Platform) -> int:
    """A version no one has signed: the signing tests sign it."""
    return _register(platform)


@pytest.fixture(scope="module")
def signed(platform: Platform) -> int:
    """A version both reviewers signed: the stage tests move it."""
    version = _register(platform)
    with Workspace.open(platform.workspace) as ws:
        registry = Services(ws).registry
        registry.approve(Caller("victor"), f"{MODEL}:{version}", DEMO_PASSWORD, "validator")
        registry.approve(Caller("carol"), f"{MODEL}:{version}", DEMO_PASSWORD, "clinical_reviewer")
    return version


def _local_json(both: Both, user: str, *args: str) -> object:
    code, out, err = both.local(user, *args, "--json")
    assert code == 0, err
    return json.loads(out)


def _refused_alike(both: Both, user: str, *args: str, stdin: str | None = None) -> str:
    """A change refused against the database and against the server alike (exit code and message); the message."""
    here = both.local(user, *args, stdin=stdin)
    there = both.remote(user, *args, stdin=stdin)
    assert here[0] != 0 and here[1] == "", here
    assert there == here, f"medops {' '.join(args)} is refused differently over the server"
    return here[2]


@pytest.mark.parametrize("as_json", [False, True], ids=["table", "json"])
def test_model_reads_are_the_same_over_the_server(both: Both, as_json: bool) -> None:
    flag = ["--json"] if as_json else []
    listed = both.same("alice", "models", "list", *flag)
    assert MODEL in listed
    versions = both.same("victor", "models", "show", MODEL, *flag)
    assert "production" in versions and "archived" in versions
    for version in (1, 3):  # 1: archived, signed by carol and victor; 3: in production
        shown = both.same("carol", "models", "show", f"{MODEL}:{version}", *flag)
        assert "carol" in shown and "victor" in shown
        approvals = both.same("ming", "models", "approvals", f"{MODEL}:{version}", *flag)
        assert "clinical_reviewer" in approvals
    history = both.same("ada", "models", "history", MODEL, *flag)
    assert "demo: the retrained challenger" in history
    moves = _local_json(both, "ada", "models", "history", MODEL)["moves"]  # type: ignore[index]
    between = datetime.fromisoformat(moves[2]["at"]).replace(tzinfo=None, microsecond=0) + timedelta(seconds=1)
    for at in (between.isoformat(), "2000-01-01T00:00:00"):  # while the demo moved it; before any version
        held = both.same("victor", "models", "history", MODEL, "--at", at, *flag)
        assert "production" in held


@pytest.mark.parametrize("as_json", [False, True], ids=["table", "json"])
def test_evaluation_reads_are_the_same_over_the_server(both: Both, as_json: bool) -> None:
    flag = ["--json"] if as_json else []
    evaluations = _local_json(both, "victor", "evaluations", "list")
    assert isinstance(evaluations, list) and {e["passed"] for e in evaluations} == {True, False}
    both.same("victor", "evaluations", "list", *flag)
    both.same("alice", "evaluations", "list", "--limit", "2", *flag)
    both.same("alice", "evaluations", "list", "--run", evaluations[0]["run"][:8], *flag)
    for evaluation in evaluations:  # passed and failed gates
        shown = both.same("carol", "evaluations", "show", evaluation["id"][:10], *flag)
        assert evaluation["id"] in shown


def test_an_evaluation_report_is_downloaded_over_the_server(both: Both, tmp_path: Path) -> None:
    evaluation = _local_json(both, "victor", "models", "show", f"{MODEL}:3")["evaluation"]  # type: ignore[index]
    here, there = tmp_path / "here.html", tmp_path / "there.html"
    local = both.local("carol", "evaluations", "show", evaluation, "--report", str(here))
    remote = both.remote("carol", "evaluations", "show", evaluation, "--report", str(there))
    assert local[0] == 0 and remote == local
    assert there.read_bytes() == here.read_bytes() and b"<html" in here.read_bytes().lower()


def test_a_version_registered_over_the_server_is_in_the_workspace(both: Both) -> None:
    production = _local_json(both, "alice", "models", "show", f"{MODEL}:3")
    assert isinstance(production, dict)
    versions = _local_json(both, "alice", "models", "show", MODEL)
    assert isinstance(versions, list)
    new = max(v["version"] for v in versions) + 1
    register = ["models", "register", production["run"][:10], "--name", MODEL, "--tag", "ticket=CAB-7"]
    _refused_alike(both, "carol", *register, "-r", "not mine to register")  # a clinical reviewer registers nothing
    code, out, err = both.remote("alice", *register, "-r", "the next candidate")
    assert code == 0, err
    assert f"registered {MODEL}:{new} from run {production['run'][:10]}" in out
    version = _local_json(both, "alice", "models", "show", f"{MODEL}:{new}")
    assert isinstance(version, dict)
    assert (version["created_by"], version["evaluation"], version["tags"]) == (
        "alice",
        production["evaluation"],
        {"ticket": "CAB-7"},
    )
    assert version["approvals"] == []


def test_a_signature_over_the_server_checks_the_password_again(both: Both, candidate: int) -> None:
    approve = ["models", "approve", f"{MODEL}:{candidate}", "--role", "clinical_reviewer", "--password-stdin"]
    err = _refused_alike(both, "carol", *approve, stdin="not-her-password\n")
    assert "password" in err.lower()
    _refused_alike(both, "alice", *approve, stdin=PASSWORD)  # alice does not hold the role she would sign for
    _refused_alike(both, "carol", "models", "approve", MODEL, "--role", "clinical_reviewer")  # no version: no prompt
    assert _local_json(both, "ming", "models", "approvals", f"{MODEL}:{candidate}")["decisions"] == []  # type: ignore[index]

    code, out, err = both.remote("carol", *approve, stdin=PASSWORD)
    assert code == 0, err
    assert f"carol signed {MODEL}:{candidate} as clinical_reviewer: approved for production" in out
    reject = [
        "models",
        "reject",
        f"{MODEL}:{candidate}",
        "--role",
        "validator",
        "-r",
        "check the calibration",
        "--password-stdin",
    ]
    code, out, err = both.remote("victor", *reject, "--json", stdin=PASSWORD)
    assert code == 0 and json.loads(out)["decision"] == "rejected", err
    state = _local_json(both, "ming", "models", "approvals", f"{MODEL}:{candidate}")
    assert isinstance(state, dict)
    assert [(d["username"], d["role"], d["decision"], d["valid"]) for d in state["decisions"]] == [
        ("carol", "clinical_reviewer", "approved", True),
        ("victor", "validator", "rejected", True),
    ]
    assert state["missing"] != []

    approve = ["models", "approve", f"{MODEL}:{candidate}", "--role", "validator", "--password-stdin"]
    code, out, err = both.remote("victor", *approve, stdin=PASSWORD)  # the latest decision per role counts
    assert code == 0, err
    assert _local_json(both, "ming", "models", "approvals", f"{MODEL}:{candidate}")["missing"] == []  # type: ignore[index]
    for as_json in ([], ["--json"]):
        both.same("ming", "models", "approvals", f"{MODEL}:{candidate}", *as_json)


def test_an_acceptance_over_the_server_is_signed_by_a_validator(both: Both, candidate: int, tmp_path: Path) -> None:
    accept = ["models", "accept-evaluation", f"{MODEL}:{candidate}", "-r", "reviewed", "--password-stdin"]
    err = _refused_alike(both, "victor", *accept, stdin=PASSWORD)
    assert "trained here" in err
    bundle = tmp_path / "readmission-3.medops"
    code, _, err = both.local("ming", "models", "export", f"{MODEL}:3", str(bundle))
    assert code == 0, err
    code, _, err = both.local("alice", "models", "import", str(bundle), "--name", "readmission_imported")
    assert code == 0, err
    accept = ["models", "accept-evaluation", "readmission_imported:1", "-r", "reviewed report R-17", "--password-stdin"]
    _refused_alike(both, "carol", *accept, stdin=PASSWORD)  # only a validator accepts
    code, out, err = both.remote("victor", *accept, stdin=PASSWORD)
    assert code == 0, err
    assert "victor accepted the exporting workspace's evaluation of readmission_imported:1" in out
    state = _local_json(both, "victor", "models", "approvals", "readmission_imported:1")
    assert isinstance(state, dict)
    assert [(d["username"], d["decision"], d["reason"]) for d in state["decisions"]] == [
        ("victor", "accepted", "reviewed report R-17")
    ]


def _history(both: Both) -> list[tuple[str, int | None, int | None, str, str | None]]:
    moves = _local_json(both, "ada", "models", "history", MODEL)["moves"]  # type: ignore[index]
    return [(m["name"], m["version"], m["previous"], m["actor"], m["reason"]) for m in moves]


def test_stage_and_alias_moves_over_the_server_are_in_the_history(both: Both, signed: int) -> None:
    before = _history(both)
    _refused_alike(both, "alice", "models", "promote", f"{MODEL}:{signed}", "--to", "production", "-r", "go")
    _refused_alike(both, "victor", "models", "alias", f"{MODEL}:{signed}", "champion", "-r", "mine")
    _refused_alike(both, "carol", "models", "rollback", MODEL, "-r", "no")
    _refused_alike(both, "ming", "models", "promote", f"{MODEL}:{signed}", "--to", "production")  # no reason: refused
    assert "stage 'prod' is not known" in _refused_alike(
        both, "ming", "models", "promote", f"{MODEL}:{signed}", "--to", "prod", "-r", "x"
    )
    assert _history(both) == before

    code, out, err = both.remote(
        "ming", "models", "promote", f"{MODEL}:{signed}", "--to", "production", "-r", "CAB-120"
    )
    assert code == 0, err
    assert f"{MODEL}:3 -> archived" in out and f"{MODEL}:{signed} -> production" in out
    code, out, err = both.remote("ming", "models", "alias", f"{MODEL}:{signed}", "champion", "-r", "live", "--json")
    assert code == 0 and json.loads(out)["version"] == signed, err
    assert _local_json(both, "ming", "models", "show", f"{MODEL}:{signed}")["aliases"] == ["champion"]  # type: ignore[index]
    code, out, err = both.remote("ming", "models", "alias", MODEL, "champion", "--remove", "-r", "shadow over")
    assert code == 0, err
    assert f"{MODEL}: champion -> removed (was {signed})" in out
    code, out, err = both.remote("ming", "models", "rollback", MODEL, "-r", "alert INC-43", "--json")
    assert code == 0, err
    assert [(m["name"], m["version"]) for m in json.loads(out)] == [("archived", signed), ("production", 3)]

    assert _history(both)[len(before) :] == [
        ("archived", 3, None, "ming", "CAB-120"),
        ("production", signed, 3, "ming", "CAB-120"),
        ("champion", signed, None, "ming", "live"),
        ("champion", None, signed, "ming", "shadow over"),
        ("archived", signed, None, "ming", "alert INC-43"),
        ("production", 3, signed, "ming", "alert INC-43"),
    ]
    for as_json in ([], ["--json"]):  # the moves made over the server read the same both ways
        both.same("victor", "models", "history", MODEL, *as_json)
        both.same("victor", "models", "show", MODEL, *as_json)
        both.same("victor", "models", "list", *as_json)


def test_a_bundle_exported_over_the_server_is_the_same_file(both: Both, tmp_path: Path) -> None:
    here, there = tmp_path / "here.medops", tmp_path / "there.medops"
    local = json.loads(both.local("ming", "models", "export", f"{MODEL}:3", str(here), "--json")[1])
    code, out, err = both.remote("ming", "models", "export", f"{MODEL}:3", str(there), "--json")
    assert code == 0, err
    assert here.read_bytes() == there.read_bytes() and json.loads(out) == {**local, "file": str(there)}
    assert hashlib.sha256(there.read_bytes()).hexdigest() == local["artifact_sha256"]
    refused = both.local("carol", "models", "export", f"{MODEL}:3", str(tmp_path / "c.medops"))
    assert both.remote("carol", "models", "export", f"{MODEL}:3", str(tmp_path / "c.medops")) == refused
    assert refused[0] != 0 and not (tmp_path / "c.medops").exists()
    exports = json.loads(both.local("victor", "audit", "log", "--action", "model.export", "--json")[1])
    assert [e["actor"] for e in exports[:2]] == ["ming", "ming"]  # the server's export is audited as the local one


def test_the_commands_with_no_server_form_are_refused_while_a_server_is_set(both: Both, tmp_path: Path) -> None:
    for args in (
        ["models", "public-key"],
        ["models", "trusted-keys"],
        ["evaluations", "export", "abcdef", "--predictions", str(tmp_path / "p.csv")],
    ):
        code, out, err = both.remote("ada", *args)
        assert code != 0 and out == "", args
        assert "has no platform-server form" in err, args


def test_evidence_over_the_server_is_the_workspaces_and_the_package_stays_with_the_key(
    both: Both, tmp_path: Path
) -> None:
    code, out, err = both.remote(
        "victor", "evidence", "model", f"{MODEL}:3", "--json", "--html", str(tmp_path / "p.html")
    )
    assert code == 0, err
    there = json.loads(out)
    code, out, err = both.local("victor", "evidence", "model", f"{MODEL}:3", "--json")
    assert code == 0, err
    here = json.loads(out)
    same = ("subject", "bundle", "approvals", "evaluation", "training", "data", "changes", "annex_iv", "project")
    assert {k: there[k] for k in same} == {k: here[k] for k in same}
    assert "<h1>Evidence: model:readmission_30d:3</h1>" in (tmp_path / "p.html").read_text()
    code, out, err = both.remote("victor", "evidence", "model", f"{MODEL}:3", "--out", str(tmp_path / "package"))
    assert code != 0 and "signed with the workspace key" in err and not (tmp_path / "package").exists()
    assert _refused_alike(both, "alice", "evidence", "model", f"{MODEL}:3")  # auditors and admins only
    exports = json.loads(both.local("victor", "audit", "log", "--action", "evidence.model", "--json")[1])
    assert [e["actor"] for e in exports[:2]] == ["victor", "victor"]  # the server's export is audited too
