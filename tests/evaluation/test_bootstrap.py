"""Bootstrap intervals: subgroup values agree with Fairlearn, intervals cover the truth at about the
nominal rate, and the same seed gives the same intervals."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    equalized_odds_difference,
    selection_rate,
    true_negative_rate,
)
from scipy.stats import rankdata
from sklearn import metrics as skm

from medops.errors import InvalidInput
from medops.evaluation.bootstrap import bootstrap, paired_difference
from medops.evaluation.metrics import calibration
from medops.evaluation.subgroups import build_groups


def _cohort(seed: int, n: int = 4000) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "sex": rng.choice(["F", "M"], n),
            "race": rng.choice(["Asian", "Black", "Hispanic", "White"], n, p=[0.1, 0.2, 0.2, 0.5]),
        }
    )
    frame["y"] = (rng.random(n) < 0.2).astype(np.int8)
    signal = 1.4 * frame["y"] - 0.6 * (frame["sex"] == "F") * frame["y"]  # weaker for women
    frame["p"] = 1 / (1 + np.exp(-(rng.normal(0, 1, n) + signal - 1.2)))
    return frame


def _run(frame: pd.DataFrame, intersections: list[list[str]], resamples: int = 200, seed: int = 0):  # type: ignore[no-untyped-def]
    groups = build_groups({"sex": frame["sex"], "race": frame["race"]}, intersections, len(frame))
    dist = bootstrap(
        frame["y"].to_numpy(),
        frame["p"].to_numpy(),
        groups.strata,
        groups.membership,
        0.3,
        resamples=resamples,
        seed=seed,
    )
    return groups, dist


def test_subgroup_values_and_gaps_agree_with_fairlearn() -> None:
    frame = _cohort(1)
    groups, dist = _run(frame, [["sex", "race"]])
    y, pred = frame["y"], (frame["p"] >= 0.3).astype(int)
    frame_metrics = MetricFrame(
        metrics={
            "sensitivity": skm.recall_score,
            "specificity": true_negative_rate,
            "ppv": skm.precision_score,
            "selection_rate": selection_rate,
        },
        y_true=y,
        y_pred=pred,
        sensitive_features=frame[["sex", "race"]],
    )
    by_group = frame_metrics.by_group
    names = dict(enumerate(groups.names))
    checked = 0
    for g, (attribute, value) in names.items():
        if attribute != "sex × race":
            continue
        expected = by_group.loc[tuple(value.split(" × "))]
        for metric in ("sensitivity", "specificity", "ppv", "selection_rate"):
            assert dist.exact[g, dist.metrics.index(metric)] == pytest.approx(expected[metric], abs=1e-12)
        checked += 1
    assert checked == 8
    for attribute in ("sex", "race"):
        rows = [g for g, (a, _) in names.items() if a == attribute]
        tpr, fpr, sr = (dist.metrics.index(m) for m in ("sensitivity", "fpr", "selection_rate"))
        ours_odds = max(
            max(abs(dist.exact[g, tpr] - dist.exact[0, tpr]), abs(dist.exact[g, fpr] - dist.exact[0, fpr]))
            for g in rows
        )
        ours_parity = max(abs(dist.exact[g, sr] - dist.exact[0, sr]) for g in rows)
        features = frame[attribute]
        assert ours_odds == pytest.approx(
            equalized_odds_difference(y, pred, sensitive_features=features, method="to_overall"), abs=1e-12
        )
        assert ours_parity == pytest.approx(
            demographic_parity_difference(y, pred, sensitive_features=features, method="to_overall"), abs=1e-12
        )
    women = next(g for g, name in names.items() if name == ("sex", "F"))
    gap, interval = dist.gap(women, "sensitivity", 0.95)
    assert gap < 0 and interval.low < gap < interval.high  # the weaker signal for women shows, with its interval


def test_the_same_seed_gives_the_same_intervals_and_another_seed_differs() -> None:
    frame = _cohort(2, n=1500)
    _, first = _run(frame, [], seed=5)
    _, again = _run(frame, [], seed=5)
    _, other = _run(frame, [], seed=6)
    assert np.array_equal(first.resampled, again.resampled, equal_nan=True)
    assert not np.array_equal(first.resampled, other.resampled, equal_nan=True)
    auroc = first.interval(0, "auroc", 0.95)
    assert auroc.low < first.exact[0, first.metrics.index("auroc")] < auroc.high


@pytest.mark.slow
def test_intervals_cover_the_true_value_at_about_the_nominal_rate() -> None:
    """Binormal scores: the true AUROC is Phi(mu / sqrt 2), the true sensitivity at t is 1 - Phi(logit t - mu)."""
    mu, t, reps = 1.0, 0.5, 200
    true_auroc = 0.5 * (1 + math.erf(mu / 2))  # Phi(mu / sqrt 2)
    true_sens = 1 - 0.5 * (1 + math.erf((0.0 - mu) / math.sqrt(2)))  # logit(0.5) = 0
    rng = np.random.default_rng(11)
    covered = {"auroc": 0, "sensitivity": 0}
    for rep in range(reps):
        y = np.r_[np.ones(100, dtype=np.int8), np.zeros(300, dtype=np.int8)]
        score = rng.normal(0, 1, 400) + mu * y
        p = 1 / (1 + np.exp(-score))
        dist = bootstrap(y, p, np.zeros(400, dtype=int), np.ones((1, 1), bool), t, resamples=400, seed=rep)
        for name, truth in (("auroc", true_auroc), ("sensitivity", true_sens)):
            ci = dist.interval(0, name, 0.95)
            covered[name] += ci.low <= truth <= ci.high
    for name, hits in covered.items():
        assert 0.88 <= hits / reps <= 0.99, (name, hits / reps)


def test_paired_difference_sees_a_worse_model() -> None:
    frame = _cohort(3)
    y, good = frame["y"].to_numpy(), frame["p"].to_numpy()
    rng = np.random.default_rng(0)
    worse = np.clip(good + rng.normal(0, 0.3, len(good)), 0, 1)
    paired = paired_difference(y, worse, good, "auroc", 0.3, resamples=300, seed=1, level=0.95)
    difference, ci = paired.difference, paired.interval
    assert paired.challenger == pytest.approx(skm.roc_auc_score(y, worse), abs=1e-12)
    assert paired.champion == pytest.approx(skm.roc_auc_score(y, good), abs=1e-12)
    assert difference == pytest.approx(skm.roc_auc_score(y, worse) - skm.roc_auc_score(y, good), abs=1e-12)
    assert ci.high < 0  # clearly worse, and the paired interval knows it
    again = paired_difference(y, good, good, "auroc", 0.3, resamples=100, seed=1, level=0.95)
    same, same_ci = again.difference, again.interval
    assert same == 0 and same_ci.low == pytest.approx(0, abs=1e-12) and same_ci.high == pytest.approx(0, abs=1e-12)


def _clustered(patients: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Repeat stays: a patient's stays share a frailty that drives both the score and the outcome."""
    rng = np.random.default_rng(seed)
    stays = rng.integers(1, 6, patients)
    patient = np.repeat(np.arange(patients), stays)
    frailty = rng.normal(0, 1.5, patients)[patient]
    score = 1 / (1 + np.exp(-(frailty + rng.normal(0, 0.5, len(patient)))))
    y = (rng.random(len(patient)) < 1 / (1 + np.exp(-(frailty - 0.5)))).astype(np.int8)
    return y, score, patient


