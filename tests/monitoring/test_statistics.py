"""Each drift statistic against SciPy on the raw rows, or against a hand computation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from medops.monitoring.statistics import PSI_FLOOR, chi_squared, jensen_shannon, ks, psi, psi_bins, wasserstein
from medops.monitoring.summary import CategorySummary, NumericSummary, numeric_grid


def on_reference_grid(reference: np.ndarray, current: np.ndarray) -> tuple[NumericSummary, NumericSummary]:
    grid = numeric_grid(reference)
    return NumericSummary.of(reference, grid), NumericSummary.of(current, grid)


def test_ks_equals_scipy_on_whole_numbers() -> None:
    rng = np.random.default_rng(1)
    reference = rng.poisson(4.0, 3_000).astype(float)
    current = rng.poisson(4.6, 1_700).astype(float)
    r, c = on_reference_grid(reference, current)
    assert r.exact()  # the grid is the reference's distinct values
    exact = stats.ks_2samp(reference, current, method="asymp")
    found = ks(r, c)
    assert found.value == pytest.approx(exact.statistic, abs=1e-15)
    assert found.p_value == pytest.approx(exact.pvalue, rel=1e-12)


def test_ks_on_continuous_values_is_bounded_by_the_grid() -> None:
    rng = np.random.default_rng(2)
    reference = rng.normal(0, 1, 20_000)
    current = rng.normal(0.15, 1.1, 8_000)
    r, c = on_reference_grid(reference, current)
    assert not r.exact() and not c.exact()
    exact = stats.ks_2samp(reference, current).statistic
    found = ks(r, c)
    assert found.upper is not None
    assert found.value <= exact + 1e-12 <= found.upper + 2e-12
    assert found.upper - found.value < 0.01  # 500 quantile bins: each holds 1/500 of the reference


def test_wasserstein_equals_scipy_on_whole_numbers() -> None:
    rng = np.random.default_rng(3)
    reference = rng.integers(0, 40, 5_000).astype(float)
    current = rng.integers(3, 45, 2_000).astype(float)  # values above the reference's top land in the last bin
    r, c = on_reference_grid(reference, current)
    exact = stats.wasserstein_distance(reference, current)
    found = wasserstein(r, c).value
    # the values above the grid share one bin, placed at their mean: exact for the mass they move
    assert found == pytest.approx(exact, rel=0.05)
    inside = current[current <= reference.max()]
    r2, c2 = on_reference_grid(reference, inside)
    assert wasserstein(r2, c2).value == pytest.approx(stats.wasserstein_distance(reference, inside), abs=1e-12)


def test_wasserstein_on_continuous_values_is_close_to_scipy() -> None:
    rng = np.random.default_rng(4)
    reference = rng.lognormal(1.0, 0.4, 30_000)
    current = rng.lognormal(1.1, 0.4, 10_000)
    r, c = on_reference_grid(reference, current)
    assert wasserstein(r, c).value == pytest.approx(stats.wasserstein_distance(reference, current), rel=0.02)


def test_psi_by_hand() -> None:
    reference = np.repeat(np.arange(10.0), 100)  # 10 % in each of 0..9
    current = np.concatenate([np.repeat(np.arange(5.0), 30), np.repeat(np.arange(5.0, 10.0), 10)])
    r, c = on_reference_grid(reference, current)
    assert len(psi_bins(r)) == 10
    hand = 5 * (0.15 - 0.10) * math.log(0.15 / 0.10) + 5 * (0.05 - 0.10) * math.log(0.05 / 0.10)
    found = psi(r, c)
    assert found.value == pytest.approx(hand, abs=1e-12)
    scaled = hand * 1000 * 200 / 1200
    assert found.p_value == pytest.approx(stats.chi2.sf(scaled, 9), rel=1e-12)


def test_psi_floors_an_empty_bin() -> None:
    reference = np.repeat(np.arange(10.0), 100)
    current = np.repeat(np.arange(9.0), 10)  # nothing in the last bin
    r, c = on_reference_grid(reference, current)
    share = 10 / 90
    hand = 9 * (share - 0.1) * math.log(share / 0.1) + (PSI_FLOOR - 0.1) * math.log(PSI_FLOOR / 0.1)
    assert psi(r, c).value == pytest.approx(hand, abs=1e-12)


def test_chi_squared_equals_scipy_and_cramers_v_by_hand() -> None:
    reference = CategorySummary.of(["A"] * 500 + ["B"] * 300 + ["C"] * 200)
    current = CategorySummary.of(["A"] * 100 + ["B"] * 150 + ["C"] * 40 + ["D"] * 10 + [None] * 7)
    table = np.array([[500, 300, 200, 0], [100, 150, 40, 10]])
    expected = stats.chi2_contingency(table, correction=False)
    chi, v = chi_squared(reference, current)
    assert chi.value == pytest.approx(expected.statistic, rel=1e-12)
    assert chi.p_value == pytest.approx(expected.pvalue, rel=1e-9)
    assert v.value == pytest.approx(math.sqrt(expected.statistic / 1300), rel=1e-12)
    assert current.missing == 7


def test_jensen_shannon_by_hand() -> None:
    reference = CategorySummary.of(["x"] * 50 + ["y"] * 50)
    current = CategorySummary.of(["x"] * 80)
    # M = (0.75, 0.25): KL(P||M) = 0.5 log2(2/3) + 0.5 log2(2), KL(Q||M) = log2(4/3)
    divergence = 0.5 * (0.5 * math.log2(0.5 / 0.75) + 0.5 * math.log2(0.5 / 0.25)) + 0.5 * math.log2(1 / 0.75)
    assert jensen_shannon(reference, current).value == pytest.approx(math.sqrt(divergence), abs=1e-12)
    assert jensen_shannon(reference, reference).value == pytest.approx(0.0, abs=1e-7)


def test_summaries_of_chunks_add_up_to_the_whole_in_any_order() -> None:
    rng = np.random.default_rng(5)
    reference = rng.normal(50, 10, 5_000)
    current = np.where(rng.random(4_000) < 0.05, np.nan, rng.normal(53, 10, 4_000))
    grid = numeric_grid(reference)
    whole = NumericSummary.of(current, grid)
    shuffled = rng.permutation(current)
    parts = [NumericSummary.of(chunk, grid) for chunk in np.array_split(shuffled, 7)]
    merged = parts[0]
    for part in parts[1:]:
        merged = merged.merge(part)
    assert np.array_equal(merged.counts, whole.counts)
    assert merged.missing == whole.missing == int(np.isnan(current).sum())
    r = NumericSummary.of(reference, grid)
    for statistic in (psi, ks, wasserstein):
        assert statistic(r, merged).value == pytest.approx(statistic(r, whole).value, rel=1e-9)


def test_a_summary_survives_its_document() -> None:
    rng = np.random.default_rng(6)
    values = rng.normal(0, 1, 2_000)
    summary = NumericSummary.of(values, numeric_grid(values))
    again = NumericSummary.from_doc(summary.to_doc())
    assert np.array_equal(again.counts, summary.counts) and again.low == summary.low and again.high == summary.high
    categories = CategorySummary.of(["a", "b", None, "a"])
    assert CategorySummary.from_doc(categories.to_doc()) == categories


def test_merging_summaries_on_different_grids_is_refused() -> None:
    with pytest.raises(ValueError, match="different grids"):
        NumericSummary.of(np.arange(3.0), np.arange(3.0)).merge(NumericSummary.of(np.arange(3.0), np.arange(4.0)))
