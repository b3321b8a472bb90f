"""The profile's distinct counts: estimates that say so; the patient id counted exactly while the table is small."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from medops.data import profile


def test_ids_are_counted_exactly_up_to_a_size_and_estimates_say_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "t.parquet"
    ids = [f"pat_{i % 30_011}" for i in range(60_000)]
    pq.write_table(pa.table({"patient_id": ids, "x": list(range(60_000))}), path)
    exact = profile.profile_parquet(path, exact=["patient_id"])
    assert exact["patient_id"]["distinct"] == 30_011 and exact["patient_id"]["distinct_exact"]
    assert not exact["x"]["distinct_exact"] and abs(exact["x"]["distinct"] - 60_000) < 0.05 * 60_000
    monkeypatch.setattr(profile, "EXACT_MAX_ROWS", 50_000)  # a larger table keeps the profile's memory bounded
    assert not profile.profile_parquet(path, exact=["patient_id"])["patient_id"]["distinct_exact"]


def test_quantiles_are_exact_up_to_a_size_then_bounded_estimates_that_say_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"x": [float(i) for i in range(60_000)]}), path)
    exact = profile.profile_parquet(path)["x"]
    assert exact["quantiles"]["p50"] == 29_999.5 and "quantiles_exact" not in exact
    monkeypatch.setattr(profile, "EXACT_MAX_ROWS", 50_000)  # an exact quantile holds every value in memory
    estimated = profile.profile_parquet(path)["x"]
    assert estimated["quantiles_exact"] is False
    for key, value in exact["quantiles"].items():
        assert abs(estimated["quantiles"][key] - value) < 0.01 * 60_000  # within 1 % of the range
