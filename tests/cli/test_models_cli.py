"""`medops models register|show|approve|reject|approvals|promote|alias|history|rollback` on a validated run."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from medops.credentials import forget_session
from medops.public_keys import encode_public
from medops.workspace import Workspace
from tests.factories import PASSWORD, log_in, run


def test_a_version_from_registration_to_rollback(
    registry: tuple[Workspace, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ws, run_id = registry
    monkeypatch.setenv("MEDOPS_HOME", str(ws.settings.home))

    def as_user(user: str | None, args: list[str], stdin: str | None = None) -> tuple[int, str, str]:
        if user is None:
            forget_session(ws.settings)  # nobody logged in: reads still run (login_for_reads is off)
        else:
            log_in(ws, user)  # as each person would at their own terminal
        return run(args, capsys, stdin=stdin, monkeypatch=monkeypatch)

    for _ in range(2):
        code, out, err = as_user("alice", ["models", "register", run_id[:8], "--name", "readmission", "--json"])
        assert code == 0, err
    assert json.loads(out)["version"] == 2
    for version in (1, 2):
        for user, role in (("carol", "clinical_reviewer"), ("victor", "validator")):
            args = ["models", "approve", f"readmission:{version}", "--role", role, "--password-stdin"]
            code, _, err = as_user(user, args, stdin=PASSWORD + "\n")
            assert code == 0, err
    code, _, err = as_user(
        "victor", ["models", "approve", "readmission:1", "--role", "validator", "--password-stdin"], "bad\n"
    )
    assert code != 0 and "password" in err.lower()
    code, out, _ = as_user("ming", ["models", "approvals", "readmission:1", "--json"])
    assert json.loads(out)["missing"] == []
    code, _, err = as_user("alice", ["models", "promote", "readmission:1", "--to", "production", "-r", "go"])
    assert code != 0 and "may not" in err
    code, _, err = as_user("ming", ["models", "promote", "readmission:1", "--to", "production", "-r", "CAB-118"])
    assert code == 0, err
    code, _, err = as_user("ming", ["models", "promote", "readmission:2", "--to", "production", "-r", "CAB-119"])
    assert code == 0, err
    code, out, _ = as_user("ming", ["models", "show", "readmission", "--json"])
    assert [v["stage"] for v in json.loads(out)] == ["archived", "production"]
    code, _, err = as_user("ming", ["models", "alias", "readmission:2", "champion", "-r", "live"])
    assert code == 0, err
    code, out, err = as_user("ming", ["models", "rollback", "readmission", "-r", "INC-42", "--json"])
    assert code == 0 and [m["version"] for m in json.loads(out)] == [2, 1], err
    code, out, _ = as_user(None, ["models", "history", "readmission", "--json"])
    moves = json.loads(out)["moves"]
    assert [(m["name"], m["version"]) for m in moves][-2:] == [("archived", 2), ("production", 1)]
    code, out, _ = as_user(None, ["models", "list", "--json"])
    listed = [{"name": "readmission", "versions": 2, "production": 1, "created_by": "alice", "production_passed": True}]
    assert json.loads(out) == listed
    code, _, err = as_user("ming", ["models", "promote", "readmission", "--to", "staging", "-r", "x"])
    assert code == 2 and "names no version" in err
    bundle = ws.settings.home.parent / "readmission-1.medops"
    code, out, err = as_user("ming", ["models", "export", "readmission:1", str(bundle)])
    assert code == 0 and bundle.stat().st_size > 1000, err
    code, out, err = as_user("alice", ["models", "import", str(bundle), "--name", "readmission_copy", "--json"])
    assert code == 0 and json.loads(out)["run"] is None, err
    code, out, _ = as_user("ming", ["models", "public-key"])
    key = out.strip()
    code, _, err = as_user("ming", ["models", "trust-key", key, "--note", "our own"])
    assert code != 0 and "may not" in err  # only an admin decides whose bundles are trusted
    code, _, err = as_user("admin", ["models", "trust-key", key, "--note", "our own, for the test"])
    assert code == 2 and "this workspace's own key: it is always trusted" in err
    site_b = encode_public(Ed25519PrivateKey.generate().public_key())
    code, _, err = as_user("admin", ["models", "trust-key", site_b, "--note", "site B"])
    assert code == 0, err
    code, out, _ = as_user("admin", ["models", "trusted-keys", "--json"])
    (listed,) = json.loads(out)
    assert (listed["note"], listed["trusted_by"]) == ("site B", "admin")
    code, _, err = as_user("admin", ["models", "distrust-key", listed["key_id"], "-r", "site B closed"])
    assert code == 0 and json.loads(as_user("admin", ["models", "trusted-keys", "--json"])[1]) == [], err
