"""Unit changes: a numeric feature whose new values look like the reference in another unit.

A lab that starts reporting glucose in mmol/L, or one site's thermometers in Fahrenheit, shifts
a feature in a way drift statistics only call "large". This check names the cause. For each
known affine conversion (current = factor x reference + offset, both directions), a current
value is a suspect when it is implausible for the reference (outside its 0.1 to 99.9 %
quantiles, widened by half their span) while its conversion back lands inside the reference's
1 to 99 % quantiles. The conversion with the most suspects is named when they are at least
``MIN_SHARE`` of the window (and ``MIN_VALUES`` values) and, converted back, look like the
reference (KS at most ``MAX_KS``): a mixture of units (one site converted) is found as well
as a full switch.

Suspects are counted chunk by chunk into summaries on the reference's grid, so the check runs
in bounded memory over a window of any size and does not depend on the order of the rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from medops.monitoring.statistics import ks
from medops.monitoring.summary import NumericSummary

MIN_SHARE = 0.01
MIN_VALUES = 20
MAX_KS = 0.15


@dataclass(frozen=True)
class Conversion:
    """current = factor * reference + offset: the reference is in ``reference_unit``, the current in ``unit``."""

    unit: str
    reference_unit: str
    factor: float
    offset: float = 0.0

    @property
    def label(self) -> str:
        return f"{self.unit} (reference in {self.reference_unit})"

    def back(self, values: np.ndarray) -> np.ndarray:
        return (values - self.offset) / self.factor


def _both(unit: str, reference_unit: str, factor: float, offset: float = 0.0) -> list[Conversion]:
    forward = Conversion(unit, reference_unit, factor, offset)
    return [forward, Conversion(reference_unit, unit, 1 / factor, -offset / factor)]


# Clinical units that are often mixed up. Factors: temperature by definition; glucose 18.016 mg/dL
# per mmol/L; creatinine 88.42 umol/L per mg/dL; cholesterol 38.67 mg/dL per mmol/L; HbA1c IFCC
# mmol/mol = 10.929 x (NGSP % - 2.15); hemoglobin 10 g/L per g/dL; 2.20462 lb per kg; 2.54 cm per inch.
CONVERSIONS: tuple[Conversion, ...] = tuple(
    _both("degF", "degC", 9 / 5, 32.0)
    + _both("mg/dL (glucose)", "mmol/L (glucose)", 18.016)
    + _both("umol/L (creatinine)", "mg/dL (creatinine)", 88.42)
    + _both("mg/dL (cholesterol)", "mmol/L (cholesterol)", 38.67)
    + _both("mmol/mol (HbA1c, IFCC)", "% (HbA1c, NGSP)", 10.929, -10.929 * 2.15)
    + _both("g/L", "g/dL", 10.0)
    + _both("lb", "kg", 2.20462)
    + _both("cm", "in", 2.54)
)


@dataclass(frozen=True)
class Plausible:
    """The reference's ranges this check judges by (kept in the reference profile)."""

    outer: tuple[float, float]  # outside this, a value is implausible for the reference
    inner: tuple[float, float]  # a converted value must land inside this

    @classmethod
    def of(cls, values: np.ndarray) -> Plausible | None:
        known = np.asarray(values, dtype=float)
        known = known[np.isfinite(known)]
        if len(known) < MIN_VALUES:
            return None
        # from the 1st and 99th percentiles, not the extremes: a feed's own entry errors (a lost decimal
        # point in 0.2% of temperatures) would otherwise widen "plausible" past a whole other unit
        low, high = (float(v) for v in np.quantile(known, [0.01, 0.99]))
        width = high - low
        return cls((low - width, high + width), (low, high))

    def to_doc(self) -> dict[str, list[float]]:
        return {"outer": list(self.outer), "inner": list(self.inner)}

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Plausible:
        return cls((float(doc["outer"][0]), float(doc["outer"][1])), (float(doc["inner"][0]), float(doc["inner"][1])))


@dataclass
class UnitProbe:
    """The suspects of every conversion for one feature, counted over a window."""

    plausible: Plausible
    edges: np.ndarray
    seen: int = 0
    suspects: dict[str, NumericSummary] = field(default_factory=dict)

    def add(self, values: np.ndarray) -> None:
        numbers = np.asarray(values, dtype=float)
        numbers = numbers[np.isfinite(numbers)]
        self.seen += len(numbers)
        low, high = self.plausible.outer
        odd = numbers[(numbers < low) | (numbers > high)]
        if not len(odd):
            return
        inner_low, inner_high = self.plausible.inner
        for conversion in CONVERSIONS:
            back = conversion.back(odd)
            fits = back[(back >= inner_low) & (back <= inner_high)]
            if len(fits):
                summary = self.suspects.setdefault(conversion.label, NumericSummary.empty(self.edges))
                summary.add(fits)

    def merge(self, other: UnitProbe) -> UnitProbe:
        merged = UnitProbe(self.plausible, self.edges, self.seen + other.seen, dict(self.suspects))
        for label, summary in other.suspects.items():
            mine = merged.suspects.get(label)
            merged.suspects[label] = summary if mine is None else mine.merge(summary)
        return merged

    def verdict(self, reference: NumericSummary) -> dict[str, Any] | None:
        """The suspected unit, or None: the conversion with the most suspects, if enough and alike."""
        if not self.suspects or not self.seen:
            return None
        label, summary = max(self.suspects.items(), key=lambda item: (item[1].n, item[0]))
        share = summary.n / self.seen
        if summary.n < MIN_VALUES or share < MIN_SHARE:
            return None
        alike = ks(reference, summary)
        if alike.value > MAX_KS:
            return None
        return {"suspected_unit": label, "share": share, "values": summary.n, "ks_after_conversion": alike.value}
