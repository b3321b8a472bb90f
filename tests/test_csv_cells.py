"""CSV cells never run as spreadsheet formulas, and the change is undone exactly on reading back."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from medops.csv_cells import FORMULA_STARTS, neutralize, restore


def test_every_formula_start_is_neutralized() -> None:
    for cell in ("=cmd|' /C calc'!A0", "@SUM(A1:A9)", "+1+1", "-2+3", "\t=1", "\r=1"):
        assert neutralize(cell) == "'" + cell
    for cell in ("plain", "12", "", '{"a": 1}', "'quoted", "a=b"):
        assert neutralize(cell) == cell  # nothing else changes


@given(st.text(alphabet=st.sampled_from(["=", "+", "-", "@", "\t", "\r", "'", "a", "1", " "]), max_size=6) | st.text())
def test_restore_undoes_neutralize_exactly(cell: str) -> None:
    safe = neutralize(cell)
    assert restore(safe) == cell
    assert not safe.startswith(FORMULA_STARTS)


def test_prediction_exports_quote_formula_cells_from_the_data() -> None:
    """Subgroup values come from ingested data: a value "=cmd|..." reached the validator's spreadsheet raw."""
    import csv
    import io

    import pyarrow as pa

    from medops.cli.evaluate import _encode

    table = pa.table(
        {
            "row": pa.array([0, 1], pa.int64()),
            "score": pa.array([0.25, 0.75]),
            "group:site": pa.array(["=cmd|' /C calc'!A0", None], pa.string()),
            "-patient": pa.array(["pat_1", "@pat_2"], pa.string()),  # a column named in the project file
        }
    )
    rows = list(csv.reader(io.StringIO(_encode(table, ".csv").decode())))
    assert rows[0] == ["row", "score", "group:site", "'-patient"]
    assert rows[1] == ["0", "0.25", "'=cmd|' /C calc'!A0", "pat_1"]
    assert rows[2] == ["1", "0.75", "", "'@pat_2"]
