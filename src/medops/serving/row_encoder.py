"""A request's rows straight into the model's matrix, when they need nothing but that.

Most requests are a few clean rows: every field known, in range, of the right type. For those,
checking each field (medops.serving.validation) and then building the matrix from columns
(medops.registry.compiled) walks the rows twice and allocates per feature. ``RowEncoder``
does both in one pass over each row, with the schema's checks prepared once per model, and
gives the same matrix ``Compiled.matrix_of`` builds from ``check_rows``'s columns (a test
compares them). It handles only the clean case: at the first field that is missing where
required, unknown, mistyped, out of range or an unseen category it gives up (None), and the
caller takes the general path, which names every problem or flags the row under the model's
policy. So no answer or refusal depends on which path a request took.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from medops.registry.compiled import Compiled


@dataclass(frozen=True)
class _Number:
    name: str
    required: bool
    low: float
    high: float
    column: int | None  # where the matrix holds it; None: checked, not scored
    median: float
    mean: float | None
    scale: float | None


@dataclass(frozen=True)
class _Category:
    name: str
    required: bool
    allowed: frozenset[str] | None  # the schema's categories; None for an ``any`` feature (not checked by value)
    offset: int | None  # the one-hot block's first column; None: checked, not scored
    index: dict[Any, int]  # value -> column within the block (an unseen one has none: all zeros)
    fill: int | None  # the block's column for a missing value (the imputed most frequent), if any


@dataclass(frozen=True)
class RowEncoder:
    numbers: tuple[_Number, ...]
    categories: tuple[_Category, ...]
    known: frozenset[str]
    width: int
    fortran: bool  # a numbers-only matrix is handed over column-major, as matrix_of does

    def encode(self, records: list[Any]) -> np.ndarray | None:
        """The model's matrix for clean rows, or None when any row needs the general path."""
        x = np.zeros((len(records), self.width))
        for r, record in enumerate(records):
            if type(record) is not dict or not self.known.issuperset(record):
                return None
            for number in self.numbers:
                value = record.get(number.name)
                if value is None:
                    if number.required:
                        return None
                    value = number.median
                else:
                    kind = type(value)
                    if kind is int:
                        try:
                            value = float(value)
                        except OverflowError:
                            return None
                    elif kind is not float:
                        return None
                    if not number.low <= value <= number.high:  # NaN and infinity fail this too
                        return None
                if number.column is not None:
                    if number.mean is not None and number.scale is not None:
                        value = (value - number.mean) / number.scale
                    x[r, number.column] = value
            for category in self.categories:
                value = record.get(category.name)
                if value is None:
                    if category.required:
                        return None
                    column = category.fill
                else:
                    kind = type(value)
                    if category.allowed is not None:
                        if kind is int:
                            value = str(value)
                        elif kind is not str:
                            return None
                        if value not in category.allowed:
                            return None
                    elif kind is not str and kind is not int:  # what else an ``any`` field takes: the general path
                        return None
                    column = category.index.get(value)
                if column is not None and category.offset is not None:
                    x[r, category.offset + column] = 1.0
        return np.asfortranarray(x) if self.fortran else x


def row_encoder(input_schema: dict[str, Any], compiled: Compiled) -> RowEncoder | None:
    """The encoder for a model whose schema and compiled inference it understands, else None."""
    features = list(input_schema.get("features", []))
    numeric = {name: j for j, name in enumerate(compiled.numeric)}
    offsets: dict[str, int] = {}
    width = len(compiled.numeric)
    for name, block in zip(compiled.categorical, compiled.widths, strict=True):
        offsets[name] = width
        width += block
    blocks = dict(zip(compiled.categorical, range(len(compiled.categorical)), strict=True))
    numbers: list[_Number] = []
    categories: list[_Category] = []
    for feature in features:
        name, kind, required = feature["name"], feature.get("type"), bool(feature.get("required"))
        if kind == "number":
            if name in blocks:
                return None
            j = numeric.get(name)
            numbers.append(
                _Number(
                    name,
                    required,
                    float(feature["min"]),
                    float(feature["max"]),
                    j,
                    float(compiled.medians[j]) if j is not None else math.nan,
                    float(compiled.mean[j]) if j is not None and compiled.mean is not None else None,
                    float(compiled.scale[j]) if j is not None and compiled.scale is not None else None,
                )
            )
        elif kind in ("category", "any"):
            if name in numeric:
                return None
            b = blocks.get(name)
            index = compiled.indexes[b] if b is not None else {}
            allowed = frozenset(str(c) for c in feature.get("categories") or []) if kind == "category" else None
            fill = index.get(compiled.fills[b]) if b is not None else None
            categories.append(_Category(name, required, allowed, offsets.get(name), index, fill))
        else:
            return None
    scored = {n.name for n in numbers if n.column is not None} | {c.name for c in categories if c.offset is not None}
    if scored != set(compiled.numeric) | set(compiled.categorical):
        return None  # the model reads a column the schema does not describe: only the general path knows it
    return RowEncoder(
        tuple(numbers), tuple(categories), frozenset(f["name"] for f in features), width, not compiled.categorical
    )