def _overall(y: np.ndarray, p: np.ndarray, **kwargs: object) -> object:
    return bootstrap(y, p, np.zeros(len(y), int), np.ones((1, 1), bool), 0.5, **kwargs)  # type: ignore[arg-type]


def _mann_whitney_auroc(y: np.ndarray, p: np.ndarray) -> float:
    """AUROC as the Mann-Whitney U of the positives' ranks (ties share their mean rank)."""
    ranks = rankdata(p)
    positives = int(y.sum())
    negatives = len(y) - positives
    return float((ranks[y == 1].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def test_the_hand_auroc_is_sklearns() -> None:
    y, p, _ = _clustered(300, seed=4)
    assert _mann_whitney_auroc(y, np.round(p, 2)) == pytest.approx(skm.roc_auc_score(y, np.round(p, 2)), abs=1e-12)


def test_a_cluster_bootstrap_resamples_patients_like_a_hand_loop() -> None:
    y, p, patient = _clustered(400, seed=0)
    clustered = _overall(y, p, resamples=2000, seed=1, clusters=patient)
    rows = _overall(y, p, resamples=2000, seed=1)
    rng = np.random.default_rng(5)
    stays = [np.flatnonzero(patient == k) for k in range(400)]
    hand = []
    for _ in range(2000):  # the textbook cluster bootstrap: draw patients, keep all their stays
        picked = np.concatenate([stays[k] for k in rng.integers(0, 400, 400)])
        hand.append(_mann_whitney_auroc(y[picked], p[picked]))
    hand_width = float(np.diff(np.percentile(hand, [2.5, 97.5]))[0])
    ci = clustered.interval(0, "auroc", 0.95)  # type: ignore[attr-defined]
    row_ci = rows.interval(0, "auroc", 0.95)  # type: ignore[attr-defined]
    assert abs((ci.high - ci.low) / hand_width - 1) < 0.12
    assert (row_ci.high - row_ci.low) < 0.92 * (ci.high - ci.low)  # rows as if independent: too narrow
    paired_rows = paired_difference(y, p, np.sqrt(p), "sensitivity", 0.5, resamples=1000, seed=2, level=0.95)
    paired = paired_difference(y, p, p**2, "auroc", 0.5, resamples=1000, seed=2, level=0.95, clusters=patient)
    assert paired.difference == pytest.approx(0.0, abs=1e-12)  # a monotone transform ranks the same
    assert math.isfinite(paired_rows.interval.low) and paired.interval.low <= 0 <= paired.interval.high


@pytest.mark.slow
def test_cluster_intervals_keep_their_coverage_where_row_intervals_lose_it() -> None:
    big_y, big_p, _ = _clustered(200_000, seed=99)
    truth = skm.roc_auc_score(big_y, big_p)
    covered = {"rows": 0, "patients": 0}
    repetitions = 150
    for rep in range(repetitions):
        y, p, patient = _clustered(300, seed=rep)
        for name, clusters in (("rows", None), ("patients", patient)):
            ci = _overall(y, p, resamples=400, seed=rep, clusters=clusters).interval(0, "auroc", 0.95)  # type: ignore[attr-defined]
            covered[name] += ci.low <= truth <= ci.high
    assert 0.88 <= covered["patients"] / repetitions <= 0.99, covered
    assert covered["rows"] < covered["patients"], covered


def test_between_group_differences_and_ratios_agree_with_fairlearn() -> None:
    from fairlearn.metrics import demographic_parity_ratio, equalized_odds_ratio

    from medops.evaluation.between import between_groups

    frame = _cohort(2)
    groups, dist = _run(frame, [])
    y, pred = frame["y"], (frame["p"] >= 0.3).astype(int)
    eligible = list(range(1, len(groups.names)))
    docs = {d["attribute"]: d for d in between_groups(dist, groups.names, eligible, ["equalized_odds",
            "demographic_parity", "equal_opportunity"], 0.95)}  # fmt: skip
    for attribute in ("sex", "race"):
        features = frame[attribute]
        gaps = docs[attribute]["gaps"]
        odds = equalized_odds_difference(y, pred, sensitive_features=features, method="between_groups")
        assert gaps["equalized_odds"]["value"] == pytest.approx(odds, abs=1e-12)
        assert gaps["equalized_odds"]["ratio"] == pytest.approx(
            equalized_odds_ratio(y, pred, sensitive_features=features, method="between_groups"), abs=1e-12
        )
        parity = demographic_parity_difference(y, pred, sensitive_features=features, method="between_groups")
        assert gaps["demographic_parity"]["value"] == pytest.approx(parity, abs=1e-12)
        assert gaps["demographic_parity"]["ratio"] == pytest.approx(
            demographic_parity_ratio(y, pred, sensitive_features=features, method="between_groups"), abs=1e-12
        )
        recall = MetricFrame(metrics=skm.recall_score, y_true=y, y_pred=pred, sensitive_features=features)
        assert gaps["equal_opportunity"]["value"] == pytest.approx(recall.difference(method="between_groups"))
        entry = gaps["equal_opportunity"]
        assert entry["low"] <= entry["value"] <= entry["high"] and entry["ratio_low"] <= entry["ratio_high"]
    assert docs["sex"]["gaps"]["equal_opportunity"]["lowest"] == "F"  # the weaker signal for women


def test_a_between_groups_gap_can_fail_where_every_gap_to_overall_passes() -> None:
    """Two groups on either side of the population, each within 0.1 of it, 0.16 apart."""
    from medops.evaluation.gates import subgroup_gates
    from medops.evaluation.spec import EvaluateSpec

    def entry(value: float) -> dict[str, float]:
        return {"value": value, "low": value - 0.01, "high": value + 0.01}

    groups = [
        {"attribute": "site", "group": g, "kinds": ["site"], "too_small": False, "flagged": [],
         "gaps": {"equal_opportunity": entry(v)}}
        for g, v in (("north", 0.08), ("south", -0.08))
    ]  # fmt: skip
    between = [
        {"attribute": "site", "groups": ["north", "south"], "gaps": {"equal_opportunity": {
            "value": 0.16, "low": 0.12, "high": 0.2, "ratio": 0.75, "ratio_low": 0.7, "ratio_high": 0.8,
            "highest": "north", "lowest": "south"}}}
    ]  # fmt: skip
    overall = EvaluateSpec.model_validate({"subgroups": {"attributes": {"site": {}}},
                                           "policy": {"subgroup_gaps": {"equal_opportunity": 0.1}}})  # fmt: skip
    assert [g.passed for g in subgroup_gates(overall, groups, between)] == [True]
    pairwise = EvaluateSpec.model_validate(
        {
            "subgroups": {"attributes": {"site": {}}},
            "policy": {"subgroup_gaps": {"equal_opportunity": {"max": 0.1, "min_ratio": 0.8,
                                                               "compare": "between_groups"}}},
        }
    )  # fmt: skip
    difference, ratio = subgroup_gates(pairwise, groups, between)
    assert not difference.passed and "north against south, difference 0.160" in difference.why
    assert not ratio.passed and ratio.value == 0.75
    with pytest.raises(ValueError, match="min_ratio compares groups with each other"):
        EvaluateSpec.model_validate(
            {"subgroups": {"attributes": {"site": {}}}, "policy": {"subgroup_gaps": {"auroc": {"min_ratio": 0.9}}}}
        )


def _citl(y: np.ndarray, p: np.ndarray) -> float:
    """Calibration-in-the-large by hand: the intercept a solving sum(y - expit(a + logit p)) = 0."""
    from scipy.optimize import brentq
    from scipy.special import expit, logit

    offset = logit(p)
    return float(brentq(lambda a: float((y - expit(a + offset)).sum()), -10, 10, xtol=1e-12))


def test_an_unstratified_bootstrap_lets_the_event_rate_vary_like_a_hand_loop() -> None:
    rng = np.random.default_rng(21)
    p = 1 / (1 + np.exp(-rng.normal(-2, 0.6, 900)))
    y = (rng.random(900) < p).astype(np.int8)
    free = _overall(y, p, resamples=2000, seed=3, stratified=False)
    fixed = _overall(y, p, resamples=2000, seed=3)
    hand = []
    for _ in range(1000):  # the textbook bootstrap: draw rows, whatever their label
        picked = rng.integers(0, 900, 900)
        hand.append(_citl(y[picked], p[picked]))
    hand_width = float(np.diff(np.percentile(hand, [2.5, 97.5]))[0])
    ci = free.interval(0, "calibration_intercept", 0.95)  # type: ignore[attr-defined]
    fixed_ci = fixed.interval(0, "calibration_intercept", 0.95)  # type: ignore[attr-defined]
    assert free.exact[0, free.metrics.index("calibration_intercept")] == pytest.approx(_citl(y, p), abs=1e-6)  # type: ignore[attr-defined]
    assert abs((ci.high - ci.low) / hand_width - 1) < 0.12
    assert (fixed_ci.high - fixed_ci.low) < 0.5 * hand_width  # the event count held fixed: far too narrow


@pytest.mark.slow
def test_unstratified_calibration_intervals_cover_a_calibrated_model() -> None:
    covered = {True: 0, False: 0}
    repetitions = 150
    for rep in range(repetitions):
        rng = np.random.default_rng(1000 + rep)
        p = 1 / (1 + np.exp(-rng.normal(-2, 0.6, 600)))
        y = (rng.random(600) < p).astype(np.int8)  # calibrated: the true intercept is 0
        for stratified in covered:
            dist = _overall(y, p, resamples=400, seed=rep, stratified=stratified)
            ci = dist.interval(0, "calibration_intercept", 0.95)  # type: ignore[attr-defined]
            covered[stratified] += ci.low <= 0 <= ci.high
    assert 0.88 <= covered[False] / repetitions <= 0.99, covered
    assert covered[True] / repetitions < 0.6, covered


def test_one_thread_gives_the_same_values_as_the_pool() -> None:
    """The chunks' seeds come from the run's seed, not from which thread ran them: a small test set on the
    calling thread alone and on the pool gives the same resamples and the same numbers, bit for bit."""
    frame = _cohort(5, n=300)
    groups = build_groups({"sex": frame["sex"], "race": frame["race"]}, [["sex", "race"]], len(frame))
    args = (frame["y"].to_numpy(), frame["p"].to_numpy(), groups.strata, groups.membership, 0.3)
    alone = bootstrap(*args, resamples=250, seed=4, threads=1)
    pooled = bootstrap(*args, resamples=250, seed=4, threads=2)
    assert np.array_equal(alone.exact, pooled.exact, equal_nan=True)
    assert np.array_equal(alone.resampled, pooled.resampled, equal_nan=True)
    assert alone.interval(0, "auroc", 0.95) == pooled.interval(0, "auroc", 0.95)
    with pytest.raises(InvalidInput):
        bootstrap(*args, resamples=100, seed=4, threads=0)


def test_the_calibration_fits_match_the_plain_newton_formulas() -> None:
    """The fits reuse buffers for speed; they must give what the textbook Newton steps give."""
    rng = np.random.default_rng(3)
    score = np.sort(rng.uniform(0.02, 0.98, 40))
    counts = rng.integers(1, 15, (25, 40))
    pos = rng.binomial(counts, score).astype(np.float64)  # labels that follow the scores: every fit converges
    neg = counts - pos
    (a, b), c = calibration(pos, neg, score)
    x = np.log(score / (1 - score))
    for row in range(25):
        fit_a, fit_b = 0.0, 1.0
        for _ in range(12):
            mu = 1 / (1 + np.exp(-(fit_a + fit_b * x)))
            total = pos[row] + neg[row]
            resid, w = pos[row] - total * mu, total * mu * (1 - mu)
            grad = np.array([resid.sum(), (resid * x).sum()])
            hess = np.array([[w.sum(), (w * x).sum()], [(w * x).sum(), (w * x * x).sum()]])
            step = np.linalg.solve(hess, grad)
            fit_a, fit_b = fit_a + step[0], fit_b + step[1]
        assert a[row] == pytest.approx(fit_a, abs=1e-9) and b[row] == pytest.approx(fit_b, abs=1e-9)
        assert np.isfinite(c[row])
