"""Clinical validation: bootstrap intervals of every metric for every subgroup, against a plain scikit-learn loop.

Data: synthetic predictions (seeded numpy): three attributes (sex, 2 levels; race/ethnicity,
5 levels with unequal shares; age band, 4 levels), a label with about 15% prevalence, and
scores from a logistic model of a noisy view of the true risk (AUROC about 0.79; the oldest
age band's scores are noisier, AUROC about 0.73). Threshold 0.3. Groups: the overall
population, every level of each attribute, and the sex x age band intersection (20 groups;
``--no-intersection``: 12), built with ``medops.evaluation.subgroups.build_groups`` as the
product builds them.

1. Speed: ``medops.evaluation.bootstrap.bootstrap`` with 2,000 resamples of every metric on
   1,000,000 predictions (aim: under 30 s on 2 cores), against a plain loop: per resample,
   rows drawn with replacement within the positives and within the negatives (a stratified
   bootstrap, as medops draws), then for the overall population and each subgroup
   scikit-learn's roc_auc_score, average_precision_score, recall_score (sensitivity, and on
   the negatives specificity), precision_score, confusion_matrix (NPV), f1_score,
   brier_score_loss, a LogisticRegression(C=inf) on logit(score) (calibration slope), the
   calibration-in-the-large intercept (slope fixed at 1, scipy's brentq), and the ECE by a
   numpy histogram. The loop is far too slow for 2,000 resamples at this size: a few are
   timed and the time is extrapolated. Ratio = loop (extrapolated) / medops. The loop runs
   with one BLAS/OpenMP thread (``--loop-threads``), its faster setting on this machine;
   one resample with the libraries' default thread pools is timed too, for the record.
   The same 2,000 resamples drawing patients instead of rows (a cluster bootstrap; each row
   given a patient, about 2.3 rows per patient), against a hand loop that draws patients and
   gathers their rows, then computes the same metrics, timed on a few resamples.
2. Accuracy, on a smaller set from the same generator (20,000 rows, 500 resamples; the loop
   split over two processes to take about two minutes): both methods with the same number of
   resamples; the 95% percentile intervals of every group for auroc, auprc, sensitivity,
   specificity, ppv, brier, calibration_slope and ece are compared endpoint by endpoint,
   relative to the loop's interval width. The Monte-Carlo noise floor is the same measure
   between two medops runs with different seeds. medops's exact values (``Distribution.exact``)
   are checked against scikit-learn's on the full data (auroc, auprc, sensitivity,
   specificity, ppv, npv, f1, brier, to 1e-9) for every group, on both data sets.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import warnings
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.common import print_table, timed
from medops.evaluation.metrics import METRICS

THRESHOLD = 0.3
LEVEL = 0.95
TIME_AIM_S = 30.0
EXACT_TOL = 1e-9
# What the loop computes, in this order (the calibration intercept is calibration-in-the-large, as in medops).
LOOP_METRICS = tuple(m for m in METRICS if m not in ("prevalence", "selection_rate", "fpr"))
INTERVAL_METRICS = ("auroc", "auprc", "sensitivity", "specificity", "ppv", "brier", "calibration_slope", "ece")
EXACT_METRICS = ("auroc", "auprc", "sensitivity", "specificity", "ppv", "npv", "f1", "brier")
ECE_EDGES = np.linspace(0.1, 0.9, 9)
LOGIT_CLIP = 1e-6  # as medops: scores of exactly 0 or 1 are treated as 1e-6 and 1 - 1e-6

SEXES = (("female", 0.52), ("male", 0.48))
RACES = (("White", 0.58), ("Hispanic", 0.17), ("Black", 0.14), ("Asian", 0.07), ("Other", 0.04))
AGES = (("18-39", 0.24), ("40-59", 0.31), ("60-74", 0.28), ("75+", 0.17))


# --- data ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Data:
    y: np.ndarray  # (n,) int8 labels
    p: np.ndarray  # (n,) float64 scores
    attributes: dict[str, pd.Series]  # per attribute, each row's level as text


def make_data(n: int, seed: int) -> Data:
    """``n`` predictions: prevalence about 15%, AUROC about 0.79, 0.73 in the 75+ band."""
    rng = np.random.default_rng(seed)

    def draw(levels: tuple[tuple[str, float], ...]) -> np.ndarray:
        return rng.choice(len(levels), n, p=[share for _, share in levels])

    sex, race, age = draw(SEXES), draw(RACES), draw(AGES)
    age_risk = np.array([0.0, 0.25, 0.5, 0.75])[age]
    x = rng.standard_normal(n)  # the true risk signal
    risk = -2.85 + 1.7 * x + age_risk + 0.1 * sex
    y = (rng.random(n) < 1 / (1 + np.exp(-risk))).astype(np.int8)
    noise = np.where(age == 3, 1.1, 0.55)  # the model sees the signal through noise, more so for 75+
    seen = (x + noise * rng.standard_normal(n)) / np.sqrt(1 + noise**2)
    p = 1 / (1 + np.exp(-(-2.55 + 1.7 * seen + 0.8 * age_risk)))
    attributes = {
        name: pd.Series(np.array([label for label, _ in levels], dtype=object)[codes])
        for name, levels, codes in (("sex", SEXES, sex), ("race_ethnicity", RACES, race), ("age_band", AGES, age))
    }
    return Data(y, p, attributes)


def make_groups(data: Data, intersection: bool) -> Any:
    from medops.evaluation.subgroups import build_groups

    return build_groups(data.attributes, [["sex", "age_band"]] if intersection else [], len(data.y))


# --- the plain loop --------------------------------------------------------------------------


def _logit(p: np.ndarray) -> np.ndarray:
    clipped = np.clip(p, LOGIT_CLIP, 1 - LOGIT_CLIP)
    return np.asarray(np.log(clipped / (1 - clipped)))


def _intercept_in_the_large(y: np.ndarray, x: np.ndarray) -> float:
    """``a`` in logit P(y) = a + logit(score): the root of sum(sigmoid(a + x)) = sum(y)."""
    from scipy.optimize import brentq
    from scipy.special import expit

    observed = float(y.sum())
    if observed in (0.0, float(len(y))):
        return float("nan")
    return float(brentq(lambda a: float(expit(a + x).sum()) - observed, -50.0, 50.0, xtol=1e-10))


def sklearn_metrics(y: np.ndarray, p: np.ndarray, threshold: float) -> np.ndarray:
    """Every LOOP_METRICS value for one set of predictions, as a user would compute them with scikit-learn."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import (
        average_precision_score,
        brier_score_loss,
        confusion_matrix,
        f1_score,
        precision_score,
        recall_score,
        roc_auc_score,
    )

    nan = float("nan")
    if len(y) == 0:
        return np.full(len(LOOP_METRICS), nan)
    both = 0 < int(y.sum()) < len(y)
    pred = (p >= threshold).astype(np.int8)
    tn, fp, fn, tp = confusion_matrix(y, pred, labels=[0, 1]).ravel()
    x = _logit(p)
    if both:
        slope = float(LogisticRegression(C=np.inf).fit(x[:, None], y).coef_[0, 0])
    else:
        slope = nan
    ece_bin = np.digitize(p, ECE_EDGES)  # ten bins: [0, .1), ..., [.9, 1]
    mass = np.bincount(ece_bin, weights=p, minlength=10)  # per bin: the sum of scores and of labels
    hits = np.bincount(ece_bin, weights=y, minlength=10)
    return np.array(
        [
            roc_auc_score(y, p) if both else nan,
            average_precision_score(y, p) if both else nan,
            recall_score(y, pred, zero_division=np.nan),
            recall_score(y, pred, pos_label=0, zero_division=np.nan),
            precision_score(y, pred, zero_division=np.nan),
            tn / (tn + fn) if tn + fn else nan,
            f1_score(y, pred, zero_division=np.nan),
            brier_score_loss(y, p),
            slope,
            _intercept_in_the_large(y, x),
            float(np.abs(mass - hits).sum() / len(y)),
        ]
    )


