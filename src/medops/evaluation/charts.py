"""Validation charts as inline SVG strings: ROC, precision-recall and calibration.

The report is one self-contained HTML file, so each chart is an ``<svg>`` element to paste
into the page: no image files, no network. Text stays text (``svg.fonttype: none``), so the
charts are crisp in print and searchable. The output is deterministic (a fixed hash salt per
chart, no date in the metadata, the metadata block dropped), so the same document always gives
the same bytes and two reports can be compared with diff. The hash salt differs between
charts because the SVG element ids are hashes of the salt and the geometry: three charts with
the same layout in one page must not share ids.

matplotlib is imported inside the functions: the CLI imports this module and must start fast.
The strings are for inline HTML, not standalone ``.svg`` files: the namespace declarations
are left out (the HTML parser supplies them). The ``Figure`` object API is used directly (no
pyplot), so nothing touches global state.
"""

from __future__ import annotations

import io
import math
import numbers
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

WIDTH_IN, HEIGHT_IN = 3.8, 3.0  # at 100 px per inch: about 380 x 300 px on screen
INK, GRID, ACCENT, MUTED = "#1f2933", "#d9dee3", "#1d5fa7", "#8a949e"
RC: Any = {  # Any: matplotlib's stubs want each key as a literal
    "svg.fonttype": "none",
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans"],  # always bundled with matplotlib; the page's CSS may override
    "font.size": 9.0,
    "axes.labelsize": 9.0,
    "xtick.labelsize": 8.0,
    "ytick.labelsize": 8.0,
    "axes.edgecolor": MUTED,
    "axes.labelcolor": INK,
    "axes.linewidth": 0.6,
    "xtick.color": INK,
    "ytick.color": INK,
    "xtick.major.width": 0.6,
    "ytick.major.width": 0.6,
    "legend.frameon": False,
    "legend.fontsize": 8.0,
}
_PREAMBLE = re.compile(r"\A.*?(?=<svg\b)", re.S)
_METADATA = re.compile(r"\s*<metadata>.*?</metadata>", re.S)
_SIZE = re.compile(r'<svg([^>]*?)\swidth="[^"]*"\s+height="[^"]*"')
_ID = re.compile(r'\sid="([^"]*)"')
_REFERENCE = re.compile(r'(?:url\(#|href="#)([^)"]+)')
_XMLNS = re.compile(r'\sxmlns(?::\w+)?="[^"]*"')
_BIN = re.compile(r"(-?\d+(?:\.\d+)?)\s*[–—-]\s*(-?\d+(?:\.\d+)?)")


def _finite(value: Any) -> float | None:
    """A plottable float, or None for missing, NaN, infinite or non-numeric values."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _pairs(points: Iterable[Sequence[Any]] | None) -> tuple[list[float], list[float]]:
    """The finite (x, y) pairs of a curve; undefined points are dropped, not drawn at zero."""
    xs: list[float] = []
    ys: list[float] = []
    for point in points or ():
        if len(point) < 2:
            continue
        x, y = _finite(point[0]), _finite(point[1])
        if x is not None and y is not None:
            xs.append(x)
            ys.append(y)
    return xs, ys


def new_figure(*, wide: bool = False) -> Figure:
    """A chart's figure: the validation report's size, or twice as wide for a series over time."""
    from matplotlib.figure import Figure

    return Figure(figsize=(WIDTH_IN * (2 if wide else 1), HEIGHT_IN), dpi=100, layout="constrained")


def styled() -> Any:
    """The charts' matplotlib settings, for a ``with`` block around drawing."""
    import matplotlib

    return matplotlib.rc_context(RC)


def _style(ax: Axes, xlabel: str, ylabel: str) -> None:
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_xticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    ax.set_yticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    ax.grid(True, color=GRID, linewidth=0.5)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def no_data(ax: Axes) -> None:
    ax.text(0.5, 0.5, "no data", ha="center", va="center", color=MUTED, transform=ax.transAxes)


def to_svg(fig: Figure, salt: str, label: str | None = None) -> str:
    """Serialise a figure to an ``<svg>`` element for inline HTML, the same bytes every time.

    ``label`` names the chart for a screen reader (by default its axes: "y against x").
    """
    import html

    import matplotlib

    if label is None:
        axes = fig.get_axes()
        label = f"Chart of {axes[0].get_ylabel()} against {axes[0].get_xlabel()}" if axes else "Chart"

    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": f"medops-{salt}", "svg.fonttype": "none"}):
        fig.savefig(buffer, format="svg", metadata={"Date": None})
    text = _METADATA.sub("", _PREAMBLE.sub("", buffer.getvalue(), count=1), count=1)
    # Element ids like "figure_1" repeat in every chart and would clash in one page; only the
    # referenced ones (clip paths, markers: salted hashes, so unique per chart) are kept.
    used = set(_REFERENCE.findall(text))
    text = _ID.sub(lambda m: m.group(0) if m.group(1) in used else "", text)
    # matplotlib's one rule is for "*": inline in a page it would apply to the page too.
    text = text.replace("*{stroke-linejoin", "svg.chart *{stroke-linejoin", 1)
    # The HTML parser knows the SVG and xlink namespaces; declaring them would only put URLs in the page.
    text = _XMLNS.sub("", text)
    # The page's CSS sizes the chart from the viewBox; fixed pt sizes would not scale.
    attributes = f'class="chart" role="img" aria-label="{html.escape(label)}" preserveAspectRatio="xMidYMid meet"'
    return _SIZE.sub(lambda m: f"<svg{m.group(1)} {attributes}", text, count=1).strip()


