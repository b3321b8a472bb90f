"""The validation report (one self-contained HTML page) and the model card (Markdown and HTML).

Both are rendered from the evaluation document alone, so a report can be re-rendered from
the stored document at any time and says nothing the document does not. Readers are a
hospital's validation committee or a regulator: the report is sober, prints on A4, and never
hides a failure behind colour alone (every highlight has a text marker too).

Safety: the document holds user text (project description, intended use, names), so every
value is escaped: HTML by Jinja's autoescape, Markdown by the ``md`` filter, which also
escapes HTML, since Markdown viewers pass raw HTML through. The page loads nothing from
the network: the CSS is inlined and the charts are inline SVG (``medops.evaluation.charts``).

Numbers show three decimals, intervals as ``0.812 (0.790–0.833)``; NaN, infinity and None
show as an em dash, which the page's legend calls undefined; never as "nan".

The document may come from an older or newer producer: missing keys render as empty or
undefined rather than failing, so a report can always be produced to look at.
"""

from __future__ import annotations

import hashlib
import json
import math
import numbers
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import ChainableUndefined, Environment, FileSystemLoader, Undefined
from markupsafe import Markup

from medops.version import __version__

TEMPLATES = Path(__file__).with_name("templates")
UNDEFINED = "—"

# (key, label, meaning) by section of the metrics table; metrics the document has beyond these come last.
METRIC_SECTIONS: tuple[tuple[str, tuple[tuple[str, str, str], ...]], ...] = (
    (
        "Discrimination (independent of the threshold)",
        (
            ("auroc", "AUROC", "chance that a random positive scores above a random negative"),
            ("auprc", "AUPRC", "average precision over all thresholds; compare with the prevalence"),
        ),
    ),
    (
        "At the operating threshold",
        (
            ("sensitivity", "Sensitivity", "share of positives flagged (recall)"),
            ("specificity", "Specificity", "share of negatives not flagged"),
            ("ppv", "PPV", "share of flagged patients who are positive (precision)"),
            ("npv", "NPV", "share of patients not flagged who are negative"),
            ("f1", "F1", "harmonic mean of sensitivity and PPV"),
            ("fpr", "False positive rate", "share of negatives flagged (1 − specificity)"),
            ("selection_rate", "Selection rate", "share of all patients flagged"),
        ),
    ),
    (
        "Calibration",
        (
            ("brier", "Brier score", "mean squared error of the predicted risk; lower is better"),
            ("calibration_slope", "Calibration slope", "1 is ideal; below 1, predictions are too extreme"),
            ("calibration_intercept", "Calibration intercept", "0 is ideal; above 0, risk is underestimated"),
            ("ece", "ECE", "expected calibration error over ten risk bins; lower is better"),
        ),
    ),
    ("Population", (("prevalence", "Prevalence", "share of positives in the test set"),)),
)
METRIC_LABELS = {key: label for _, rows in METRIC_SECTIONS for key, label, _ in rows}
CARD_METRICS = ("auroc", "auprc", "sensitivity", "specificity", "ppv", "npv", "brier", "calibration_slope", "ece")
GAP_LABELS = {
    "equal_opportunity": "Equal opportunity",
    "equalized_odds": "Equalized odds",
    "demographic_parity": "Demographic parity",
    "calibration": "Calibration (group ECE)",
}
GAP_COLUMNS = ("equal_opportunity", "equalized_odds", "demographic_parity")
SUBGROUP_METRICS = ("auroc", "sensitivity", "specificity", "ppv", "ece")
# A flagged gap that is not a column of its own is marked on the column it is about.
GAP_CELL = {"calibration": "ece", **{m: m for m in SUBGROUP_METRICS}}
KEY_PACKAGES = ("medops", "scikit-learn", "lightgbm", "xgboost", "numpy", "pandas", "scipy", "pyarrow")


# ---------------------------------------------------------------- formatting


