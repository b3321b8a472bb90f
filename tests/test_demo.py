"""The main job: the demo runs end to end and proves the chain (run once per session: demo_run)."""

from __future__ import annotations

from medops.demo import DemoResult


def test_demo_runs_and_catches_tampering(demo: DemoResult) -> None:
    """The session's demo, with its artifact root given as a file:// URL, not the workspace's folder."""
    lines = [step for step, _ in demo.steps]
    assert demo.chain_ok and demo.events >= 15
    assert demo.tamper_caught_at == 5
    assert demo.state_ok and demo.state_tamper_named == ["user:alice"]  # a role granted in SQL is named
    assert {"users", "e-signature", "permission denied", "audit verify", "tamper test"} <= set(lines)
    # Production through the governed path: refused before the signatures, then promoted on the bound evaluation.
    assert {"register", "promote refused", "approve", "promote"} <= set(lines)
    outcomes = dict(demo.steps)
    promotions = [o for n, o in demo.steps if n == "promote"]
    swaps = [o for n, o in demo.steps if n == "hot swap"]
    assert "is in production" in promotions[0] and "pseudonym key is fixed" in outcomes["init"]
    artifacts = demo.home.parent / "url-artifacts"
    assert f"artifacts in {artifacts.as_uri()}" in outcomes["init"] and (artifacts / "sha256").is_dir()
    assert not (demo.home / "artifacts").exists()
    # The promoted model served over HTTP in-process: scored, a Fahrenheit temperature refused, explained.
    assert {"serve", "http predict", "http refused", "http explain", "serve stop"} <= set(lines)
    assert "pat (predictor)" in outcomes["serve"] and outcomes["http predict"].startswith("HTTP 200")
    assert "probability 0." in outcomes["http predict"]
    refused = outcomes["http refused"]
    assert refused.startswith("HTTP 422 invalid_rows") and "temperature_max_30d out_of_range" in refused
    assert outcomes["http explain"].startswith("HTTP 200: raw score") and "largest: " in outcomes["http explain"]
    # A rollback while requests flow is swapped in by the server without a failed request; every answer
    # was logged before it was sent, and replays identically.
    assert "readmission_30d:2 approved and in production" in promotions[-1]
    assert "from version 2 to 1 while answering" in swaps[0] and swaps[0].endswith("0 failed)")
    assert "answers kept before they were sent" in outcomes["prediction log"]
    assert outcomes["replay"].endswith("every answer identical")
    # Months of production after promotion, simulated: monitoring judges them, one site drawing fewer labs
    # raises the data quality alert from the fourth month on, ming acknowledges it, the report is written.
    assert {"production months", "monitor run", "alert", "alert acknowledged", "monitoring report"} <= set(lines)
    judged = outcomes["monitor run"]
    assert "6 monthly windows judged" in judged and "3 quiet" in judged and "creatinine_max_90d missing" in judged
    assert outcomes["alert"].startswith("warning data_quality on readmission_30d:1")
    # The alert's rule retrains: the pipeline reads the latest extract to a challenger, which is compared
    # with production on test rows production never trained on, waits for both signatures, and is swapped
    # into a serving server without a failed request; the alert, the run and what it made are one lineage.
    assert "the rule data_quality says retrain: true" in outcomes["retraining"]
    assert "finished" in outcomes["retraining"] and outcomes["retraining"].endswith("train, evaluate, register")
    compared = outcomes["evaluate challenger"]
    assert "it was trained on left out" in compared and "10/10 gates passed" in compared
    assert "(the 0 it was trained on" not in compared  # rows of the first extract were found and left out
    assert "readmission_30d:3 can't enter production" in [o for n, o in demo.steps if n == "promote refused"][-1]
    assert [o for n, o in demo.steps if n == "approve"][-1].startswith("victor signed readmission_30d:3")
    assert "from version 1 to 3 while answering" in swaps[1] and swaps[1].endswith("0 failed)")
    assert outcomes["lineage"].startswith("alert:") and "1 model" in outcomes["lineage"]
    report = demo.reports[-2]
    assert report.name == "monitoring.html" and "<svg" in report.read_text()
    evidence = demo.reports[-1]  # an auditor's evidence for the newest prediction, verified offline
    assert evidence.name == "evidence.html" and (evidence.parent / "manifest.sig").is_file()
    assert "bundle verified, 2 signatures valid, replayed to the same answer" in outcomes["evidence"]
    assert outcomes["evidence"].endswith("verifies with the public key alone")
    card = (report.parent / "model_card.html").read_text()  # the production model's card, beside it, links to it
    assert '<a href="monitoring.html">monitoring report</a>' in card