def _label(title: str, value: float | None) -> str:
    return title if value is None else f"{title} = {value:.3f}"


def roc_svg(points: Iterable[Sequence[Any]] | None, auroc: Any = None) -> str:
    """ROC curve (false positive rate, true positive rate) with the chance diagonal."""
    import matplotlib

    with matplotlib.rc_context(RC):
        fig = new_figure()
        ax = fig.add_subplot()
        _style(ax, "1 − specificity (false positive rate)", "Sensitivity")
        ax.plot([0, 1], [0, 1], linestyle="--", color=MUTED, linewidth=0.8, label="Chance")
        xs, ys = _pairs(points)
        if xs:
            ax.plot(xs, ys, color=ACCENT, linewidth=1.6, label=_label("Model, AUROC", _finite(auroc)))
            ax.legend(loc="lower right")
        else:
            no_data(ax)
        return to_svg(fig, "roc", "ROC curve: sensitivity against 1 - specificity")


def pr_svg(points: Iterable[Sequence[Any]] | None, prevalence: Any = None, auprc: Any = None) -> str:
    """Precision-recall curve with the prevalence line: the precision of a model that guesses."""
    import matplotlib

    with matplotlib.rc_context(RC):
        fig = new_figure()
        ax = fig.add_subplot()
        _style(ax, "Sensitivity (recall)", "PPV (precision)")
        base = _finite(prevalence)
        if base is not None:
            ax.axhline(base, linestyle="--", color=MUTED, linewidth=0.8, label=_label("Prevalence", base))
        xs, ys = _pairs(points)
        if xs:
            ax.plot(xs, ys, color=ACCENT, linewidth=1.6, label=_label("Model, AUPRC", _finite(auprc)))
        else:
            no_data(ax)
        if xs or base is not None:
            ax.legend(loc="upper right")
        return to_svg(fig, "pr", "Precision against recall")


def _bin_edges(label: Any) -> tuple[float, float] | None:
    match = _BIN.search(str(label)) if label is not None else None
    if match is None:
        return None
    low, high = float(match.group(1)), float(match.group(2))
    return (low, high) if high > low else None


def calibration_svg(bins: Iterable[Mapping[str, Any]] | None) -> str:
    """Reliability diagram: observed rate against mean predicted risk per bin, ideal diagonal, counts below.

    The marker area grows with the bin's count, and a bar strip under the plot gives the counts
    themselves, so a reader sees at once which points rest on few patients.
    """
    import matplotlib

    rows = []
    for item in bins or ():
        x, y, count = _finite(item.get("mean_predicted")), _finite(item.get("observed")), _finite(item.get("count"))
        rows.append((x, y, count or 0.0, _bin_edges(item.get("bin"))))
    with matplotlib.rc_context(RC):
        fig = new_figure()
        grid = fig.add_gridspec(2, 1, height_ratios=(4, 1))
        ax = fig.add_subplot(grid[0])
        strip = fig.add_subplot(grid[1], sharex=ax)
        _style(ax, "", "Observed rate")
        ax.tick_params(labelbottom=False)
        ax.plot([0, 1], [0, 1], linestyle="--", color=MUTED, linewidth=0.8, label="Ideal")
        points = [(x, y, n) for x, y, n, _ in rows if x is not None and y is not None]
        if points:
            largest = max(n for _, _, n in points) or 1.0
            sizes = [12 + 60 * n / largest for _, _, n in points]
            ax.plot([p[0] for p in points], [p[1] for p in points], color=ACCENT, linewidth=1.0, zorder=2)
            ax.scatter(
                [p[0] for p in points],
                [p[1] for p in points],
                s=sizes,
                color=ACCENT,
                edgecolor="white",
                linewidth=0.6,
                zorder=3,
                label="Bins (area ∝ count)",
            )
            ax.legend(loc="upper left")
        else:
            no_data(ax)
        lefts, widths, heights = [], [], []
        for x, _, n, edges in rows:
            if edges is not None:
                lefts.append(edges[0] + (edges[1] - edges[0]) * 0.08)
                widths.append((edges[1] - edges[0]) * 0.84)
            elif x is not None:
                lefts.append(x - 0.04)
                widths.append(0.08)
            else:
                continue
            heights.append(n)
        strip.bar(lefts, heights, width=widths, align="edge", color=MUTED, linewidth=0)
        strip.set_xlim(-0.01, 1.01)
        strip.set_xticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
        strip.set_xlabel("Mean predicted risk")
        strip.set_ylabel("Count", fontsize=8)
        strip.tick_params(axis="y", labelsize=7)
        strip.locator_params(axis="y", nbins=2)
        for side in ("top", "right"):
            strip.spines[side].set_visible(False)
        return to_svg(fig, "calibration", "Calibration: observed rate against predicted risk")
