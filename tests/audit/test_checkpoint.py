"""Every committed batch publishes one signed checkpoint; verification only reads them."""

from __future__ import annotations

import stat
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from medops.audit import NewEvent
from medops.audit.anchoring import FORGED
from medops.audit.checkpoint import Checkpoint, sign_checkpoint
from medops.audit.checkpoint_store import checkpoint_names, read_checkpoint
from medops.errors import ConfigError, IntegrityError, StoreError
from medops.identity import Role
from medops.workspace import Workspace
from tests.factories import PASSWORD, log_in, remove_checkpoint_store


def _grow(ws: Workspace, n: int) -> list[int]:
    return ws.trail.record_many([NewEvent("admin", "test.event", "thing", str(i)) for i in range(n)])


def _checkpoints(ws: Workspace) -> list[Checkpoint]:
    return sorted((read_checkpoint(ws.checkpoints, n) for n in checkpoint_names(ws.checkpoints)), key=lambda c: c.size)


def test_every_committed_batch_publishes_one_checkpoint_of_exactly_that_batch(workspace: Workspace) -> None:
    start = len(_checkpoints(workspace))
    assert start >= 1  # init's own changes are anchored already
    seqs = _grow(workspace, 5)
    workspace.users.add("admin", "alice", "Alice Moreau", PASSWORD, [Role.DATA_SCIENTIST])
    cps = _checkpoints(workspace)
    assert len(cps) == start + 2
    batch, change = cps[-2], cps[-1]
    assert (batch.first, batch.size) == (seqs[0], seqs[-1])
    assert (change.first, change.size) == (seqs[-1] + 1, seqs[-1] + 1)
    pub = workspace.workspace_public_key()
    assert all(cp.signed_by(pub) and cp.origin == workspace.settings.workspace_id for cp in cps)
    report = workspace.verify_audit()
    assert report.ok and report.anchored_at == change.size and report.checkpoints == len(cps)


def test_verify_only_reads(workspace: Workspace) -> None:
    _grow(workspace, 3)
    before = checkpoint_names(workspace.checkpoints)
    assert workspace.verify_audit().ok and workspace.verify_audit().ok
    assert checkpoint_names(workspace.checkpoints) == before


def test_the_store_is_outside_the_workspace_private_and_write_once(workspace: Workspace) -> None:
    root = Path(workspace.settings.checkpoint_root)
    assert root.parent == Path(workspace.settings.signing_key_file).parent
    assert not root.is_relative_to(workspace.settings.home)
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    name = checkpoint_names(workspace.checkpoints)[0]
    assert stat.S_IMODE((root / name).stat().st_mode) == 0o400
    cp = read_checkpoint(workspace.checkpoints, name)
    with pytest.raises(Exception, match="never overwrites"):
        workspace.checkpoints.write_once(name, cp.render().encode())


