"""The main job: the demo runs end to end and proves the chain."""

from __future__ import annotations

from pathlib import Path

from medops.demo import run_demo


def test_demo_runs_and_catches_tampering(tmp_path: Path) -> None:
    lines: list[str] = []
    artifacts = tmp_path / "url-artifacts"  # the artifact root as a file:// URL, not the workspace's folder
    result = run_demo(tmp_path, say=lambda step, outcome: lines.append(step), artifact_root=artifacts.as_uri())
    assert result.chain_ok and result.events >= 15
    assert result.tamper_caught_at == 5
    assert {"users", "e-signature", "permission denied", "audit verify", "tamper test"} <= set(lines)
    # Production through the governed path: refused before the signatures, then promoted on the bound evaluation.
    assert {"register", "promote refused", "approve", "promote"} <= set(lines)
    outcomes = dict(result.steps)
    assert "is in production" in outcomes["promote"] and "pseudonym key is fixed" in outcomes["init"]
    assert f"artifacts in {artifacts.as_uri()}" in outcomes["init"] and (artifacts / "sha256").is_dir()
    assert not (result.home / "artifacts").exists()
