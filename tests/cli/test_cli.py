"""The CLI as a user meets it: help everywhere, one-line errors, exit codes."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import typer

from medops import __version__
from medops.cli.main import app
from medops.demo import DemoResult
from medops.workspace import Workspace
from tests.factories import PASSWORD, log_in, run


def _all_commands() -> list[list[str]]:
    group = typer.main.get_command(app)
    paths: list[list[str]] = []

    def walk(cmd, prefix: list[str]) -> None:  # type: ignore[no-untyped-def]
        paths.append(prefix)
        ctx = typer.Context(cmd)
        for name in cmd.list_commands(ctx) if hasattr(cmd, "list_commands") else []:
            walk(cmd.get_command(ctx, name), prefix + [name])

    walk(group, [])
    return paths


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["--version"], capsys)[:2] == (0, f"medops {__version__}\n")


@pytest.mark.parametrize("path", _all_commands(), ids=lambda p: " ".join(p) or "medops")
def test_every_command_has_help_with_an_example(path: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run([*path, "--help"], capsys)
    assert code == 0
    assert "Usage" in out
    assert not re.search(r"<(bool|str|int|float|path|Path|datetime|list\[\w+\])>", out)  # values have names
    groups = (
        "db",
        "audit",
        "user",
        "token",
        "project",
        "data",
        "lineage",
        "features",
        "runs",
        "evaluations",
        "models",
        "predictions",
        "monitor",
        "alerts",
        "pipelines",
        "evidence",
    )
    is_group = path == [] or path[-1] in groups
    assert is_group or "Example" in out


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Path:
    ws = tmp_path / "ws"
    code, out, err = run(
        ["init", str(ws), "--admin", "root", "--admin-name", "Rita Root", "--password-stdin"],
        capsys,
        stdin=PASSWORD + "\n",
        monkeypatch=monkeypatch,
    )
    assert code == 0, err
    assert "workspace created" in out
    monkeypatch.setenv("MEDOPS_HOME", str(ws))
    return ws


def test_init_doctor_and_user_management(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, err = run(["doctor"], capsys)
    assert code == 0, out + err
    assert "all checks passed" in out and "audit trail" in out
    code, out, err = run(
        ["user", "add", "alice", "--name", "Alice Moreau", "--role", "data_scientist,validator", "--password-stdin"],
        capsys,
        stdin=PASSWORD + "\n",
        monkeypatch=monkeypatch,
    )
    assert code == 0, err
    assert run(["user", "grant", "alice", "auditor", "--reason", "QA"], capsys)[0] == 0
    code, out, _ = run(["user", "list", "--json"], capsys)
    users = {u["username"]: u for u in json.loads(out)}
    assert users["alice"]["roles"] == ["auditor", "data_scientist", "validator"]
    code, _, err = run(["user", "disable", "alice"], capsys)
    assert code == 2 and "needs a reason" in err


def test_non_admin_gets_a_one_line_refusal(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    run(
        ["user", "add", "alice", "--name", "Alice", "--role", "data_scientist", "--password-stdin"],
        capsys,
        stdin=PASSWORD + "\n",
        monkeypatch=monkeypatch,
    )
    log_in(home, "alice")
    code, out, err = run(["user", "grant", "alice", "admin", "--reason", "why not"], capsys)
    assert code == 1
    assert "error: 'alice' may not user grant: it needs the role admin" in err
    assert "Traceback" not in err
    log_in(home, "root")
    code, out, _ = run(["audit", "log", "--action", "user.grant*", "--json"], capsys)
    assert code == 0 and [(e["actor"], e["action"]) for e in json.loads(out)] == [("alice", "user.grant.denied")]


def test_audit_log_verify_export(home: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = run(["token", "create", "--name", "ci", "--expires-in-days", "7"], capsys)
    assert code == 0 and "medops_" in out
    code, out, _ = run(["audit", "log", "--entity", "token", "--json"], capsys)
    events = json.loads(out)
    # newest first: the token, then the session `medops init` opened for root (sessions are tokens too)
    assert [e["action"] for e in events] == ["token.create", "session.open"] and events[0]["actor"] == "root"
    code, out, _ = run(["audit", "verify", "--json"], capsys)
    assert code == 0 and json.loads(out)["ok"] is True
    for fmt in ("jsonl", "csv"):
        target = tmp_path / f"trail.{fmt}"
        assert run(["audit", "export", "--format", fmt, "-o", str(target)], capsys)[0] == 0
        assert "token.create" in target.read_text()
    lines = (tmp_path / "trail.jsonl").read_text().splitlines()
    assert [json.loads(line)["seq"] for line in lines] == list(range(1, len(lines) + 1))
    code, _, err = run(["audit", "export", "--format", "xml"], capsys)
    assert code == 2 and "format 'xml'" in err
    code, _, err = run(["audit", "log", "--since", "yesterday"], capsys)
    assert code == 2 and "ISO 8601" in err


def test_corrupt_config_is_one_line_and_debug_shows_the_traceback(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    original = (home / "medops.toml").read_text()
    (home / "medops.toml").write_text(original + "colour = 'blue'\n")
    code, _, err = run(["user", "list"], capsys)
    assert code == 2 and "unknown setting 'colour'" in err and "Traceback" not in err
    code, _, err = run(["--debug", "user", "list"], capsys)
    assert code == 2 and "Traceback" in err
    code, out, _ = run(["doctor"], capsys)
    assert code == 1 and "unknown setting" in out


def test_unreachable_database_in_config(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEDOPS_METADATA_URL", "postgresql+psycopg://postgres@127.0.0.1:1/medops")
    code, _, err = run(["audit", "verify"], capsys)
    assert code == 3 and "can't reach the metadata database" in err
    code, out, _ = run(["doctor", "--no-config"], capsys)
    assert code == 1 and "FAIL" in out and "metadata database" in out


def test_no_workspace_says_how_to_make_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = run(["audit", "log"], capsys)
    assert code == 2 and "medops init" in err


def test_console_script_runs(tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("medops")
    result = subprocess.run([str(exe), "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.startswith("medops ")


def test_auditor_verifies_an_export_offline(
    home: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "trail.csv"
    assert run(["audit", "export", "--format", "csv", "-o", str(target)], capsys)[0] == 0
    monkeypatch.delenv("MEDOPS_HOME")
    monkeypatch.chdir(tmp_path)  # no workspace here: the export alone suffices
    code, out, _ = run(["audit", "verify", "--export", str(target)], capsys)
    assert code == 0 and "export intact" in out
    target.write_text(target.read_text().replace("Rita Root", "Rita Rooted"))
    code, _, err = run(["audit", "verify", "--export", str(target)], capsys)
    assert code == 1 and "export BROKEN at event 1 (altered)" in err


def test_a_csv_export_opens_in_a_spreadsheet_without_running_formulas(
    home: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reason typed by a user is a cell of the export: `=cmd|...` ran when an auditor opened it."""
    formula = "=cmd|' /C calc'!A0"
    code, _, err = run(
        ["user", "add", "mallory", "--name", "Mal Lory", "--role", "data_scientist", "--password-stdin"]
        + ["--reason", formula],
        capsys,
        stdin=PASSWORD + "\n",
        monkeypatch=monkeypatch,
    )
    assert code == 0, err
    target = tmp_path / "trail.csv"
    assert run(["audit", "export", "--format", "csv", "-o", str(target)], capsys)[0] == 0
    with open(target, encoding="utf-8", newline="") as handle:
        reasons = [row["reason"] for row in csv.DictReader(handle)]
    assert "'" + formula in reasons and formula not in reasons
    code, out, _ = run(["audit", "verify", "--export", str(target)], capsys)
    assert code == 0 and "export intact" in out  # the quote is undone before the chain is checked


