"""A dataset version's records as a person reads them: the contract's outcome in rows, the
de-identification per column with the k-anonymity it reached, and the profile as one line per column.

The documents are `medops data show --json`'s; this only chooses what a table shows, so a page can't
say something the record does not.
"""

from __future__ import annotations

from typing import Any


def contract(doc: Any) -> dict[str, Any] | None:
    """Rows read, kept and quarantined, and each broken rule with its count (its samples stay in the
    record: they are rows of patient data)."""
    if not isinstance(doc, dict) or "rows" not in doc:
        return None
    failed = int(doc.get("rows_failed") or 0)
    outcome = str(doc.get("outcome") or "")
    return {
        "read": doc["rows"],
        "failed": failed,
        "kept": doc["rows"] - failed if outcome == "quarantine" else doc["rows"],
        "outcome": outcome,
        "passed": bool(doc.get("passed")),
        "rules": [(r.get("rule", ""), r.get("failures", 0)) for r in doc.get("rules", [])],
        "stale": doc.get("stale"),
    }


def deidentification(doc: Any) -> dict[str, Any] | None:
    if not isinstance(doc, dict) or "columns" not in doc:
        return None
    return {
        "columns": [(c.get("column"), c.get("action"), c.get("changed"), c.get("note") or "") for c in doc["columns"]],
        "quasi": doc.get("quasi_identifiers") or [],
        "k": doc.get("k_anonymity"),
        "counted": doc.get("k_counts") or "rows",
        "below_5": doc.get("share_below_k5"),
        "redactions": doc.get("text_redactions") or {},
        "warnings": doc.get("warnings") or [],
    }


def profile(doc: Any) -> list[dict[str, Any]]:
    """One row per column: type, missing share, distinct count (marked when estimated), and its range
    or its most frequent values."""
    if not isinstance(doc, dict):
        return []
    rows = []
    for column, stats in doc.items():
        if not isinstance(stats, dict):
            continue
        quantiles = stats.get("quantiles") or {}
        if stats.get("kind") == "number":
            spread = f"{_short(stats.get('min'))} · median {_short(quantiles.get('p50'))} · {_short(stats.get('max'))}"
        elif stats.get("kind") == "time":
            spread = f"{str(stats.get('min', ''))[:10]} to {str(stats.get('max', ''))[:10]}"
        else:
            spread = ", ".join(f"{value} ({count})" for value, count in (stats.get("top") or [])[:3])
        rows.append(
            {
                "column": column,
                "type": stats.get("type", ""),
                "missing": stats.get("missing_share"),
                "distinct": stats.get("distinct"),
                "exact": stats.get("distinct_exact", True),
                "spread": spread,
            }
        )
    return rows


def _short(value: Any) -> str:
    return "" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)