def _finite(value: Any) -> float | None:
    """A finite float, or None; numpy scalars count as numbers (they may slip into a document)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def number(value: Any, digits: int = 3) -> str:
    """Three decimals for floats, thousands separators for counts, an em dash for undefined."""
    if value is None or isinstance(value, Undefined):  # Undefined: a key missing from the document
        return UNDEFINED
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, numbers.Integral):
        return f"{int(value):,}"
    if isinstance(value, numbers.Real):
        if not math.isfinite(value):
            return UNDEFINED
        text = f"{float(value):.{digits}f}"
        return text[1:] if text.startswith("-") and float(text) == 0 else text
    return str(value)


def signed(value: Any) -> str:
    """A change or a gap: always with its sign, so +0.000 and -0.012 read as differences."""
    finite = _finite(value)
    if finite is None:
        return UNDEFINED
    text = number(finite)
    return text if text.startswith("-") else f"+{text}"


def plain(value: Any) -> str:
    """A value as the user wrote it (an input range, a bin edge): ``34.1``, not ``34.100``."""
    finite = _finite(value)
    if finite is None:
        return UNDEFINED if value is None or isinstance(value, float) else str(value)
    return f"{finite:g}"


def percent(value: Any) -> str:
    finite = _finite(value)
    return UNDEFINED if finite is None else f"{finite * 100:.1f} %"


def ci_range(metric: Any) -> str:
    """``0.790–0.833``; with a negative bound ``-0.210 to -0.094``, where a dash would read as a minus."""
    if not isinstance(metric, Mapping):
        return ""
    low, high = _finite(metric.get("low")), _finite(metric.get("high"))
    if low is None or high is None:
        return "CI undefined" if _finite(metric.get("value")) is not None else ""
    if low < 0 or high < 0:
        return f"{number(low)} to {number(high)}"
    return f"{number(low)}–{number(high)}"


def interval(metric: Any) -> str:
    """``0.812 (0.790–0.833)``: the estimate and its bootstrap interval."""
    if not isinstance(metric, Mapping):
        return number(metric)
    value = number(metric.get("value"))
    if value == UNDEFINED:
        return UNDEFINED
    return f"{value} ({ci_range(metric)})"


def when(value: Any) -> str:
    """An ISO-8601 time as ``2025-03-14 09:12 UTC``; anything unparsable as given."""
    if not value:
        return UNDEFINED
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def short(value: Any, length: int = 12) -> str:
    return str(value)[:length] if value else UNDEFINED


_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~])")
_MD_ENTITY = re.compile(r"&(?=#?\w+;)")
_TAG_START = re.compile(r"<(?=[A-Za-z/!?])")


def markdown_code(value: Any) -> str:
    """A Markdown code span: its content is shown verbatim, so only backticks and newlines need care."""
    text = re.sub(r"\s+", " ", str(value).replace("`", "'")).strip()
    return f"`{text}`" if text else UNDEFINED


def markdown(value: Any) -> str:
    """User text made inert in Markdown: HTML escaped, Markdown punctuation escaped, on one line."""
    text = number(value) if not isinstance(value, str) else value
    # Only a "<" that could open a tag (a letter, "/", "!" or "?" after it) is made an entity: "<60" and
    # "n < 50" stay readable in the Markdown file, and no HTML gets through to a viewer.
    text = _TAG_START.sub("&lt;", _MD_ENTITY.sub("&amp;", text)).replace(">", "&gt;")
    text = _MD_SPECIAL.sub(r"\\\1", text)
    text = re.sub(r"\s+", " ", text).strip()
    # At a line's start, "# ", "- ", "+ ", "1. " or "===" would make a heading or a list.
    text = re.sub(r"^(\d+)([.)])(?=\s|$)", r"\1\\\2", text)
    return re.sub(r"^([-+#=])(?=[-+#=]*(?:\s|$))", r"\\\1", text)


# ---------------------------------------------------------------- the view of the document


def _get(mapping: Any, key: str, default: Any = None) -> Any:
    return mapping.get(key, default) if isinstance(mapping, Mapping) else default


def _list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, Sequence) and not isinstance(value, str) else []


def _metric_rows(metrics: Mapping[str, Any]) -> list[dict[str, Any]]:
    sections = []
    for title, rows in METRIC_SECTIONS:
        present = [
            {"key": k, "label": label, "meaning": m, "metric": metrics[k]} for k, label, m in rows if k in metrics
        ]
        if present:
            sections.append({"title": title, "rows": present})
    extra = [{"key": k, "label": k, "meaning": "", "metric": v} for k, v in metrics.items() if k not in METRIC_LABELS]
    if extra:
        sections.append({"title": "Other", "rows": extra})
    return sections


def _attribute_note(name: str, attributes: Mapping[str, Any]) -> str:
    spec = _get(attributes, name)
    if spec is None:
        parts = [p.strip() for p in name.split("×")]
        return f"intersection of {', '.join(parts)}" if len(parts) > 1 else ""
    notes = []
    column = _get(spec, "column")
    if column and column != name:
        notes.append(f"column {column}")
    if _get(spec, "source"):
        notes.append(f"from {_get(spec, 'source')}")
    bins = _list(_get(spec, "bins"))
    if bins:
        notes.append("banded at " + ", ".join(plain(b) for b in bins))
    return "; ".join(notes)


def _prevalence(group: Mapping[str, Any]) -> float | None:
    """From the group's metrics when there, else from its counts (a too-small group has no metrics)."""
    value = _finite(_get(_get(_get(group, "metrics"), "prevalence"), "value"))
    if value is not None:
        return value
    n, positives = _finite(_get(group, "n")), _finite(_get(group, "positives"))
    return positives / n if n and positives is not None else None