def test_demo_command(
    demo: DemoResult, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The command around the demo: its steps, the audit trail, a folder that must be empty (the demo runs once)."""
    asked: list[Path | None] = []

    def replay(root: Path | None, *, say: Callable[[str, str], None], **options: object) -> DemoResult:
        asked.append(root)
        for step, outcome in demo.steps:
            say(step, outcome)
        return demo

    monkeypatch.setattr("medops.demo.run_demo", replay)
    code, out, err = run(["demo", "--dir", str(tmp_path / "demo")], capsys)
    assert code == 0, err
    assert asked == [tmp_path / "demo"]
    assert "tamper test" in out and "demo complete" in out and "the audit trail of the demo" in out
    reports = out.split("Reports (open the .html files in a browser):\n")[1].split("Explore it:")[0].split()
    assert any(r.endswith("validation_report.html") for r in reports) and all(Path(r).is_file() for r in reports)
    assert "Traceback" not in err and "Trial" not in err
    code, _, err = run(["demo", "--dir", str(tmp_path / "other"), "--artifact-root", "nope://x"], capsys)
    assert code != 0 and "no filesystem for the scheme 'nope'" in err and "Traceback" not in err
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("x")
    code, _, err = run(["demo", "--dir", str(tmp_path / "busy")], capsys)
    assert code == 2 and "is not empty" in err


def test_synth_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["synth", str(tmp_path / "d"), "-n", "50", "--seed", "3", "--format", "parquet"], capsys)
    assert code == 0, err
    assert (tmp_path / "d" / "patients.parquet").is_file() and "10 files" in out
    code, _, err = run(["synth", str(tmp_path / "e"), "--format", "xlsx"], capsys)
    assert code == 2 and "unknown format 'xlsx'" in err and not (tmp_path / "e").exists()
    code, _, err = run(["synth", str(tmp_path / "e"), "--start", "next week"], capsys)
    assert code == 2 and "is not a date" in err


def test_doctor_says_who_the_cli_acts_as_a_login_and_never_a_name(
    workspace: Workspace, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEDOPS_HOME", str(workspace.settings.home))
    monkeypatch.setenv("MEDOPS_USER", "admin")  # a name: the CLI acts as nobody
    code, out, _ = run(["doctor", "--json", "--no-config"], capsys)
    checks = {c["name"]: c for c in json.loads(out)["checks"]}
    assert code == 0 and checks["acting user"]["status"] == "warn"
    acting = checks["acting user"]
    assert acting["detail"].startswith("not logged in") and "medops login" in acting["fix"]
    secret = log_in(workspace, "admin")
    code, out, _ = run(["doctor", "--json", "--no-config"], capsys)
    acting = {c["name"]: c for c in json.loads(out)["checks"]}["acting user"]
    assert acting["status"] == "ok" and acting["detail"].startswith("admin (admin), logged in until 20")
    workspace.tokens.close_session(secret)
    code, out, _ = run(["doctor", "--json", "--no-config"], capsys)
    acting = {c["name"]: c for c in json.loads(out)["checks"]}["acting user"]
    assert acting["status"] == "warn" and "your session was ended" in acting["detail"]
