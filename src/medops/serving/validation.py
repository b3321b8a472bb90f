"""Request rows checked against the bundle's input schema, field by field.

Every problem names the row, the field and what was wrong, never the submitted value: an error
response or a log line must not carry a patient's data. Values outside the trained range and
unseen categories follow the model's policy: refused (``reject``) or scored and flagged (``flag``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from medops.errors import InvalidInput

MAX_LISTED = 50  # field errors listed in one response; the count says how many there were


class DuplicateField(ValueError):
    """A JSON object naming a field twice: which of its values the caller meant is not the server's to
    guess (Python's parser keeps the last, other readers of the logged text may keep the first)."""

    def __init__(self, field: str) -> None:
        super().__init__(f"field {field!r} is named more than once in one row; send each field once")
        self.field = field


def first_repeated(names: Iterable[str]) -> str | None:
    """The first name seen a second time (a JSON object's keys, a table's columns), or None."""
    seen: set[str] = set()
    for name in names:
        if name in seen:
            return name
        seen.add(name)
    return None


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    row = dict(pairs)
    if len(row) != len(pairs):
        raise DuplicateField(str(first_repeated(name for name, _ in pairs)))
    return row


_DECODER = json.JSONDecoder(object_pairs_hook=_unique)


def parse_json(body: bytes) -> Any:
    """A request's JSON body, as ``json.loads`` reads it (UTF-8, -16 or -32; NaN and Infinity reach
    the field checks), refusing an object that names a field twice (DuplicateField). ValueError or
    UnicodeDecodeError for a body that is not JSON."""
    return _DECODER.decode(body.decode(json.detect_encoding(body), "surrogatepass"))


@dataclass(frozen=True)
class FieldError:
    row: int
    field: str
    code: str  # missing_field, unknown_field, wrong_type, not_a_number, not_finite, out_of_range, unseen_category
    message: str

    def to_json(self) -> dict[str, Any]:
        return {"row": self.row, "field": self.field, "code": self.code, "message": self.message}


class RowsInvalid(InvalidInput):
    """Rows the model can't score; ``errors`` says where, without the values."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__(
            f"{len(errors)} problem{'s' if len(errors) != 1 else ''} in the input",
            code="invalid_rows",
            hint="GET /v1/models/{name} shows the input schema and an example row",
        )
        self.errors = errors


@dataclass
class Checked:
    """Valid rows as one array per feature, and per row the features flagged under the ``flag`` policy."""

    columns: dict[str, np.ndarray]
    rows: int
    flags: list[list[str]] = field(default_factory=list)


def check_rows(records: list[Any], input_schema: dict[str, Any]) -> Checked:
    """The rows as columns the model scores, or RowsInvalid listing every problem found."""
    features = list(input_schema.get("features", []))
    policy = str(input_schema.get("out_of_range", "reject"))
    known = {f["name"] for f in features}
    errors: list[FieldError] = []
    values: dict[str, list[Any]] = {f["name"]: [] for f in features}
    flags: list[list[str]] = []
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            errors.append(FieldError(index, "", "wrong_type", "a row is a JSON object of feature names to values"))
            flags.append([])
            continue
        for name in sorted(set(record) - known):
            errors.append(FieldError(index, str(name)[:64], "unknown_field", "not an input of this model"))
        flagged: list[str] = []
        for feature in features:
            name = feature["name"]
            value, problem = _field(feature, name in record, record.get(name))
            values[name].append(value)
            if problem is None:
                continue
            code, message = problem
            if code in ("out_of_range", "unseen_category") and policy == "flag":
                flagged.append(name)
            else:
                errors.append(FieldError(index, name, code, message))
        flags.append(flagged)
    if errors:
        raise RowsInvalid(errors)
    columns = {
        f["name"]: np.asarray(values[f["name"]], dtype=np.float64 if f.get("type") == "number" else object)
        for f in features
    }
    return Checked(columns, len(records), flags)


def _field(feature: dict[str, Any], present: bool, value: Any) -> tuple[Any, tuple[str, str] | None]:
    """The value as the model takes it, and what is wrong with it (code, message without the value)."""
    kind, required = feature.get("type"), bool(feature.get("required"))
    if not present or value is None:
        if required:
            return _missing(kind), ("missing_field", "required: the model was never trained without it")
        return _missing(kind), None
    if kind == "number":
        if isinstance(value, bool) or not isinstance(value, int | float):
            code = "not_a_number" if isinstance(value, str) else "wrong_type"
            return math.nan, (code, "expected a number")
        try:
            number = float(value)
        except OverflowError:  # a whole number of hundreds of digits: JSON allows it, no float holds it
            return math.nan, ("not_finite", "too large to be a number")
        if not math.isfinite(number):
            return math.nan, ("not_finite", "NaN and infinity are not accepted")
        low, high = float(feature["min"]), float(feature["max"])
        if not low <= number <= high:
            return number, ("out_of_range", f"outside the trained range [{low:g}, {high:g}]")
        return number, None
    if kind == "category":
        if isinstance(value, bool) or not isinstance(value, str | int):
            return None, ("wrong_type", "expected a category (a string)")
        text = str(value)
        if text not in set(feature.get("categories") or []):
            return text, ("unseen_category", "a category not seen in training")
        return text, None
    if isinstance(value, dict | list):
        return None, ("wrong_type", "expected a single value")
    return value, None


def _missing(kind: Any) -> Any:
    return math.nan if kind == "number" else None
