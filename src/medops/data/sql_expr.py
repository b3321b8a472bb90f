"""Contract expressions (``discharge_time >= admit_time``) as DuckDB SQL.

Contracts write rules in the small, readable language of ``pandas.eval``: column names,
numbers, quoted text, comparisons, arithmetic, ``and``/``or``/``not`` (or ``&``, ``|``,
``~``) and ``in [...]``. Translating the parsed expression, rather than pasting text into
SQL, means only that language gets through: an unknown column or construct is an error
that names the rule, and nothing in a contract file can run other SQL.
"""

from __future__ import annotations

import ast
from collections.abc import Collection

_COMPARE = {ast.Eq: "=", ast.NotEq: "<>", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">="}
_ARITH = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Mod: "%"}


class ExpressionError(ValueError):
    """An expression outside the contract language; the message says which part."""


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def literal(value: object) -> str:
    """A Python value as a SQL literal (text, number, boolean or NULL)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return repr(value) if value == value else "'NaN'::DOUBLE"
    return "'" + str(value).replace("'", "''") + "'"


def to_sql(expression: str, columns: Collection[str]) -> str:
    """Translate one contract expression; raises ExpressionError naming what is not allowed."""
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"not a valid expression ({exc.msg})") from None
    return _Translator(set(columns)).visit(tree.body)


class _Translator:
    def __init__(self, columns: set[str]) -> None:
        self.columns = columns

    def visit(self, node: ast.AST) -> str:
        if isinstance(node, ast.Name):
            if node.id in ("True", "False"):
                return node.id.upper()
            if node.id not in self.columns:
                raise ExpressionError(f"unknown column {node.id!r}")
            return quote_ident(node.id)
        if isinstance(node, ast.Constant) and (node.value is None or isinstance(node.value, str | int | float | bool)):
            return literal(node.value)
        if isinstance(node, ast.BoolOp):
            op = " AND " if isinstance(node.op, ast.And) else " OR "
            return "(" + op.join(self.visit(v) for v in node.values) + ")"
        if isinstance(node, ast.UnaryOp):
            if isinstance(node.op, ast.Not | ast.Invert):
                return f"(NOT {self.visit(node.operand)})"
            if isinstance(node.op, ast.USub):
                return f"(-{self.visit(node.operand)})"
            if isinstance(node.op, ast.UAdd):
                return self.visit(node.operand)
        if isinstance(node, ast.BinOp):
            if isinstance(node.op, ast.BitAnd | ast.BitOr):
                op = "AND" if isinstance(node.op, ast.BitAnd) else "OR"
                return f"({self.visit(node.left)} {op} {self.visit(node.right)})"
            if type(node.op) in _ARITH:
                return f"({self.visit(node.left)} {_ARITH[type(node.op)]} {self.visit(node.right)})"
        if isinstance(node, ast.Compare):
            return self._compare(node)
        raise ExpressionError(f"{ast.unparse(node)!r} is not allowed in a contract expression")

    def _compare(self, node: ast.Compare) -> str:
        parts = []
        left = node.left
        for op, right in zip(node.ops, node.comparators, strict=True):
            if isinstance(op, ast.In | ast.NotIn):
                if not isinstance(right, ast.List | ast.Tuple | ast.Set):
                    raise ExpressionError("'in' needs a list of values, e.g. unit in ['C', 'F']")
                items = ", ".join(self.visit(e) for e in right.elts)
                neg = "NOT " if isinstance(op, ast.NotIn) else ""
                parts.append(f"({self.visit(left)} {neg}IN ({items}))")
            elif type(op) in _COMPARE:
                parts.append(f"({self.visit(left)} {_COMPARE[type(op)]} {self.visit(right)})")
            else:
                raise ExpressionError(f"the comparison {ast.unparse(node)!r} is not allowed")
            left = right
        return parts[0] if len(parts) == 1 else "(" + " AND ".join(parts) + ")"