def loop_resample(
    y: np.ndarray, p: np.ndarray, strata: np.ndarray, membership: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """One stratified bootstrap resample, every metric of every group: (groups, metrics)."""
    positives, negatives = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    rows = np.concatenate(
        [rng.choice(positives, len(positives), replace=True), rng.choice(negatives, len(negatives), replace=True)]
    )
    return group_metrics(y[rows], p[rows], strata[rows], membership)


def group_metrics(yb: np.ndarray, pb: np.ndarray, sb: np.ndarray, membership: np.ndarray) -> np.ndarray:
    """Every metric of every group of one resample's rows: (groups, metrics)."""
    out = np.empty((len(membership), len(LOOP_METRICS)))
    for g, member in enumerate(membership):
        keep = member[sb]
        out[g] = sklearn_metrics(yb[keep], pb[keep], THRESHOLD)
    return out


def cluster_loop_resample(
    y: np.ndarray,
    p: np.ndarray,
    strata: np.ndarray,
    membership: np.ndarray,
    stays: list[np.ndarray],
    rng: np.random.Generator,
) -> np.ndarray:
    """One cluster bootstrap resample by hand: patients drawn with replacement, each with all its rows."""
    rows = np.concatenate([stays[k] for k in rng.integers(0, len(stays), len(stays))])
    return group_metrics(y[rows], p[rows], strata[rows], membership)


def patients_of(n: int, seed: int) -> np.ndarray:
    """Each row's patient: about 2.3 stays per patient, rows of one patient together (as a test set holds them)."""
    rng = np.random.default_rng(seed)
    return np.sort(rng.integers(0, int(n / 2.3), n))


def plain_loop(
    y: np.ndarray,
    p: np.ndarray,
    strata: np.ndarray,
    membership: np.ndarray,
    resamples: int,
    seed: int,
    times: list[float] | None = None,
) -> np.ndarray:
    """(groups, metrics, resamples) from the plain loop; each resample's seconds appended to ``times``."""
    rng = np.random.default_rng(seed)
    out = np.empty((len(membership), len(LOOP_METRICS), resamples))
    for r in range(resamples):
        start = time.perf_counter()
        out[:, :, r] = loop_resample(y, p, strata, membership, rng)
        if times is not None:
            times.append(time.perf_counter() - start)
    return out


@contextmanager
def _threads(threads: int) -> Iterator[None]:
    """BLAS/OpenMP pools limited to ``threads`` (0: left as the libraries set them)."""
    from threadpoolctl import threadpool_limits

    if not threads:
        yield
        return
    with threadpool_limits(threads):
        yield


def _loop_part(args: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int, int, int]) -> np.ndarray:
    *loop_args, threads = args
    with warnings.catch_warnings(), _threads(threads):
        warnings.simplefilter("ignore")  # a tiny group's resample may lack a class; its values are NaN
        return plain_loop(*loop_args)


