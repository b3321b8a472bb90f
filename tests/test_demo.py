"""The main job: the demo runs end to end and proves the chain (run once per session: demo_run)."""

from __future__ import annotations

from tests.factories import DemoRun


def test_demo_runs_and_catches_tampering(demo_run: DemoRun) -> None:
    result = demo_run.result
    lines = [step for step, _ in result.steps]
    assert result.chain_ok and result.events >= 15
    assert result.tamper_caught_at == 5
    assert {"users", "e-signature", "permission denied", "audit verify", "tamper test"} <= set(lines)
    # Production through the governed path: refused before the signatures, then promoted on the bound evaluation.
    assert {"register", "promote refused", "approve", "promote"} <= set(lines)
    outcomes = dict(result.steps)
    assert "is in production" in outcomes["promote"] and "pseudonym key is fixed" in outcomes["init"]
