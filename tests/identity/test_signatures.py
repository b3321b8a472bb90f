"""E-signatures: re-authentication, binding to the record, tamper evidence."""

from __future__ import annotations

import pytest

from medops.audit import AuditFilter, list_events
from medops.errors import AuthenticationFailed, InvalidInput
from medops.workspace import Workspace
from tests.audit.tamper import tampering
from tests.factories import PASSWORD

RECORD_A = {"model": "readmission", "version": 3, "bundle": "ab" * 32}
RECORD_B = {"model": "readmission", "version": 4, "bundle": "cd" * 32}


def _sign(ws: Workspace, record: dict[str, object], record_id: str = "A", password: str = PASSWORD):  # type: ignore[no-untyped-def]
    return ws.signatures.sign(
        "victor",
        password,
        record_type="model_version",
        record_id=record_id,
        record=record,
        meaning="approved for production",
    )


def test_signature_records_printed_name_time_and_meaning(team: Workspace) -> None:
    sig = _sign(team, RECORD_A)
    assert sig.printed_name == "Victor Okafor" and sig.meaning == "approved for production"
    assert sig.signed_at.endswith("Z")
    assert "Victor Okafor (victor)" in sig.display()
    assert team.signatures.verify(sig.id, RECORD_A, record_type="model_version", record_id="A").valid
    event = list_events(team.db, AuditFilter(action="signature.sign"))[0]
    assert event.actor == "victor" and event.after["signature_id"] == sig.id


def test_wrong_password_is_refused_and_audited(team: Workspace) -> None:
    with pytest.raises(AuthenticationFailed):
        _sign(team, RECORD_A, password="wrong-password-here")
    assert team.signatures.for_record("model_version", "A") == []
    assert list_events(team.db, AuditFilter(actor="victor", action="auth.failed"))


def test_signature_for_a_fails_against_b(team: Workspace) -> None:
    sig = _sign(team, RECORD_A)
    check = team.signatures.verify(sig.id, RECORD_B)
    assert not check.valid and "does not match what was signed" in check.problems[0]
    assert not team.signatures.verify(sig.id, RECORD_A, record_type="model_version", record_id="B").valid


def test_changing_a_after_signing_fails(team: Workspace) -> None:
    sig = _sign(team, RECORD_A)
    changed = {**RECORD_A, "bundle": "ef" * 32}
    assert not team.signatures.verify(sig.id, changed).valid


def test_signature_moved_to_another_record_in_sql_fails(team: Workspace) -> None:
    sig = _sign(team, RECORD_A)
    with tampering(team) as t:
        t.sql(
            "UPDATE signatures SET record_id = ?, record_hash = ? WHERE id = ?",
            "B",
            team.signatures.get(sig.id).record_hash.replace("a", "b"),
            sig.id,
        )
    check = team.signatures.verify(sig.id, RECORD_B, record_type="model_version", record_id="B")
    assert not check.valid and any("altered" in p for p in check.problems)


def test_signature_needs_a_meaning(team: Workspace) -> None:
    with pytest.raises(InvalidInput, match="meaning"):
        team.signatures.sign("victor", PASSWORD, record_type="x", record_id="1", record={}, meaning=" ")
