"""The monitoring report's charts over windows, as inline SVG (no files, no network, same bytes each time).

Built on the validation report's chart helpers (medops.evaluation.charts): the figure size, the
style, and the deterministic SVG. A point that could not be computed (a window too small, or
without labels) is a gap in its line, never a zero.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from medops.evaluation.charts import MUTED, new_figure, no_data, styled, to_svg

if TYPE_CHECKING:
    from matplotlib.axes import Axes

PALETTE = ("#1f5f99", "#c2571a", "#2e7d32", "#8e44ad", "#b8860b", "#00838f", "#ad1457", "#5d4037")
MAX_LINES = 8  # more lines than this are unreadable: the largest are drawn, the rest listed in the table


def _axes(ax: Axes, labels: Sequence[str], ylabel: str) -> None:
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, rotation=45 if len(labels) > 6 else 0, ha="right" if len(labels) > 6 else "center")
    ax.set_ylabel(ylabel)
    ax.grid(True, color="#e6e6e6", linewidth=0.5)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _line(ax: Axes, values: Sequence[float | None], **style: object) -> None:
    xs = [i for i, v in enumerate(values) if v is not None]
    ys = [v for v in values if v is not None]
    ax.plot(xs, ys, marker="o", markersize=3, linewidth=1.2, **style)  # type: ignore[arg-type]


def _lines_svg(
    labels: Sequence[str],
    series: Mapping[str, Sequence[float | None]],
    *,
    ylabel: str,
    threshold: float | None = None,
    reference: float | None = None,
    salt: str,
) -> str:
    """One line per series over the windows, with the threshold (dashed) and reference (dotted) if given."""
    fig = new_figure(wide=True)
    ax = fig.add_subplot()
    drawn = {k: v for k, v in series.items() if any(x is not None for x in v)}
    if not labels or not drawn:
        no_data(ax)
        return to_svg(fig, salt)
    for i, (name, values) in enumerate(list(drawn.items())[:MAX_LINES]):
        _line(ax, values, color=PALETTE[i % len(PALETTE)], label=name)
    if threshold is not None:
        ax.axhline(threshold, color=MUTED, linestyle="--", linewidth=0.8, label=f"threshold {threshold:g}")
    if reference is not None:
        ax.axhline(reference, color=MUTED, linestyle=":", linewidth=0.8, label=f"validated {reference:.3f}")
    _axes(ax, labels, ylabel)
    ax.legend(fontsize=7, frameon=False, loc="upper left")
    return to_svg(fig, salt)


def _intervals_svg(
    labels: Sequence[str],
    values: Sequence[float | None],
    lows: Sequence[float | None],
    highs: Sequence[float | None],
    *,
    ylabel: str,
    reference: float | None,
    salt: str,
) -> str:
    """A metric per window with its interval, beside the validated value."""
    fig = new_figure(wide=True)
    ax = fig.add_subplot()
    points = [(i, v, lo, hi) for i, (v, lo, hi) in enumerate(zip(values, lows, highs, strict=True)) if v is not None]
    if not points:
        no_data(ax)
        return to_svg(fig, salt)
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    below = [p[1] - (p[2] if p[2] is not None else p[1]) for p in points]
    above = [(p[3] if p[3] is not None else p[1]) - p[1] for p in points]
    ax.errorbar(xs, ys, yerr=[below, above], fmt="o", color=PALETTE[0], capsize=3, markersize=4, linewidth=1)
    if reference is not None:
        ax.axhline(reference, color=MUTED, linestyle=":", linewidth=0.8, label=f"validated {reference:.3f}")
        ax.legend(fontsize=7, frameon=False, loc="lower left")
    _axes(ax, labels, ylabel)
    return to_svg(fig, salt)


def _bars_svg(labels: Sequence[str], values: Sequence[float | None], *, ylabel: str, salt: str) -> str:
    """A share per window (label completeness), 0 to 1."""
    fig = new_figure(wide=True)
    ax = fig.add_subplot()
    if not labels:
        no_data(ax)
        return to_svg(fig, salt)
    ax.bar(range(len(labels)), [v or 0.0 for v in values], color=PALETTE[0], width=0.6)
    ax.set_ylim(0, 1.02)
    _axes(ax, labels, ylabel)
    return to_svg(fig, salt)


def lines_svg(labels: Sequence[str], series: Mapping[str, Sequence[float | None]], **kwargs: Any) -> str:
    """One line per series over the windows, with the threshold (dashed) and reference (dotted) if given."""
    with styled():
        return _lines_svg(labels, series, **kwargs)


def intervals_svg(labels: Sequence[str], values: Sequence[float | None], *args: Any, **kwargs: Any) -> str:
    """A metric per window with its interval, beside the validated value."""
    with styled():
        return _intervals_svg(labels, values, *args, **kwargs)


def bars_svg(labels: Sequence[str], values: Sequence[float | None], **kwargs: Any) -> str:
    """A share per window (label completeness), 0 to 1."""
    with styled():
        return _bars_svg(labels, values, **kwargs)
