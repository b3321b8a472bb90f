"""`medops audit`, `user`, `token`, `whoami` and `doctor` as clients of `medops server`: each read prints
what it prints against the workspace's database, tables and --json alike; users, roles, passwords and
tokens changed over the server are changed in the workspace, and a token made over the server works;
an audit export is the same file either way; a refusal and a broken trail end with the same exit code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medops.demo import DEMO_PASSWORD
from tests.cli.conftest import Both
from tests.factories import run

pytestmark = pytest.mark.slow

TEMPORARY = "temporary-password-4711"


def _json(result: tuple[int, str, str]) -> object:
    code, out, err = result
    assert code == 0, err
    return json.loads(out)


def _with_secret(both: Both, secret: str, *args: str, stdin: str | None = None) -> tuple[int, str, str]:
    """The CLI over the server presenting ``secret`` (empty: no credential at all)."""
    if secret:
        both.monkeypatch.setenv("MEDOPS_TOKEN", secret)
    else:
        both.monkeypatch.delenv("MEDOPS_TOKEN", raising=False)
    both.monkeypatch.delenv("MEDOPS_HOME", raising=False)
    both.monkeypatch.chdir(both.platform.elsewhere)
    both.monkeypatch.setenv("MEDOPS_SERVER_URL", both.platform.url)
    return run(list(args), both.capsys, stdin=stdin, monkeypatch=both.monkeypatch)


@pytest.mark.parametrize("as_json", [False, True], ids=["table", "json"])
def test_identity_and_audit_read_the_same_over_the_server(both: Both, as_json: bool) -> None:
    flag = ["--json"] if as_json else []
    assert "alice" in both.same("ada", "user", "list", *flag)
    both.same("ada", "token", "list", *flag)
    both.same("ada", "token", "list", "--user", "alice", "--sessions", *flag)
    both.same("alice", "token", "list", *flag)
    assert "victor" in both.same("victor", "whoami", *flag)
    both.same("ada", "whoami", *flag)
    both.same("victor", "audit", "log", "--limit", "5", *flag)  # nothing is recorded between the two reads
    assert "model." in both.same("carol", "audit", "log", "--actor", "ming", "--action", "model.*", *flag)
    both.same("victor", "audit", "log", "--entity", "user", "--since", "2000-01-01", *flag)
    verified = both.same("victor", "audit", "verify", *flag)  # the demo's events, and what the tests added
    assert "audit chain intact" in verified if not as_json else json.loads(verified)["ok"]
    both.same("victor", "audit", "verify", "--state", *flag)
    assert "acting user" in both.same("ada", "doctor", *flag)
    both.same("ada", "doctor", "--no-config", *flag)


def test_users_changed_over_the_server_change_in_the_workspace(both: Both) -> None:
    added = both.remote(
        "ada", "user", "add", "nora", "--name", "Nora Vance", "--role", "validator", "--password-stdin",
        "-r", "QA lead", "--json", stdin=DEMO_PASSWORD + "\n",
    )  # fmt: skip
    assert _json(added)["roles"] == ["validator"]
    code, out, err = both.remote("ada", "user", "grant", "nora", "auditor", "-r", "audits the trail too")
    assert code == 0 and "nora now holds: auditor, validator" in out, err
    users = {u["username"]: u for u in _json(both.local("ada", "user", "list", "--json"))}  # type: ignore[union-attr]
    assert users["nora"]["roles"] == ["auditor", "validator"] and users["nora"]["full_name"] == "Nora Vance"
    assert both.remote("ada", "user", "revoke", "nora", "auditor", "-r", "one role is enough")[0] == 0
    assert _json(both.remote("ada", "user", "disable", "nora", "-r", "on leave", "--json"))["active"] is False
    users = {u["username"]: u for u in _json(both.local("ada", "user", "list", "--json"))}  # type: ignore[union-attr]
    assert users["nora"]["active"] is False
    assert _json(both.remote("ada", "user", "enable", "nora", "-r", "back", "--json"))["active"] is True
    for as_json in ([], ["--json"]):
        both.same("victor", "audit", "log", "--entity", "user:nora", *as_json)
    events = _json(both.local("victor", "audit", "log", "--entity", "user:nora", "--json"))
    assert [(e["actor"], e["action"]) for e in events][::-1] == [  # type: ignore[union-attr]
        ("ada", "user.add"),
        ("ada", "user.grant"),
        ("ada", "user.revoke"),
        ("ada", "user.disable"),
        ("ada", "user.enable"),
    ]


def test_a_password_reset_and_its_change_over_the_server(both: Both) -> None:
    from medops.identity import Role
    from medops.workspace import Workspace

    with Workspace.open(both.platform.workspace) as ws:  # her own user: no other test's state needed
        ws.users.add("ada", "nell", "Nell Okoro", DEMO_PASSWORD, [Role.VALIDATOR], reason="QA")
    reset = both.remote("ada", "user", "passwd", "nell", "--password-stdin", "-r", "forgotten", "--json",
                        stdin=TEMPORARY + "\n")  # fmt: skip
    assert _json(reset) == {"username": "nell", "password": "reset", "must_change_password": True}
    users = {u["username"]: u for u in _json(both.local("ada", "user", "list", "--json"))}  # type: ignore[union-attr]
    assert users["nell"]["must_change_password"] is True
    # nell has no credential: the temporary password is the proof
    code, out, err = _with_secret(
        both, "", "user", "passwd", "nell", "--password-stdin", stdin=f"{TEMPORARY}\na-fresh-passphrase-93\n"
    )
    assert code == 0 and "password of nell changed" in out, err
    users = {u["username"]: u for u in _json(both.local("ada", "user", "list", "--json"))}  # type: ignore[union-attr]
    assert users["nell"]["must_change_password"] is False


def test_a_token_made_over_the_server_works_and_its_revocation_too(both: Both) -> None:
    token = _json(both.remote("alice", "token", "create", "--name", "notebook", "--expires-in-days", "2", "--json"))
    assert isinstance(token, dict) and token["user"] == "alice" and token["secret"].startswith("medops_")
    listed = {t["id"]: t for t in _json(both.local("alice", "token", "list", "--json"))}  # type: ignore[union-attr]
    assert listed[token["id"]]["name"] == "notebook" and listed[token["id"]]["state"] == "active"
    who = _json(_with_secret(both, token["secret"], "whoami", "--json"))
    assert who == {**who, "user": "alice", "via": "api", "id": token["id"], "source": "MEDOPS_TOKEN"}  # type: ignore[dict-item]
    code, out, err = both.remote("ada", "token", "create", "--name", "batch", "--user", "ming")
    assert code == 0 and "created for ming" in out and "only time the token is shown" in out, err
    revoked = _json(both.remote("alice", "token", "revoke", token["id"], "-r", "notebook closed", "--json"))
    assert revoked == {**revoked, "id": token["id"], "state": "revoked"}  # type: ignore[dict-item]
    there = _with_secret(both, token["secret"], "whoami")
    both.monkeypatch.setenv("MEDOPS_TOKEN", token["secret"])
    both.monkeypatch.setenv("MEDOPS_HOME", str(both.platform.workspace))
    both.monkeypatch.delenv("MEDOPS_SERVER_URL")
    assert there[0] == run(["whoami"], both.capsys)[0] != 0  # refused here too


def test_an_audit_export_is_the_same_file_either_way(both: Both, tmp_path: Path) -> None:
    head = _json(both.local("victor", "audit", "log", "--limit", "1", "--json"))[0]  # type: ignore[index]
    for fmt in ("jsonl", "csv"):
        assert "user.add" in both.same("victor", "audit", "export", "--format", fmt, "--action", "user.*")
        here, there = tmp_path / f"here.{fmt}", tmp_path / f"there.{fmt}"
        until = ["--format", fmt, "--until", head["ts"], "--json", "-o"]  # the exports themselves come after it
        local = _json(both.local("victor", "audit", "export", *until, str(here)))
        remote = _json(both.remote("victor", "audit", "export", *until, str(there)))
        assert here.read_bytes() == there.read_bytes()
        assert local == {**remote, "output": str(here)} and remote["events"] == head["seq"]  # type: ignore[index]
        assert "export intact" in both.same("victor", "audit", "verify", "--export", str(there))
        assert not list(tmp_path.glob(".*.partial"))


def test_refusals_end_the_same_way_over_the_server(both: Both) -> None:
    adding = ("user", "add", "zed", "--name", "Zed", "--password-stdin")
    here = both.local("alice", *adding, stdin=DEMO_PASSWORD + "\n")
    there = both.remote("alice", *adding, stdin=DEMO_PASSWORD + "\n")
    assert here == there and here[0] == 1 and "needs the role admin" in here[2]
    for args in (("pat", "audit", "log"), ("alice", "audit", "export"), ("pat", "audit", "verify")):
        here, there = both.local(*args), both.remote(*args)
        assert here[0] == there[0] != 0, args
    # the server's settings and health are for its admins (the doctor here checks this machine's, for anyone)
    assert both.remote("alice", "doctor")[0] == 1
    code, out, err = both.remote("victor", "audit", "verify", "--public-key", "AAAA")
    assert code == 2 and out == "" and "--public-key" in err
    assert both.remote("victor", "audit", "export", "--format", "xml") == both.local(
        "victor", "audit", "export", "--format", "xml"
    )


def test_an_identity_provider_pin_is_removed_over_the_server(both: Both) -> None:
    from medops.identity.provider_links import ProviderLinks
    from medops.workspace import Workspace

    with Workspace.open(both.platform.workspace) as ws:  # carol's first login through the hospital's provider
        assert ProviderLinks(ws.users).admit("https://login.hospital.example", "sub-carol", "carol") is None
    unlink = ("user", "unlink-provider", "carol", "-r", "her hospital login was re-created")
    refused = both.local("alice", *unlink), both.remote("alice", *unlink)
    assert refused[0] == refused[1] and refused[0][0] == 1 and "needs the role admin" in refused[0][2]
    assert both.remote("ada", "user", "unlink-provider", "carol")[0] != 0  # no reason, no change
    code, out, err = both.remote("ada", *unlink)
    assert code == 0 and "carol: identity-provider accounts unlinked" in out, err
    again = both.local("ada", *unlink), both.remote("ada", *unlink)
    assert again[0] == again[1] and "linked to no identity provider's account" in again[0][2]
    event = _json(both.local("victor", "audit", "log", "--action", "user.sso.*", "--limit", "1", "--json"))[0]  # type: ignore[index]
    assert event["action"] == "user.sso.unlink" and event["actor"] == "ada"  # type: ignore[index]


def test_a_broken_trail_fails_verification_either_way(both: Both) -> None:
    """Last in the module: the workspace's trail stays broken."""
    from medops.workspace import Workspace
    from tests.audit.tamper import tampering

    with Workspace.open(both.platform.workspace) as ws, tampering(ws) as t:
        t.sql("UPDATE audit_events SET reason = ? WHERE seq = ?", "rewritten", 5)
    here, there = both.local("victor", "audit", "verify"), both.remote("victor", "audit", "verify")
    assert here == there and here[0] == 1 and "audit trail BROKEN at event 5" in here[2]
    here, there = both.local("victor", "audit", "verify", "--json"), both.remote("victor", "audit", "verify", "--json")
    assert here == there and here[0] == 1 and json.loads(here[1])["ok"] is False
