"""One consistent CLI, as a new user meets it: a light start, --json everywhere, readable tables,
whole lines in pipes, one line on Ctrl-C, clear refusals."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from medops.cli.common import cell, plural
from medops.cli.main import app
from medops.workspace import Workspace
from tests.conftest import PASSWORD
from tests.factories import log_in, run

HEAVY = ("sqlalchemy", "pandas", "numpy", "pyarrow", "medops.workspace")
SQLITE = pytest.mark.parametrize("metadata_url", ["sqlite"], indirect=True)  # the CLI's look is the same on both


@pytest.fixture
def home(workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The shared workspace fixture (admin 'admin'), as the CLI finds it, with the admin logged in."""
    monkeypatch.setenv("MEDOPS_HOME", str(workspace.settings.home))
    log_in(workspace, "admin")
    return workspace.settings.home


def _leaves() -> list[tuple[list[str], object]]:
    found: list[tuple[list[str], object]] = []

    def walk(cmd, prefix: list[str]) -> None:  # type: ignore[no-untyped-def]
        ctx = typer.Context(cmd)
        if not hasattr(cmd, "list_commands"):
            found.append((prefix, cmd))
            return
        for name in cmd.list_commands(ctx):
            walk(cmd.get_command(ctx, name), prefix + [name])

    walk(typer.main.get_command(app), [])
    return found


