"""Drift statistics between a reference summary and a current one (medops.monitoring.summary).

Each returns an effect size, which verdicts are judged on, and where the statistic has one, a
p-value, which is stated beside it and never judged alone: at a million rows a shift no
clinician would notice is "significant", and at fifty rows a large one may be chance.

- PSI on ten reference bins (deciles of the reference, fixed at registration), each side's
  share floored at ``PSI_FLOOR`` so an empty bin stays finite. Its p-value uses the chi-squared
  approximation of the population stability index (n·m/(n+m)·PSI ~ chi2 with bins-1 degrees).
- Kolmogorov-Smirnov: the largest gap between the two cumulative distributions on the grid,
  with SciPy's asymptotic two-sample distribution for the p-value. Exact when both sides sit
  on the grid; otherwise ``upper`` bounds the true statistic.
- Wasserstein-1 (SciPy's), each bin's mass at its mean, in the feature's unit and divided by
  the reference's standard deviation for the verdict.
- Chi-squared (SciPy's contingency test, no continuity correction) with Cramer's V as its
  effect, and Jensen-Shannon distance (SciPy's, base 2: 0 same, 1 disjoint), over the union
  of the categories both sides hold (a new category counts).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats
from scipy.spatial.distance import jensenshannon

from medops.monitoring.summary import CategorySummary, NumericSummary

PSI_BINS = 10
PSI_FLOOR = 1e-4  # a bin's share is at least this on either side: an empty bin is not infinitely drifted


@dataclass(frozen=True)
class Statistic:
    """One statistic between reference and current: the effect and, if it has one, the p-value."""

    name: str
    value: float
    p_value: float | None = None
    upper: float | None = None  # a bound on the exact value when the grid can only bound it

    def to_doc(self) -> dict[str, float | str | None]:
        doc: dict[str, float | str | None] = {"name": self.name, "value": self.value, "p_value": self.p_value}
        if self.upper is not None:
            doc["upper"] = self.upper
        return doc


def _same_grid(reference: NumericSummary, current: NumericSummary) -> None:
    if not np.array_equal(reference.edges, current.edges):
        raise ValueError("the current summary is not on the reference's grid")


def psi_bins(reference: NumericSummary, bins: int = PSI_BINS) -> np.ndarray:
    """Which grid bins make each PSI bin: the index of the last grid bin of each, from the
    reference's quantiles (fewer bins when the reference has few distinct values)."""
    cumulative = np.cumsum(reference.counts) / max(reference.n, 1)
    cuts = np.searchsorted(cumulative, np.arange(1, bins) / bins, side="left")
    return np.unique(np.append(cuts, len(reference.counts) - 1))


def _grouped(counts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    cumulative = np.cumsum(counts)[ends]
    return np.diff(np.concatenate([[0], cumulative]))


def psi(reference: NumericSummary, current: NumericSummary, bins: int = PSI_BINS) -> Statistic:
    """Population stability index on the reference's fixed quantile bins."""
    _same_grid(reference, current)
    n, m = reference.n, current.n
    if not n or not m:
        return Statistic("psi", float("nan"))
    ends = psi_bins(reference, bins)
    r = np.maximum(_grouped(reference.counts, ends) / n, PSI_FLOOR)
    c = np.maximum(_grouped(current.counts, ends) / m, PSI_FLOOR)
    value = float(np.sum((c - r) * np.log(c / r)))
    degrees = len(ends) - 1
    p = float(stats.chi2.sf(value * n * m / (n + m), degrees)) if degrees > 0 else 1.0
    return Statistic("psi", value, p)


def ks(reference: NumericSummary, current: NumericSummary) -> Statistic:
    """Two-sample Kolmogorov-Smirnov statistic on the grid, its asymptotic p-value and its bound."""
    _same_grid(reference, current)
    n, m = reference.n, current.n
    if not n or not m:
        return Statistic("ks", float("nan"))
    f_ref = np.cumsum(reference.counts) / n
    f_cur = np.cumsum(current.counts) / m
    gaps = np.abs(f_ref - f_cur)
    value = float(gaps[:-1].max()) if len(gaps) > 1 else 0.0
    # inside a bin each curve rises by at most that bin's mass on its side: the bound on the true gap
    before = np.concatenate([[0.0], gaps[:-1]])
    inside_ref = np.zeros_like(f_ref) if reference.exact() else reference.counts / n
    inside_cur = np.zeros_like(f_cur) if current.exact() else current.counts / m
    upper = float(np.max(before + np.maximum(inside_ref, inside_cur)))
    effective = round(n * m / (n + m))
    p = float(stats.kstwo.sf(value, max(effective, 1)))
    return Statistic("ks", value, min(max(p, 0.0), 1.0), upper=max(upper, value))


def wasserstein(reference: NumericSummary, current: NumericSummary) -> Statistic:
    """Wasserstein-1 distance in the feature's unit, each bin's mass at its mean."""
    _same_grid(reference, current)
    if not reference.n or not current.n:
        return Statistic("wasserstein", float("nan"))
    r_at, c_at = reference.means(), current.means()
    r_mass, c_mass = reference.counts > 0, current.counts > 0
    value = stats.wasserstein_distance(r_at[r_mass], c_at[c_mass], reference.counts[r_mass], current.counts[c_mass])
    return Statistic("wasserstein", float(value))


def _table(reference: CategorySummary, current: CategorySummary) -> tuple[list[str], np.ndarray]:
    names = sorted(set(reference.counts) | set(current.counts))
    table = np.array([[reference.counts[k] for k in names], [current.counts[k] for k in names]], dtype=float)
    return names, table


def chi_squared(reference: CategorySummary, current: CategorySummary) -> tuple[Statistic, Statistic]:
    """Pearson's chi-squared on the 2 x categories table, and Cramer's V (its effect size)."""
    _, table = _table(reference, current)
    table = table[:, table.sum(axis=0) > 0]
    total = table.sum()
    if table.shape[1] < 2 or table[0].sum() == 0 or table[1].sum() == 0:
        return Statistic("chi_squared", 0.0, 1.0), Statistic("cramers_v", 0.0)
    result = stats.chi2_contingency(table, correction=False)
    value = float(result.statistic)
    return Statistic("chi_squared", value, float(result.pvalue)), Statistic("cramers_v", float(np.sqrt(value / total)))


def jensen_shannon(reference: CategorySummary, current: CategorySummary) -> Statistic:
    """Jensen-Shannon distance, base 2, between the two category distributions."""
    _, table = _table(reference, current)
    if table[0].sum() == 0 or table[1].sum() == 0:
        return Statistic("jensen_shannon", float("nan"))
    return Statistic("jensen_shannon", float(jensenshannon(table[0], table[1], base=2)))
