"""Contract expressions translate to SQL, and only the contract language gets through."""

from __future__ import annotations

import duckdb
import pytest

from medops.data.sql_expr import ExpressionError, to_sql

COLUMNS = {"a", "b", "unit"}


@pytest.mark.parametrize(
    ("expression", "row", "expected"),
    [
        ("a >= b", (2, 1, "C"), True),
        ("a >= 30 and a <= 45", (50, 0, "C"), False),
        ("30 <= a <= 45", (40, 0, "C"), True),
        ("(a - 32) * 5 / 9", (212, 0, "C"), 100.0),
        ("unit == 'F' or not b > 0", (0, 1, "F"), True),
        ("(a > 1) & ~(b > 1)", (2, 0, "C"), True),
        ("unit in ['C', 'F']", (0, 0, "K"), False),
        ("unit not in ('C',)", (0, 0, "K"), True),
        ("a % 2 == 1", (3, 0, "C"), True),
        ("-a < b", (1, 0, "C"), True),
    ],
)
def test_translations_evaluate_like_python(expression: str, row: tuple[object, ...], expected: object) -> None:
    sql = to_sql(expression, COLUMNS)
    con = duckdb.connect()
    con.execute("CREATE TABLE t (a DOUBLE, b DOUBLE, unit VARCHAR)")
    con.execute("INSERT INTO t VALUES (?, ?, ?)", list(row))
    assert con.execute(f"SELECT {sql} FROM t").fetchone() == (expected,)


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("tempreature > 1", "unknown column 'tempreature'"),
        ("a.__class__", "not allowed"),
        ("abs(a) > 1", "not allowed"),
        ("a is None", "not allowed"),
        ("unit in other", "needs a list"),
        ("a >", "not a valid expression"),
        ("a > 1; DROP TABLE t", "not a valid expression"),
    ],
)
def test_anything_else_is_refused_with_the_reason(expression: str, message: str) -> None:
    with pytest.raises(ExpressionError, match=message):
        to_sql(expression, COLUMNS)