@pytest.mark.parametrize("args", [["--version"], ["--help"], []], ids=["version", "help", "no-args"])
def test_version_and_help_import_no_database_layer(args: list[str]) -> None:
    probe = (
        "import sys\n"
        "from medops.cli.main import main\n"
        "try:\n"
        f"    main({args!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r} or m in {HEAVY!r}))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_python_dash_m_medops_runs_the_cli() -> None:
    result = subprocess.run([sys.executable, "-m", "medops", "--version"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.startswith("medops ")


def test_every_command_takes_json() -> None:
    lacking = [" ".join(path) for path, cmd in _leaves() if "--json" not in {o for p in cmd.params for o in p.opts}]
    assert lacking == []


def test_cells_read_as_text() -> None:
    assert cell(None) == "" and cell(True) == "yes" and cell(0.812345678) == "0.8123"
    assert cell(123456.7) == "123,457" and cell(3) == "3"
    assert cell({"C": 0.5, "penalty": None, "grid": [1, 2]}) == "C=0.5, penalty=, grid=[1, 2]"
    assert cell({"lr": {"float": [0.01, 0.1], "log": True}}) == "lr=(float=[0.01, 0.1], log=yes)"
    assert plural(1, "row") == "1 row" and plural(2, "row") == "2 rows" and plural(1200, "entity") == "1,200 entities"
    assert plural(0, "key") == "0 keys"


@SQLITE
def test_json_on_commands_that_act(home: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = run(["doctor", "--json"], capsys)
    doc = json.loads(out)
    assert code == 0 and doc["ok"] is True and {c["name"] for c in doc["checks"]} >= {"config"}, err
    code, out, _ = run(["db", "status", "--json"], capsys)
    assert json.loads(out)["up_to_date"] is True
    code, out, _ = run(["token", "create", "--name", "ci", "--json"], capsys)
    token = json.loads(out)
    assert code == 0 and token["secret"].startswith("medops_") and token["user"] == "admin"
    code, out, _ = run(["token", "revoke", token["id"], "-r", "rotated", "--json"], capsys)
    revoked = json.loads(out)  # the token's document, as the API answers
    assert revoked["id"] == token["id"] and revoked["state"] == "revoked" and revoked["revoked_at"]
    code, out, _ = run(["models", "public-key", "--json"], capsys)
    assert code == 0 and json.loads(out)["public_key"]
    code, out, _ = run(["audit", "export", "--action", "user.add", "-o", str(tmp_path / "t.jsonl"), "--json"], capsys)
    assert json.loads(out) == {"events": 1, "format": "jsonl", "output": str(tmp_path / "t.jsonl")}
    code, _, err = run(["audit", "export", "--json"], capsys)
    assert code == 2 and "--json needs -o FILE" in err


@SQLITE
def test_tables_are_not_wrapped_in_a_pipe_and_say_1_event(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("COLUMNS", "80")  # as GNU readline exports it once loaded: a pipe stays unwrapped anyway
    long_name = "Alexandra " + " ".join(["Maximiliana"] * 12) + " Okonkwo-Lovelace"
    code, out, err = run(
        ["user", "add", "alex", "--name", long_name, "--password-stdin"],
        capsys,
        stdin=PASSWORD + "\n",
        monkeypatch=monkeypatch,
    )
    assert code == 0, err
    code, out, _ = run(["user", "list"], capsys)
    assert long_name in out  # one line, however wide: output to a pipe is not wrapped at 80 columns
    code, out, _ = run(["audit", "log", "--action", "signing_key.register"], capsys)
    assert "key_id=" in out and "{" not in out and "None" not in out  # the change reads as text
    code, out, _ = run(
        ["audit", "export", "--action", "user.add", "--entity", "user:alex", "-o", str(tmp_path / "a")], capsys
    )
    assert "exported 1 event to" in out


def test_help_names_values(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["models", "register", "--help"], capsys)
    assert code == 0 and "RUN" in out and "--name" in out and "NAME" in out
    assert "<str>" not in out and "<bool>" not in out and "<list[str]>" not in out


@SQLITE
def test_ctrl_c_is_one_line_and_exit_130(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("medops.workspace.Workspace.open", interrupted)
    assert run(["audit", "log"], capsys) == (130, "", "interrupted\n")

    def prompt_interrupted(*args: object, **kwargs: object) -> None:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise typer.Abort() from None  # what a prompt does on Ctrl-C

    monkeypatch.setattr("medops.cli.workspace.run_checks", prompt_interrupted)
    assert run(["doctor"], capsys) == (130, "", "interrupted\n")


def test_a_full_disk_is_one_line_naming_the_file_not_an_internal_error(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device", "/data/preds.parquet")

    monkeypatch.setattr("medops.workspace.Workspace.open", full)
    code, out, err = run(["audit", "log"], capsys)
    assert (code, out) == (74, "")
    assert err.startswith("error: No space left on device: /data/preds.parquet\nhint: free the space")
    assert "internal error" not in err and "Traceback" not in err


@SQLITE
def test_a_locked_account_says_so_and_who_unlocks_it(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from medops.errors import AuthenticationFailed
    from medops.identity.users import MAX_FAILED_LOGINS
    from medops.workspace import Workspace

    run(
        ["user", "add", "bob", "--name", "Bob", "--password-stdin"],
        capsys,
        stdin=PASSWORD + "\n",
        monkeypatch=monkeypatch,
    )
    with Workspace.open(home) as ws:
        for _ in range(MAX_FAILED_LOGINS - 1):
            with pytest.raises(AuthenticationFailed, match="authentication failed"):
                ws.users.check_password("bob", "wrong-password-0", purpose="test")
        with pytest.raises(AuthenticationFailed, match="is locked after") as locked:
            ws.users.check_password("bob", "wrong-password-0", purpose="test")
        assert locked.value.hint and "medops user enable bob" in locked.value.hint
        with pytest.raises(AuthenticationFailed, match="is locked after"):  # the right password can't help now
            ws.users.check_password("bob", PASSWORD, purpose="test")
    code, _, err = run(["login", "bob", "--password-stdin"], capsys, stdin=PASSWORD + "\n", monkeypatch=monkeypatch)
    assert code == 1 and "'bob' is locked after" in err and "an admin can unlock it" in err
    assert run(["user", "enable", "bob", "-r", "identity checked"], capsys)[0] == 0  # the admin is still logged in
    code, _, err = run(["login", "bob", "--password-stdin"], capsys, stdin=PASSWORD + "\n", monkeypatch=monkeypatch)
    assert code == 0, err
    code, _, err = run(["user", "list"], capsys)
    assert code == 1 and "'bob' may not user list" in err and "locked" not in err  # no role, but no longer locked


@SQLITE
def test_init_refuses_a_busy_folder_or_a_nested_one_unless_forced(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEDOPS_ADMIN_PASSWORD", PASSWORD)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    code, _, err = run(["init", str(busy)], capsys)
    assert code == 1 and "is not empty" in err and "--force" in err and not (busy / "medops.toml").exists()
    code, _, err = run(["init", str(home / "inner")], capsys)
    assert code == 1 and f"inside the workspace at {home}" in err and not (home / "inner").exists()
    code, out, err = run(["init", str(busy), "--force", "--json"], capsys)
    assert code == 0 and json.loads(out)["home"] == str(busy.resolve()), err
    assert (busy / "notes.txt").read_text() == "mine"


@SQLITE
def test_a_template_is_added_to_an_existing_workspace(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["project", "new", "--template", "readmission", "--patients", "60", "--json"], capsys)
    doc = json.loads(out)
    assert code == 0 and doc["directory"] == str(home) and (home / "medops.yaml").is_file(), err
    code, out, _ = run(["project", "check", "--project", str(home / "medops.yaml"), "--json"], capsys)
    checked = json.loads(out)
    assert checked["governs_production"] is True and all(s["exists"] for s in checked["sources"] if s["path"])
    code, _, err = run(["project", "new", "--template", "readmission"], capsys)
    assert code == 1 and "exists already" in err
    code, _, err = run(["project", "new", "--template", "nope"], capsys)
    assert code == 2 and "unknown template 'nope'" in err
