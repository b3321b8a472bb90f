"""Trust is anchored outside the database: a key, a signature or an approval that only SQL put
there is void, and the bundle keyring can be neither edited nor rolled back."""

from __future__ import annotations

import base64
import uuid
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from medops.audit import AuditFilter, list_events
from medops.audit.state_check import check_state
from medops.errors import IntegrityError, NotFound
from medops.identity.signatures import SignatureView, record_hash
from medops.public_keys import encode_public, key_id
from medops.registry import approvals, keyring, stages, transfer, versions
from medops.registry.bundles import BundleError
from medops.workspace import Workspace, init_workspace
from tests.audit.tamper import tampering
from tests.factories import PASSWORD

pytestmark = pytest.mark.usefixtures("pseudonym_key")


def _forge_approval(ws: Workspace, ref: tuple[str, int], username: str, role: str) -> str:
    """What a database writer can do: their own key, a signature made with it, an approval row."""
    version = versions.get(ws, *ref)
    mine = Ed25519PrivateKey.generate()
    kid = key_id(mine.public_key())
    unsigned = SignatureView(
        id=uuid.uuid4().hex,
        username=username,
        printed_name="Victor Okafor",
        meaning=approvals.APPROVED,
        record_type="model_version",
        record_id=version.ref,
        record_hash=record_hash(version.record()),
        signed_at="2026-12-01T10:00:00.000000Z",
        key_id=kid,
        value="",
    )
    value = base64.b64encode(mine.sign(unsigned.manifest())).decode()
    with tampering(ws) as db:
        user_id = db.sql("SELECT id FROM users WHERE username = ?", username)[0][0]
        db.sql(
            "INSERT INTO signing_keys (key_id, public_key, created_at) VALUES (?, ?, ?)",
            kid,
            encode_public(mine.public_key()),
            "2026-12-01 10:00:00",
        )
        db.sql(
            "INSERT INTO signatures (id, user_id, username, printed_name, meaning, record_type, record_id, "
            "record_hash, signed_at, key_id, value) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            unsigned.id,
            user_id,
            username,
            unsigned.printed_name,
            unsigned.meaning,
            unsigned.record_type,
            unsigned.record_id,
            unsigned.record_hash,
            unsigned.signed_at,
            kid,
            value,
        )
        db.sql(
            "INSERT INTO model_approvals (id, model, version, role, username, decision, signature_id, at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            uuid.uuid4().hex,
            ref[0],
            ref[1],
            role,
            username,
            "approved",
            unsigned.id,
            "2026-12-01 10:00:00",
        )
    return kid


def test_an_approval_forged_with_inserts_is_void_and_promotes_nothing(registry: tuple[Workspace, str]) -> None:
    ws, run = registry
    versions.register(ws, run, "readmission", actor="alice")
    approvals.approve(ws, ("readmission", 1), "carol", PASSWORD, "clinical_reviewer")
    kid = _forge_approval(ws, ("readmission", 1), "victor", "validator")
    forged = [d for d in approvals.decisions(ws, ("readmission", 1)) if d.role == "validator"]
    assert len(forged) == 1 and not forged[0].valid
    assert f"made with key {kid}, not this workspace's pinned key" in forged[0].problems[0]
    assert approvals.missing(ws, versions.get(ws, "readmission", 1)) == [
        f"the validator signature is void: {forged[0].problems[0]}"
    ]
    with pytest.raises(IntegrityError, match="'readmission' was changed outside medops after audit event"):
        stages.promote(ws, "readmission", 1, "production", actor="ming", reason="go live")
    assert {p.entity_id for p in check_state(ws.db).problems} == {"readmission", kid}  # the rows are named too