def plain_loop_parallel(
    y: np.ndarray,
    p: np.ndarray,
    strata: np.ndarray,
    membership: np.ndarray,
    resamples: int,
    seed: int,
    workers: int,
    threads: int,
) -> np.ndarray:
    """The plain loop split over ``workers`` processes (independent seeds per part), for the accuracy check."""
    parts = [resamples // workers + (1 if i < resamples % workers else 0) for i in range(workers)]
    seeds = np.random.SeedSequence(seed).spawn(workers)
    jobs = [
        (y, p, strata, membership, size, int(s.generate_state(1)[0]), threads)
        for size, s in zip(parts, seeds, strict=True)
    ]
    if workers == 1:
        return _loop_part(jobs[0])
    with ProcessPoolExecutor(workers) as pool:
        return np.concatenate(list(pool.map(_loop_part, [j for j in jobs if j[4]])), axis=2)


# --- comparisons -----------------------------------------------------------------------------


def _interval(values: np.ndarray) -> tuple[float, float]:
    finite = values[np.isfinite(values)]
    if len(finite) < max(10, 0.5 * len(values)):
        return float("nan"), float("nan")
    tail = (1 - LEVEL) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
    return float(low), float(high)


def endpoint_gaps(a: np.ndarray, b: np.ndarray, width_from: np.ndarray) -> np.ndarray:
    """Per group, both endpoints: |a - b| / the width of ``width_from``'s interval. Inputs: (groups, resamples)."""
    out = []
    for g in range(a.shape[0]):
        lo_a, hi_a = _interval(a[g])
        lo_b, hi_b = _interval(b[g])
        lo_w, hi_w = _interval(width_from[g])
        width = hi_w - lo_w
        if not np.isfinite([lo_a, hi_a, lo_b, hi_b, width]).all() or width <= 0:
            continue
        out += [abs(lo_a - lo_b) / width, abs(hi_a - hi_b) / width]
    return np.array(out)


def width_ratios(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per group: the width of ``a``'s interval over ``b``'s. Inputs: (groups, resamples)."""
    out = []
    for g in range(a.shape[0]):
        lo_a, hi_a = _interval(a[g])
        lo_b, hi_b = _interval(b[g])
        if np.isfinite([lo_a, hi_a, lo_b, hi_b]).all() and hi_b > lo_b:
            out.append((hi_a - lo_a) / (hi_b - lo_b))
    return np.array(out)


def exact_differences(dist: Any, data: Data, membership: np.ndarray, strata: np.ndarray) -> dict[str, float]:
    """Per metric, the largest |medops exact - scikit-learn| over every group on the full data."""
    reference = np.stack([sklearn_metrics(data.y[m[strata]], data.p[m[strata]], THRESHOLD) for m in membership])
    out = {}
    for metric in (*EXACT_METRICS, "calibration_slope", "calibration_intercept", "ece"):
        ours = dist.exact[:, dist.metrics.index(metric)]
        theirs = reference[:, LOOP_METRICS.index(metric)]
        gaps = np.where(np.isnan(ours) & np.isnan(theirs), 0.0, np.abs(ours - theirs))  # NaN on one side only: NaN
        out[metric] = float(gaps.max())
    return out


# --- the report ----------------------------------------------------------------------------


def _ratios(values: np.ndarray) -> str:
    return "n/a" if not len(values) else f"{np.median(values):.3f} ({values.min():.2f}-{values.max():.2f})"


def _pct(values: np.ndarray) -> str:
    return "n/a" if not len(values) else f"{values.max() * 100:.1f} % / {np.median(values) * 100:.1f} %"


def _run_medops(data: Data, groups: Any, resamples: int, seed: int, clusters: np.ndarray | None = None) -> Any:
    from medops.evaluation.bootstrap import bootstrap

    return bootstrap(
        data.y, data.p, groups.strata, groups.membership, THRESHOLD, resamples=resamples, seed=seed, clusters=clusters
    )


def main(argv: list[str] | None = None) -> list[list[Any]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="predictions in the speed benchmark")
    parser.add_argument("--resamples", type=int, default=2_000, help="bootstrap resamples in the speed benchmark")
    parser.add_argument("--repeats", type=int, default=1, help="timed medops runs (the median is reported)")
    parser.add_argument("--loop-resamples", type=int, default=3, help="resamples the plain loop is timed on")
    parser.add_argument(
        "--loop-threads",
        type=int,
        default=1,
        help="BLAS/OpenMP threads of the plain loop (threadpoolctl; 0: the libraries' default). One is faster here: "
        "scikit-learn's small fits lose more to thread start-up than they gain",
    )
    parser.add_argument("--check-rows", type=int, default=20_000, help="predictions in the accuracy check")
    parser.add_argument("--check-resamples", type=int, default=500, help="resamples of both methods in the check")
    parser.add_argument("--check-workers", type=int, default=2, help="processes running the check's plain loop")
    parser.add_argument("--no-intersection", action="store_true", help="no sex x age band groups (12 groups)")
    parser.add_argument("--seed", type=int, default=20, help="the data's seed")
    parser.add_argument(
        "--quick", action="store_true", help="50,000 rows, 200 resamples, 2 loop resamples; check: 5,000 rows x 100"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.rows, args.resamples, args.loop_resamples = 50_000, 200, 2
        args.check_rows, args.check_resamples = 5_000, 100
    print(f"load average at start: {' '.join(f'{v:.2f}' for v in os.getloadavg())} ({os.cpu_count()} CPUs)")
    intersection = not args.no_intersection
    notes: list[str] = []

    # --- speed
    t_data, data = timed(lambda: make_data(args.rows, args.seed))
    t_groups, groups = timed(lambda: make_groups(data, intersection))
    n_groups, n_strata = groups.membership.shape
    notes.append(
        f"data: {args.rows:,} rows in {t_data:.1f} s, prevalence {data.y.mean():.3f}, "
        f"{int((data.p >= THRESHOLD).sum()):,} predicted positive at {THRESHOLD}; build_groups {t_groups:.2f} s "
        f"({n_groups} groups over {n_strata} strata{', with sex x age band' if intersection else ''})"
    )
    _run_medops(make_data(5_000, 1), make_groups(make_data(5_000, 1), intersection), 100, 0)  # warm-up: imports
    medops_times = []
    dist = None
    for i in range(args.repeats):
        elapsed, dist = timed(lambda i=i: _run_medops(data, groups, args.resamples, seed=1 + i))
        medops_times.append(elapsed)
    assert dist is not None
    t_medops = statistics.median(medops_times)
    n_metrics = len(dist.metrics)
    print(f"medops: {', '.join(f'{t:.2f} s' for t in medops_times)}", flush=True)

    membership, strata = groups.membership, groups.strata
    loop_times: list[float] = []
    default_times: list[float] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with _threads(args.loop_threads):
            plain_loop(data.y, data.p, strata, membership, args.loop_resamples, seed=2, times=loop_times)
        if args.loop_threads:  # one resample with the libraries' own thread pools, for the record
            plain_loop(data.y, data.p, strata, membership, 1, seed=3, times=default_times)
    per_resample = statistics.mean(loop_times)
    t_loop = per_resample * args.resamples
    threads = f"{args.loop_threads} thread{'s' if args.loop_threads > 1 else ''}" if args.loop_threads else "default"
    print(f"plain loop ({threads}): {', '.join(f'{t:.2f} s' for t in loop_times)} per resample", flush=True)
    if default_times:
        notes.append(
            f"plain loop with the libraries' default thread pools: {default_times[0]:.2f} s for one resample "
            f"(against {per_resample:.2f} s with {threads}, the time used)"
        )
    if caught:
        kinds = sorted({type(w.message).__name__ for w in caught})
        notes.append(f"the plain loop raised {len(caught)} warnings ({', '.join(kinds)})")
    full_exact = exact_differences(dist, data, membership, strata)
    speed_rows: list[list[Any]] = [
        [
            f"medops bootstrap(), {n_groups} groups x {n_metrics} metrics",
            f"{args.rows:,}",
            f"{args.resamples:,}",
            f"{t_medops:.2f} s" + (f" (median of {args.repeats})" if args.repeats > 1 else ""),
            f"{t_medops / args.resamples * 1e3:.2f} ms",
            "",
            f"< {TIME_AIM_S:g} s: {'ok' if t_medops < TIME_AIM_S else 'MISSED'}",
        ],
        [
            f"plain loop, scikit-learn ({threads}), {n_groups} groups x {len(LOOP_METRICS)} metrics",
            f"{args.rows:,}",
            f"{args.resamples:,}",
            f"{t_loop:,.0f} s = {t_loop / 3600:.1f} h (extrapolated from {args.loop_resamples} resamples)",
            f"{per_resample:.2f} s",
            f"{t_loop / t_medops:,.0f}x",
            "",
        ],
    ]
    # --- the cluster bootstrap: patients resampled, on the same rows (about 2.3 stays per patient)
    patients = patients_of(args.rows, args.seed)
    t_cluster, _ = timed(lambda: _run_medops(data, groups, args.resamples, seed=1, clusters=patients))
    order = np.argsort(patients, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(patients[order]) != 0])
    stays = np.split(order, starts[1:])
    cluster_times = []
    rng = np.random.default_rng(4)
    with warnings.catch_warnings(), _threads(args.loop_threads):
        warnings.simplefilter("ignore")
        for _ in range(args.loop_resamples):
            start = time.perf_counter()
            cluster_loop_resample(data.y, data.p, strata, membership, stays, rng)
            cluster_times.append(time.perf_counter() - start)
    per_cluster = statistics.mean(cluster_times)
    print(f"medops, patients resampled: {t_cluster:.2f} s; hand loop: {per_cluster:.2f} s per resample", flush=True)
    speed_rows += [
        [
            f"medops bootstrap(clusters=patients), {len(stays):,} patients",
            f"{args.rows:,}",
            f"{args.resamples:,}",
            f"{t_cluster:.2f} s",
            f"{t_cluster / args.resamples * 1e3:.2f} ms",
            "",
            f"< {TIME_AIM_S:g} s: {'ok' if t_cluster < TIME_AIM_S else 'MISSED'}",
        ],
        [
            "hand cluster loop: patients drawn, all their rows, scikit-learn as above",
            f"{args.rows:,}",
            f"{args.resamples:,}",
            f"{per_cluster * args.resamples:,.0f} s (extrapolated from {args.loop_resamples} resamples)",
            f"{per_cluster:.2f} s",
            f"{per_cluster * args.resamples / t_cluster:,.0f}x",
            "",
        ],
    ]
    print_table(
        f"clinical validation: bootstrap intervals, {args.rows:,} predictions; ratio = loop / medops",
        ["benchmark", "rows", "resamples", "seconds", "per resample", "ratio", "aim"],
        speed_rows,
    )

    # --- accuracy
    check = make_data(args.check_rows, args.seed + 1)
    check_groups = make_groups(check, intersection)
    cm, cs = check_groups.membership, check_groups.strata
    t_a, dist_a = timed(lambda: _run_medops(check, check_groups, args.check_resamples, seed=11))
    dist_b = _run_medops(check, check_groups, args.check_resamples, seed=12)
    print(f"accuracy check: medops {t_a:.2f} s; plain loop running...", flush=True)
    t_check_loop, loop = timed(
        lambda: plain_loop_parallel(
            check.y, check.p, cs, cm, args.check_resamples, 13, args.check_workers, args.loop_threads
        )
    )
    check_exact = exact_differences(dist_a, check, cm, cs)

    def _exact(metric: str) -> str:
        diff = float(np.max([full_exact[metric], check_exact[metric]]))  # NaN (a mismatch) propagates
        return f"{diff:.1e}" + ("" if metric not in EXACT_METRICS else " ok" if diff <= EXACT_TOL else " FAILED")

    accuracy_rows: list[list[Any]] = []
    all_vs, all_noise, all_widths = [], [], []
    for metric in INTERVAL_METRICS:
        ours_a = dist_a.resampled[:, dist_a.metrics.index(metric)]
        ours_b = dist_b.resampled[:, dist_b.metrics.index(metric)]
        theirs = loop[:, LOOP_METRICS.index(metric)]
        vs, noise = endpoint_gaps(ours_a, theirs, theirs), endpoint_gaps(ours_a, ours_b, theirs)
        all_vs.append(vs)
        all_noise.append(noise)
        widths = width_ratios(ours_a, theirs)
        all_widths.append(widths)
        accuracy_rows.append([metric, f"{len(vs) // 2}", _pct(vs), _pct(noise), _ratios(widths), _exact(metric)])
    for metric in ("npv", "f1", "calibration_intercept"):
        accuracy_rows.append([metric, "", "", "", "", _exact(metric)])
    vs_all, noise_all, widths_all = (np.concatenate(v) for v in (all_vs, all_noise, all_widths))
    accuracy_rows.append(
        ["all of the above", f"{len(vs_all) // 2}", _pct(vs_all), _pct(noise_all), _ratios(widths_all), ""]
    )
    print_table(
        f"accuracy: {args.check_rows:,} predictions, {args.check_resamples:,} resamples each, 95% percentile "
        f"intervals; endpoint differences as a share of the loop's interval width (max / median)",
        [
            "metric",
            "intervals",
            "medops vs plain loop",
            "medops vs medops (other seed)",
            "width medops / loop: median (range)",
            "exact: max |medops-sklearn|",
        ],
        accuracy_rows,
    )
    exact_ok = all(np.max([full_exact[m], check_exact[m]]) <= EXACT_TOL for m in EXACT_METRICS)
    notes.append(
        f"accuracy check: medops {t_a:.2f} s, plain loop {t_check_loop:.1f} s on {args.check_workers} processes "
        f"({args.check_resamples:,} resamples of {args.check_rows:,} rows)"
    )
    notes.append(
        f"exact values equal scikit-learn's to {EXACT_TOL:g} for {', '.join(EXACT_METRICS)} on every group of both "
        f"data sets: {'yes' if exact_ok else 'NO'} (calibration slope: scikit-learn's lbfgs stops at its tolerance)"
    )
    for note in notes:
        print(f"- {note}")
    return speed_rows + accuracy_rows


if __name__ == "__main__":
    main()
