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

from benchmarks.common import interleaved, load_average, medians, print_table, timed
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


# --- the NumPy peer: an exact bootstrap on medops's resamples ----------------------------------

PEER_METRICS = tuple(m for m in METRICS if not m.startswith("calibration_"))  # the peer fits no calibration


def numpy_peer(
    y: np.ndarray,
    p: np.ndarray,
    strata: np.ndarray,
    membership: np.ndarray,
    threshold: float,
    resamples: int,
    seed: int,
) -> np.ndarray:
    """(groups, PEER_METRICS, resamples): an exact bootstrap, vectorized over a chunk of resamples at a time.

    The resamples are medops's: the same per-label multinomial draws of (stratum, bin) cells from the same
    seeds (``medops.evaluation.bootstrap``), each cell's count then spread over that cell's rows uniformly
    at random, which is an index matrix of rows drawn with replacement within each label (a resample of rows
    has exactly this distribution). Every metric is then computed exactly, from one bin per distinct score,
    with plain NumPy formulas; no binning, no shift. The calibration fits are left out (medops does them)."""
    from medops.evaluation.bootstrap import BINS, CHUNK, bin_edges

    y = np.asarray(y, dtype=np.int8)
    edges = bin_edges(p, threshold, BINS)
    n_bins = len(edges) + 1
    row_bin = np.searchsorted(edges, p, side="right")
    by_group = []  # per group: each row's distinct-score index within the group (-1: not a member), the scores
    for member in membership[:, strata]:
        score, inverse = np.unique(p[member], return_inverse=True)
        local = np.full(len(p), -1)
        local[member] = inverse
        ece_bins = np.eye(10)[np.searchsorted(ECE_EDGES, score, side="right")]  # (scores, 10) one-hot
        by_group.append((local, score, int(np.searchsorted(score, threshold, side="left")), ece_bins))
    labels = []
    for label in (0, 1):
        rows = np.flatnonzero(y == label)
        _, position, counts = np.unique(strata[rows] * n_bins + row_bin[rows], return_inverse=True, return_counts=True)
        labels.append((rows[np.argsort(position, kind="stable")], counts, np.r_[0, np.cumsum(counts)[:-1]]))
    seeds = np.random.SeedSequence(seed).spawn((resamples + CHUNK - 1) // CHUNK)
    spread = np.random.default_rng([seed, 1])  # which rows of a cell: any uniform choice is a valid resample
    out = np.empty((len(membership), len(PEER_METRICS), resamples))
    for index, chunk_seed in enumerate(seeds):
        size = min(CHUNK, resamples - index * CHUNK)
        rng = np.random.default_rng(chunk_seed)
        parts = []
        for by_cell, counts, starts in labels:
            drawn = rng.multinomial(counts.sum(), counts / counts.sum(), size=size)
            cell = np.repeat(np.tile(np.arange(len(counts)), size), drawn.ravel())
            within = (spread.random(len(cell)) * counts[cell]).astype(np.int64)
            parts.append(by_cell[starts[cell] + within].reshape(size, -1))
        picks = np.concatenate(parts, axis=1)  # (size, rows): the index matrix
        labels_drawn = y[picks]
        for g, (local, score, cut, ece_bins) in enumerate(by_group):
            at = local[picks]
            keep = at >= 0
            key = (np.arange(size)[:, None] * len(score) + at)[keep]
            cells = size * len(score)
            total = np.bincount(key, minlength=cells).reshape(size, -1)
            pos = np.bincount(key, weights=labels_drawn[keep], minlength=cells).reshape(size, -1)
            out[g, :, index * CHUNK : index * CHUNK + size] = _exact_metrics(pos, total - pos, score, cut, ece_bins).T
    return out


def _exact_metrics(pos: np.ndarray, neg: np.ndarray, score: np.ndarray, cut: int, ece_bins: np.ndarray) -> np.ndarray:
    """(resamples, PEER_METRICS) from per-score counts: the textbook formulas, ties as scikit-learn has them."""
    with np.errstate(divide="ignore", invalid="ignore"):
        n_pos, n_neg = pos.sum(1), neg.sum(1)
        n = n_pos + n_neg
        auroc = (pos * (np.cumsum(neg, 1) - 0.5 * neg)).sum(1) / (n_pos * n_neg)
        tp_desc, fp_desc = np.cumsum(pos[:, ::-1], 1), np.cumsum(neg[:, ::-1], 1)
        precision = np.where(tp_desc + fp_desc > 0, tp_desc / (tp_desc + fp_desc), 0.0)
        auprc = (pos[:, ::-1] * precision).sum(1) / n_pos
        tp, fp = pos[:, cut:].sum(1), neg[:, cut:].sum(1)
        fn, tn = n_pos - tp, n_neg - fp
        brier = (pos * (1 - score) ** 2 + neg * score**2).sum(1) / n
        ece = np.abs(((pos + neg) * score) @ ece_bins - pos @ ece_bins).sum(1) / n
        values = [
            auroc,
            auprc,
            tp / n_pos,
            tn / n_neg,
            tp / (tp + fp),
            tn / (tn + fn),
            2 * tp / (2 * tp + fp + fn),
            brier,
            ece,
            n_pos / n,
            (tp + fp) / n,
            fp / n_neg,
        ]
    return np.where(np.isfinite(np.stack(values, 1)), np.stack(values, 1), np.nan)


# --- the public path: `evaluate`, as the CLI and the service call it ----------------------------

PUBLIC_RESAMPLES = 1_000
FIXED_COST_AIM_S = 0.5


def _cohort(n: int, seed: int) -> pd.DataFrame:
    """Readmission rows: sex, race/ethnicity and age (the subgroups), stay and frailty (the risk)."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "patient_id": [f"p{i:07d}" for i in range(n)],
            "sex": rng.choice([name for name, _ in SEXES], n, p=[share for _, share in SEXES]),
            "race_ethnicity": rng.choice([name for name, _ in RACES], n, p=[share for _, share in RACES]),
            "age": rng.normal(62, 14, n).round().clip(18, 100),
            "los": rng.exponential(4, n),
            "frailty": rng.normal(0, 1, n),
        }
    )
    risk = (frame["age"] - 62) / 10 + (frame["los"] - 4) / 3 + 1.2 * frame["frailty"] - 2.0
    frame["readmitted"] = (rng.random(n) < 1 / (1 + np.exp(-risk))).astype(int)
    return frame


def _trained_run(ws: Any, folder: Any, name: str, frame: pd.DataFrame) -> str:
    """A logistic regression trained by medops on ``frame`` (30% held out for the test set): its run id."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from medops.data.datasets import get
    from medops.data.ingest import TablePlan, ingest
    from medops.data.sources import ParquetSource
    from medops.training import Tracker
    from medops.training.train import TrainConfig, train
    from medops.training.trainers import ModelSpec

    path = folder / f"{name}.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
    ingest(ws, TablePlan(name, ParquetSource(path), {c: "keep" for c in frame.columns}), actor="admin")
    info = get(ws.db, name)
    config = TrainConfig(
        ["age", "los", "frailty"],
        "readmitted",
        ModelSpec("logistic_regression"),
        split="stratified",
        group=None,
        test_size=0.3,
        seed=3,
        inputs=(info.ref,),
        data={"dataset": info.name, "version": info.version, "drop_missing_labels": False},
    )
    rows = pq.read_table(ws.artifacts.local_path(info.version)).to_pandas()
    return str(train(Tracker(ws), rows, config, actor="admin").run_id)


def _spec(resamples: int) -> Any:
    from medops.evaluation.spec import EvaluateSpec

    return EvaluateSpec.model_validate(
        {
            "threshold": {"value": THRESHOLD},
            "bootstrap": {"resamples": resamples, "seed": 7},
            "subgroups": {
                "attributes": {
                    "sex": {},
                    "race_ethnicity": {},
                    "age_band": {"column": "age", "bins": [40, 60, 75]},
                },
                "intersections": [["sex", "age_band"]],
                "min_size": 10,
            },
            "policy": {"metrics": {"auroc": {"min": 0.5}}, "prerequisites": []},
        }
    )


def public_path(
    sizes: list[int], rounds: int, loop_resamples: int, loop_threads: int, notes: list[str]
) -> list[list[Any]]:
    """``evaluate`` on a trained run, interleaved with the NumPy peer and the scikit-learn loop on the same rows."""
    from benchmarks.common import temp_dir, workspace
    from medops.training import Tracker

    os.environ.setdefault("MEDOPS_PSEUDONYM_KEY", "benchmark-pseudonym-key-0123456789abcdef")
    rows: list[list[Any]] = []
    with workspace("sqlite") as ws, temp_dir("medops-bench-eval-") as folder:
        for n in sizes:
            run = _trained_run(ws, folder, f"cohort{n}", _cohort(n, n))
            rows += _public_size(Tracker(ws), run, rounds, loop_resamples, loop_threads, notes)
    print_table(
        f"clinical validation on the public path: evaluate() with {PUBLIC_RESAMPLES:,} resamples against peers "
        "on the same rows; ratio = peer / medops's bootstrap (medians)",
        ["side", "seconds", "ratio", "note"],
        rows,
    )
    return rows


def _public_size(
    tracker: Any, run: str, rounds: int, loop_resamples: int, loop_threads: int, notes: list[str]
) -> list[list[Any]]:
    """One test set: the bootstrap's share of ``evaluate`` is read from its own progress reports (from
    "bootstrap 0" to the last chunk); the peers get what ``evaluate`` hands the bootstrap (labels, scores,
    strata, groups, threshold), recorded on the warm-up call, so they start where medops's bootstrap starts."""
    import medops.evaluation.evaluate as evaluation

    spec = _spec(PUBLIC_RESAMPLES)
    original = evaluation.bootstrap
    seen: dict[str, Any] = {}
    phase: list[float] = []

    def recording(*args: Any, **kwargs: Any) -> Any:
        seen["args"] = args
        return original(*args, **kwargs)

    def progress(step: str, done: int, total: int) -> None:
        if step == "bootstrap" and done == 0:
            seen["start"] = time.perf_counter()
        elif step == "bootstrap" and done == total:
            phase.append(time.perf_counter() - seen["start"])

    evaluation.bootstrap = recording  # type: ignore[assignment]
    try:
        evaluation.evaluate(tracker, run, spec, project={"name": "bench"}, actor="admin")
    finally:
        evaluation.bootstrap = original  # type: ignore[assignment]
    y, p, strata, membership, threshold = seen["args"]
    n_groups, test_rows = len(membership), len(y)
    loop_seed = iter(range(1_000))

    def medops_side() -> None:
        evaluation.evaluate(tracker, run, spec, project={"name": "bench"}, actor="admin", progress=progress)

    def peer_side() -> None:
        numpy_peer(y, p, strata, membership, threshold, PUBLIC_RESAMPLES, seed=7)

    def loop_side() -> None:
        with warnings.catch_warnings(), _threads(loop_threads):
            warnings.simplefilter("ignore")  # a small group's resample may lack a class: NaN, as in medops
            plain_loop(y, p, strata, membership, loop_resamples, seed=next(loop_seed))

    times = interleaved({"medops": medops_side, "numpy": peer_side, "loop": loop_side}, rounds)
    boot = phase[-rounds:]  # the warm-up's is not a timed round
    med = medians(times)
    t_boot = statistics.median(boot)
    t_loop = med["loop"] / loop_resamples * PUBLIC_RESAMPLES
    label = f"{test_rows:,} test rows, {n_groups} groups"
    small = test_rows < 1_000
    notes.append(
        f"{label}: {rounds} interleaved rounds after one untimed warm-up of each side; evaluate "
        f"{', '.join(f'{t:.2f}' for t in times['medops'])} s, its bootstrap {', '.join(f'{t:.2f}' for t in boot)} s, "
        f"NumPy {', '.join(f'{t:.2f}' for t in times['numpy'])} s"
    )
    return [
        [f"medops evaluate(), whole ({label})", f"{med['medops']:.2f} s", "", "scores, bootstrap, curves, robustness"],
        [
            f"  of which bootstrap ({len(METRICS)} metrics)",
            f"{t_boot:.2f} s",
            "1.0",
            f"fixed cost < {FIXED_COST_AIM_S:g} s: {'ok' if t_boot < FIXED_COST_AIM_S else 'MISSED'}" if small else "",
        ],
        [
            f"  NumPy exact bootstrap, same resamples ({len(PEER_METRICS)} metrics, no calibration fits)",
            f"{med['numpy']:.2f} s",
            f"{med['numpy'] / t_boot:.1f}",
            "",
        ],
        [
            f"  scikit-learn loop ({len(LOOP_METRICS)} metrics)",
            f"{t_loop:,.0f} s",
            f"{t_loop / t_boot:,.0f}",
            f"median of {loop_resamples} resamples a round, scaled to {PUBLIC_RESAMPLES:,}",
        ],
    ]


def peer_agreement(dist: Any, peer: np.ndarray) -> list[list[Any]]:
    """Per metric: the largest per-resample difference medops - NumPy peer on the same resamples, and the
    largest interval endpoint difference as a share of the peer's interval width."""
    out = []
    for i, metric in enumerate(PEER_METRICS):
        ours, theirs = dist.resampled[:, dist.metrics.index(metric)], peer[:, i]
        same_nan = bool((np.isnan(ours) == np.isnan(theirs)).all())
        gap = float(np.nanmax(np.abs(ours - theirs))) if same_nan else float("nan")
        ends = endpoint_gaps(ours, theirs, theirs)
        out.append([metric, f"{gap:.1e}", _pct(ends), "equal" if gap <= EXACT_TOL else "binned"])
    return out


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
        "--public-sizes",
        type=int,
        nargs="*",
        default=[1_000, 12_000],
        help="cohort rows trained and evaluated on the public path (30%% held out: the test set)",
    )
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds on the public path (medians)")
    parser.add_argument(
        "--quick", action="store_true", help="50,000 rows, 200 resamples, 2 loop resamples; check: 5,000 rows x 100"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.rows, args.resamples, args.loop_resamples = 50_000, 200, 2
        args.check_rows, args.check_resamples = 5_000, 100
        args.public_sizes, args.rounds = [1_000], 2
    print(f"load average at start: {load_average()} ({os.cpu_count()} CPUs)", flush=True)
    intersection = not args.no_intersection
    notes: list[str] = [
        "medops: bootstrap chunks on 2 threads (its default and fastest mode here; threads=1 gives the same values)",
        "NumPy peer: its default is its fastest documented mode (element-wise ufuncs and bincount are "
        "single-threaded; a whole chunk of resamples per array call is the vectorized form)",
        f"scikit-learn loop: {args.loop_threads or 'default'} BLAS/OpenMP thread(s) via threadpoolctl; its fastest "
        "documented mode would add joblib processes over resamples (the accuracy check runs it on "
        f"{args.check_workers} processes); its metric functions have no n_jobs",
    ]
    public_rows = public_path(args.public_sizes, args.rounds, args.loop_resamples, args.loop_threads, notes)

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
    peer_rows = peer_agreement(dist_a, numpy_peer(check.y, check.p, cs, cm, THRESHOLD, args.check_resamples, seed=11))
    print_table(
        f"medops against the NumPy exact bootstrap on the same {args.check_resamples:,} resamples of "
        f"{args.check_rows:,} predictions, every group",
        ["metric", "max |medops - NumPy| per resample", "interval endpoints: max / median of width", "values"],
        peer_rows,
    )

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
    print(f"load average at end: {load_average()}")
    return public_rows + speed_rows + accuracy_rows + peer_rows


if __name__ == "__main__":
    main()