def test_no_key_refuses_before_writing(workspace: Workspace, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A process that cannot sign must not write: its batch could never be anchored."""
    head = workspace.verify_audit().chain.head_seq
    monkeypatch.setenv("MEDOPS_SIGNING_KEY_FILE", str(tmp_path / "absent.key"))
    ws = Workspace.open(workspace.settings.home)
    try:
        with pytest.raises(ConfigError) as refused:
            ws.users.add("admin", "mallory", "Mal Lory", PASSWORD, [Role.ADMIN])
        assert refused.value.code == "checkpoint_key_missing" and "can't sign" in refused.value.message
        assert ws.verify_audit().ok  # an auditor without the key verifies with the key medops.toml pins
        assert ws.verify_audit(workspace.workspace_public_key()).ok  # or with the public key given
        unpinned = Workspace.from_settings(replace(ws.settings, signing_public_key=""))
        with unpinned, pytest.raises(ConfigError, match="pins no public key"):
            unpinned.verify_audit()
    finally:
        ws.close()
    assert workspace.verify_audit().chain.head_seq == head


def test_a_failed_publish_is_reported_and_blocks_writes_until_published(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    from medops.audit import publisher

    real = publisher.publish_checkpoint

    def down(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(publisher, "publish_checkpoint", down)
    with pytest.raises(StoreError, match="the change was saved") as saved:
        _grow(workspace, 1)
    assert "No space left" in saved.value.message
    head = workspace.verify_audit().chain.head_seq
    with pytest.raises(StoreError, match="still unpublished"):
        _grow(workspace, 1)
    assert workspace.verify_audit().chain.head_seq == head  # refused before writing
    monkeypatch.setattr(publisher, "publish_checkpoint", real)
    _grow(workspace, 1)  # publishes the pending checkpoint first, then its own
    assert workspace.verify_audit().ok


def test_a_checkpoint_signed_by_another_key_is_refused(workspace: Workspace) -> None:
    _grow(workspace, 2)
    cp = _checkpoints(workspace)[-1]
    forged = sign_checkpoint(cp.origin, cp.first, cp.size + 10, cp.head, cp.time, Ed25519PrivateKey.generate())
    workspace.checkpoints.write_once(forged.name, forged.render().encode())
    report = workspace.verify_audit()
    assert not report.ok and report.problem is not None and report.problem.kind == FORGED
    assert forged.name in report.problem.detail and "not signed by the workspace key" in report.problem.detail


def test_a_malformed_checkpoint_is_named(workspace: Workspace) -> None:
    name = "999999999999-000000000001-0123456789abcdef.checkpoint"
    workspace.checkpoints.write_once(name, b"hello")
    with pytest.raises(IntegrityError, match="malformed"):
        read_checkpoint(workspace.checkpoints, name)
    report = workspace.verify_audit()
    assert report.problem is not None and report.problem.kind == FORGED and name in report.problem.detail


def test_cli_verify_prints_the_checkpoints_and_takes_a_public_key(
    workspace: Workspace, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from medops.cli.main import main
    from medops.public_keys import encode_public

    monkeypatch.setenv("MEDOPS_HOME", str(workspace.settings.home))
    log_in(workspace, "admin")  # two events: the session opened, the login
    _grow(workspace, 1)
    with pytest.raises(SystemExit) as ok_exit:
        main(["audit", "verify"])
    out = capsys.readouterr().out
    assert ok_exit.value.code == 0 and "signed checkpoint" in out and "newest at event 5" in out
    monkeypatch.setenv("MEDOPS_SIGNING_KEY_FILE", str(tmp_path / "absent.key"))
    with pytest.raises(SystemExit) as no_key:
        main(["audit", "verify"])
    assert no_key.value.code == 0  # without the private key: the key pinned in medops.toml verifies
    with pytest.raises(SystemExit) as with_key:
        main(["audit", "verify", "--public-key", encode_public(workspace.workspace_public_key())])
    assert with_key.value.code == 0
    other = encode_public(Ed25519PrivateKey.generate().public_key())
    with pytest.raises(SystemExit) as wrong_key:
        main(["audit", "verify", "--public-key", other])
    assert wrong_key.value.code == 1 and "not signed by the workspace key" in capsys.readouterr().err


def test_a_trail_from_before_per_batch_checkpoints_is_anchored_once_by_an_admin(
    workspace: Workspace, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An upgraded workspace: events, no checkpoint store yet. Verify fails until an admin anchors it."""

    from medops.caller import Caller
    from medops.cli.main import main
    from medops.errors import Conflict, PermissionDenied
    from medops.services import Services

    _grow(workspace, 4)
    remove_checkpoint_store(workspace)
    assert not workspace.verify_audit().ok
    workspace.users.add("admin", "alice", "Alice Moreau", PASSWORD, [Role.DATA_SCIENTIST])  # published anew
    audit = Services(workspace).audit
    with pytest.raises(PermissionDenied):
        audit.anchor(Caller("alice"), "not mine to do")
    monkeypatch.setenv("MEDOPS_HOME", str(workspace.settings.home))
    log_in(workspace, "admin")
    with pytest.raises(SystemExit) as refused:
        main(["audit", "anchor", "--reason", "upgrade"])  # the store holds checkpoints again
    assert refused.value.code == 1 and "anchored already" in capsys.readouterr().err
    remove_checkpoint_store(workspace)
    with pytest.raises(SystemExit) as anchored:
        main(["audit", "anchor", "--reason", "trail from before per-change checkpoints, verified"])
    assert anchored.value.code == 0 and "anchored through event" in capsys.readouterr().out
    report = workspace.verify_audit()
    assert report.ok and report.checkpoints == 1
    cp = _checkpoints(workspace)[0]
    assert cp.first == 1 and cp.size == report.chain.head_seq
    with pytest.raises(Conflict):
        audit.anchor(Caller("admin"), "again")