def test_signatures_verify_with_the_pinned_key_alone_and_a_swapped_key_file_signs_nothing(
    registry: tuple[Workspace, str], tmp_path: Path
) -> None:
    ws, run = registry
    versions.register(ws, run, "readmission", actor="alice")
    approvals.approve(ws, ("readmission", 1), "carol", PASSWORD, "clinical_reviewer")
    assert ws.settings.signing_public_key == encode_public(ws.signing_key().public_key())
    auditor = Workspace.from_settings(replace(ws.settings, signing_key_file=str(tmp_path / "no-key-here")))
    with auditor:  # an auditor without the private key still verifies, with the key medops.toml pins
        assert [d.valid for d in approvals.decisions(auditor, ("readmission", 1))] == [True]
    other = tmp_path / "other.ed25519"
    other.write_text(base64.b64encode(Ed25519PrivateKey.generate().private_bytes_raw()).decode())
    other.chmod(0o600)
    swapped = Workspace.from_settings(replace(ws.settings, signing_key_file=str(other)))
    with swapped, pytest.raises(IntegrityError, match="not the one pinned in medops.toml"):
        approvals.approve(swapped, ("readmission", 1), "victor", PASSWORD, "validator")
    assert [d.role for d in approvals.decisions(ws, ("readmission", 1))] == ["clinical_reviewer"]


@pytest.fixture
def two_sites(registry: tuple[Workspace, str], tmp_path: Path) -> tuple[Workspace, Workspace, Path]:
    ws, run = registry
    versions.register(ws, run, "readmission", actor="alice")
    exported = tmp_path / "readmission-1.medops"
    transfer.export(ws, "readmission:1", exported, actor="admin")
    other = init_workspace(
        tmp_path / "site-b", admin_username="root", admin_full_name="Rita Root", admin_password=PASSWORD
    )
    return ws, other, exported


def test_a_key_trusted_only_in_the_database_is_not_trusted_and_refusals_are_audited(
    two_sites: tuple[Workspace, Workspace, Path],
) -> None:
    ws, other, exported = two_sites
    public = transfer.public_key(ws)
    with other:
        with tampering(other) as db:
            db.sql(
                "INSERT INTO trusted_bundle_keys (key_id, public_key, note, trusted_by, trusted_at) "
                "VALUES (?, ?, ?, ?, ?)",
                key_id(ws.workspace_public_key()),
                public,
                "slipped in",
                "root",
                "2026-12-01 10:00:00",
            )
        with pytest.raises(BundleError, match="does not trust"):
            transfer.import_bundle(other, exported, actor="root")
        refused = list_events(other.db, AuditFilter(action="model.import.refused"))
        assert [(e.actor, e.after["code"]) for e in refused] == [("root", "bundle_key_untrusted")]
        assert [p.kind for p in check_state(other.db).problems] == ["unexplained"]


def test_trust_and_distrust_change_the_signed_keyring_and_its_rollback_is_refused(
    two_sites: tuple[Workspace, Workspace, Path],
) -> None:
    ws, other, exported = two_sites
    stranger = encode_public(Ed25519PrivateKey.generate().public_key())
    with other:
        kid = transfer.trust_key(other, transfer.public_key(ws), note="site A registry", actor="root")
        transfer.trust_key(other, stranger, note="site C", actor="root")
        assert transfer.import_bundle(other, exported, actor="root").version == 1
        with pytest.raises(NotFound, match="not trusted here"):
            transfer.distrust_key(other, "0" * 16, reason="typo", actor="root")
        transfer.distrust_key(other, kid, reason="site A key compromised", actor="root")
        with pytest.raises(BundleError, match="does not trust"):
            transfer.import_bundle(other, exported, actor="root")
        assert keyring.load(other).version == 3 and check_state(other.db).ok
        store = Path(other.settings.artifact_root) / keyring.NAMESPACE
        newest, older = store / "000003.json", store / "000002.json"  # older still trusts site A's key
        saved = newest.read_bytes()
        newest.chmod(0o600)
        newest.write_bytes(older.read_bytes())  # rolled back by someone with the artifact store
        with pytest.raises(IntegrityError, match="differs from the one the audit trail recorded"):
            transfer.import_bundle(other, exported, actor="root")
        newest.unlink()
        with pytest.raises(IntegrityError, match="missing from the artifact store"):
            transfer.trusted_keys(other)
        newest.write_bytes(saved)
        assert kid not in transfer.trusted_keys(other)