def _subgroups(subgroups: Any) -> dict[str, Any] | None:
    """Groups by attribute, in the document's order, each row with its cells and its flagged gaps."""
    if not isinstance(subgroups, Mapping):
        return None
    attributes = _get(subgroups, "attributes", {})
    sections: dict[str, dict[str, Any]] = {}
    flagged_gaps = []
    for group in _list(_get(subgroups, "groups")):
        attribute = str(_get(group, "attribute", ""))
        section = sections.setdefault(
            attribute, {"attribute": attribute, "note": _attribute_note(attribute, attributes), "rows": []}
        )
        metrics, gaps = _get(group, "metrics") or {}, _get(group, "gaps") or {}
        flagged = [str(f) for f in _list(_get(group, "flagged"))]
        marked = {GAP_CELL.get(f, f) for f in flagged}
        section["rows"].append(
            {
                "group": _get(group, "group", ""),
                "n": _get(group, "n"),
                "positives": _get(group, "positives"),
                "prevalence": _prevalence(group),
                "too_small": bool(_get(group, "too_small")),
                "why_small": _why_small(group, subgroups),
                "metrics": [{"metric": _get(metrics, m), "flagged": m in marked} for m in SUBGROUP_METRICS],
                "gaps": [{"metric": _get(gaps, g), "flagged": g in marked} for g in GAP_COLUMNS],
                "flagged": flagged,
            }
        )
        for name in flagged:
            flagged_gaps.append(
                {
                    "attribute": attribute,
                    "group": _get(group, "group", ""),
                    "gap": GAP_LABELS.get(name, f"Δ {METRIC_LABELS.get(name, name)}"),
                    "metric": _get(gaps, name),
                }
            )
    return {
        "min_size": _get(subgroups, "min_size"),
        "sections": list(sections.values()),
        "flagged": flagged_gaps,
        "too_small": [(s["attribute"], r) for s in sections.values() for r in s["rows"] if r["too_small"]],
    }


def _gate_for(gates: Iterable[Any], kind: str) -> Any:
    return next((g for g in gates if _get(g, "kind") == kind), None)


def _packages(environment: Any) -> list[tuple[str, str]]:
    """The key packages first, in a fixed order, then the rest alphabetically."""
    packages = _get(environment, "packages") or {}
    first = [(name, str(packages[name])) for name in KEY_PACKAGES if name in packages]
    rest = sorted((str(k), str(v)) for k, v in packages.items() if k not in KEY_PACKAGES)
    return first + rest


def document_sha256(doc: Mapping[str, Any]) -> str:
    """SHA-256 of the document as canonical JSON (sorted keys, compact, UTF-8), to tie a report to its document."""
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _why_small(group: Mapping[str, Any], subgroups: Any) -> str:
    """Why a group is too small to judge: too few patients, or too few of one outcome."""
    n, positives = _get(group, "n") or 0, _get(group, "positives") or 0
    min_size, min_events = _get(subgroups, "min_size") or 0, _get(subgroups, "min_events") or 0
    if n < min_size:
        return f"n < {number(min_size)}"
    events, which = min((positives, "positives"), (n - positives, "negatives"))
    if events < min_events:
        return f"{number(events)} {which} < {number(min_events)}"
    return "too few cases"


def _limitations(doc: Mapping[str, Any], view: Mapping[str, Any]) -> list[str]:
    """The document's own limitations, then those that follow from the results."""
    items = [str(x) for x in _list(_get(_get(doc, "card"), "limitations"))]
    subgroups = view["subgroups"]
    if subgroups is not None:
        for attribute, row in subgroups["too_small"]:
            items.append(
                f"Subgroup {attribute} = {row['group']} is too small to judge ({row['why_small']}, "
                f"{number(row['n'])} rows): its performance was not evaluated."
            )
    for row in _list(_get(doc, "robustness")):
        if _get(row, "caught"):
            continue
        if not _get(row, "rows_changed"):
            items.append(
                f"Perturbation “{_get(row, 'name', '')}” ({_get(row, 'description', '')}) changed no row of the "
                "test set: the model's behaviour under it is untested."
            )
        else:
            items.append(
                f"Perturbation “{_get(row, 'name', '')}” ({_get(row, 'description', '')}) is not caught by the "
                f"input checks ({percent(_get(row, 'flagged_rate'))} of changed rows flagged); AUROC changes by "
                f"{signed(_get(row, 'auroc_change'))} under it."
            )
    for gate in view["failed_gates"]:
        items.append(f"Acceptance gate not met: {_get(gate, 'criterion', '')} ({_get(gate, 'why', '')}).")
    return items


