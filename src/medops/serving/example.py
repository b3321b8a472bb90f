"""A synthetic request row from the training statistics the bundle's input schema keeps."""

from __future__ import annotations

from typing import Any


def example_row(input_schema: dict[str, Any]) -> dict[str, Any]:
    """One row inside every check: the middle of each numeric range (whole when the range's ends
    are whole, as ages and counts are), the first category seen; no patient's value is in it."""
    row: dict[str, Any] = {}
    for feature in input_schema.get("features", []):
        kind = feature.get("type")
        if kind == "number":
            low, high = float(feature["min"]), float(feature["max"])
            middle = (low + high) / 2
            row[feature["name"]] = round(middle) if low.is_integer() and high.is_integer() else round(middle, 4)
        elif kind == "category":
            categories = feature.get("categories") or []
            row[feature["name"]] = categories[0] if categories else None
        else:
            row[feature["name"]] = None
    return row