def _caveats(doc: Mapping[str, Any], view: Mapping[str, Any]) -> list[str]:
    items = []
    if not view["passed"]:
        items.append("The model did not pass validation; it should not be used for patient care until it does.")
    threshold = _get(doc, "threshold") or {}
    if str(_get(threshold, "chosen_on", "")).lower() == "test set":  # documents made before held-out thresholds
        items.append(
            "The threshold was chosen on the test set, so the performance at the threshold is optimistic; "
            "confirm it on independent data."
        )
    run = _get(doc, "run") or {}
    if _get(run, "git_dirty"):
        items.append("The model was trained from a source tree with uncommitted changes: it may not be reproducible.")
    if view["subgroups"] is not None and view["subgroups"]["flagged"]:
        items.append("Review the flagged subgroup gaps with clinicians before use in those groups.")
    items.append(
        "Validate locally before deployment at a new site: case mix, coding practice and measurement units differ."
    )
    items.append("Monitor calibration and the input checks in production; retrain or recalibrate when they drift.")
    return items


def _view(doc: Mapping[str, Any]) -> dict[str, Any]:
    """Everything the templates show, gathered once: the templates only lay it out."""
    gates = _list(_get(doc, "gates"))
    failed = [g for g in gates if not _get(g, "passed")]
    metrics = _get(doc, "metrics") or {}
    data = _get(doc, "data") or {}
    run = _get(doc, "run") or {}
    test_rows, test_positives = _finite(_get(data, "test_rows")), _finite(_get(data, "test_positives"))
    view: dict[str, Any] = {
        "doc": doc,
        "passed": bool(_get(doc, "passed")) and not failed,
        "gates": gates,
        "failed_gates": failed,
        "metric_sections": _metric_rows(metrics),
        "card_metrics": [(METRIC_LABELS[k], metrics[k]) for k in CARD_METRICS if k in metrics],
        "level": _finite(_get(_get(doc, "bootstrap"), "level")) or 0.95,
        "subgroups": _subgroups(_get(doc, "subgroups")),
        "non_inferiority": _gate_for(gates, "non_inferiority"),
        "packages": _packages(_get(run, "environment")),
        "test_prevalence": test_positives / test_rows if test_rows and test_positives is not None else None,
        "version": f"{short(_get(run, 'id'), 8)} · model {short(_get(run, 'model_sha256'), 12)}",
        "document_sha256": document_sha256(doc),
        "medops_version": __version__,
    }
    view["limitations"] = _limitations(doc, view)
    view["caveats"] = _caveats(doc, view)
    return view


# ---------------------------------------------------------------- rendering


@lru_cache(maxsize=2)
def _environment(html: bool) -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=html,
        undefined=ChainableUndefined,  # a key the producer left out renders empty instead of failing
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(
        num=number,
        plain=plain,
        signed=signed,
        pct=percent,
        ci=interval,
        ci_range=ci_range,
        when=when,
        short=short,
        md=markdown,
        mdcode=markdown_code,
    )
    env.tests["finite"] = lambda value: _finite(value) is not None
    return env


@lru_cache(maxsize=1)
def stylesheet() -> Markup:
    """The reports' CSS (the monitoring report shares it), inlined: a report fetches nothing."""
    # Read as a file, not rendered as a template: CSS braces and "{#" mean something to Jinja.
    return Markup((TEMPLATES / "style.css").read_text(encoding="utf-8"))


def _charts(doc: Mapping[str, Any]) -> dict[str, Markup]:
    from medops.evaluation import charts

    curves, metrics = _get(doc, "curves") or {}, _get(doc, "metrics") or {}

    def value(name: str) -> Any:
        return _get(_get(metrics, name), "value")

    # The SVG is generated here from numbers only and matplotlib escapes its text: safe to inline.
    return {
        "roc": Markup(charts.roc_svg(_get(curves, "roc"), value("auroc"))),
        "pr": Markup(charts.pr_svg(_get(curves, "pr"), value("prevalence"), value("auprc"))),
        "calibration": Markup(charts.calibration_svg(_get(curves, "calibration"))),
    }


def report_view(doc: Mapping[str, Any]) -> dict[str, Any]:
    """What the report shows of an evaluation document, and its charts as inline SVG: for other pages."""
    return {**_view(doc), "charts": _charts(doc)}


def render_report(doc: Mapping[str, Any]) -> str:
    """The full validation report: one HTML page with inline CSS and SVG, nothing fetched."""
    view = _view(doc)
    return _environment(True).get_template("report.html.j2").render(**view, charts=_charts(doc), css=stylesheet())


def render_model_card(doc: Mapping[str, Any]) -> tuple[str, str]:
    """The model card as (Markdown, HTML), both from the same view of the document."""
    view = _view(doc)
    md = _environment(False).get_template("model_card.md.j2").render(**view)
    html = _environment(True).get_template("model_card.html.j2").render(**view, css=stylesheet())
    return md, html
