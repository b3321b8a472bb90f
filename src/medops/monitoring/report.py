"""The monitoring report: one self-contained HTML page per model and period.

From the stored windows (their documents, read back verified) and the alerts: drift per feature
over time, the score distribution, performance with intervals against the validated value,
subgroups, label completeness, and every alert with who answered it. Inline CSS and SVG, nothing
fetched, so the file can be mailed or archived as evidence. The page holds statistics, metric
names and the people who acted, never a row of data.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from medops.clock import utc_now
from medops.monitoring import alerts as alert_store
from medops.monitoring import report_charts as charts
from medops.monitoring.windows import WindowInfo, document, listing
from medops.platform import Platform

PSI_SHOWN = "psi"


def build_view(ws: Platform, model: str, since: datetime | None, until: datetime | None) -> dict[str, Any]:
    """What the page shows, from the newest record of each window of ``model`` in [since, until)."""
    found = [
        w
        for w in listing(ws, model, limit=100_000)
        if (since is None or w.start >= since) and (until is None or w.end <= until)
    ]
    found.sort(key=lambda w: (w.start, w.version))
    docs = [document(ws, w) for w in found]
    labels = [w.label if len({x.version for x in found}) == 1 else f"{w.label} v{w.version}" for w in found]
    raised = [
        a
        for a in alert_store.listing_alerts(ws, model=model, limit=10_000)
        if (since is None or a.opened_at >= since) and (until is None or a.opened_at < until)
    ]
    features = sorted({name for doc in docs for name in doc["features"]})
    series = {name: [_statistic(doc["features"].get(name), PSI_SHOWN) for doc in docs] for name in features}
    psi = dict(sorted(series.items(), key=lambda item: -max((v or 0.0) for v in item[1])))  # largest first
    performance = [doc.get("performance") or {} for doc in docs]
    auroc = [(p.get("metrics") or {}).get("auroc") or {} for p in performance]
    promised = next((a.get("reference") for a in auroc if a.get("reference") is not None), None)
    groups = _subgroup_series(performance)
    threshold = docs[0]["spec"]["drift"]["psi"] if docs else None
    return {
        "model": model,
        "since": since,
        "until": until,
        "generated_at": utc_now(),
        "windows": [_row(w, d) for w, d in zip(found, docs, strict=True)],
        "alerts": raised,
        "has_performance": any(p for p in performance),
        "charts": {
            "drift": Markup(charts.lines_svg(labels, psi, ylabel="PSI", threshold=threshold, salt="monitor-drift")),
            "score": Markup(
                charts.lines_svg(
                    labels,
                    {"at or above the threshold": [_above(doc) for doc in docs]},
                    ylabel="share of predictions",
                    reference=docs[0]["prediction"]["above_threshold"]["reference"] if docs else None,
                    salt="monitor-score",
                )
            ),
            "score_psi": Markup(
                charts.lines_svg(
                    labels,
                    {"score PSI": [_statistic(doc["prediction"], PSI_SHOWN) for doc in docs]},
                    ylabel="PSI",
                    threshold=threshold,
                    salt="monitor-score-psi",
                )
            ),
            "auroc": Markup(
                charts.intervals_svg(
                    labels,
                    [a.get("value") for a in auroc],
                    [a.get("low") for a in auroc],
                    [a.get("high") for a in auroc],
                    ylabel="AUROC",
                    reference=promised,
                    salt="monitor-auroc",
                )
            ),
            "subgroups": Markup(charts.lines_svg(labels, groups, ylabel="AUROC", salt="monitor-subgroups")),
            "completeness": Markup(
                charts.bars_svg(
                    labels,
                    [p.get("label_completeness") for p in performance],
                    ylabel="labeled share",
                    salt="monitor-labels",
                )
            ),
        },
    }


def _statistic(feature: dict[str, Any] | None, name: str) -> float | None:
    for stat in (feature or {}).get("statistics", []):
        if stat["name"] == name:
            value = stat.get("value")
            return float(value) if isinstance(value, (int, float)) else None
    return None


def _above(doc: dict[str, Any]) -> float | None:
    value = doc["prediction"]["above_threshold"]["current"]
    return float(value) if isinstance(value, (int, float)) else None


def _subgroup_series(performance: list[dict[str, Any]]) -> dict[str, list[float | None]]:
    names = sorted({f"{g['attribute']}={g['group']}" for p in performance for g in p.get("subgroups", [])})
    series: dict[str, list[float | None]] = {}
    for name in names:
        values: list[float | None] = []
        for p in performance:
            match = next((g for g in p.get("subgroups", []) if f"{g['attribute']}={g['group']}" == name), None)
            metric = ((match or {}).get("metrics") or {}).get("auroc") or {}
            values.append(metric.get("value"))
        series[name] = values
    return series


def _row(window: WindowInfo, doc: dict[str, Any]) -> dict[str, Any]:
    performance = doc.get("performance") or {}
    findings = []
    for name, feature in doc["features"].items():
        unit = feature.get("unit_change")
        if unit:
            findings.append(f"{name}: suspected unit {unit['suspected_unit']} ({unit['share']:.1%} of values)")
        if feature["missing"]["flagged"]:
            findings.append(
                f"{name}: missing {feature['missing']['reference']:.1%} -> {feature['missing']['current']:.1%}"
            )
        if feature.get("new_category_flagged"):
            findings.append(f"{name}: new categories {', '.join(feature['new_categories'])}")
        if (feature.get("out_of_range") or {}).get("flagged"):
            findings.append(f"{name}: {feature['out_of_range']['share']:.1%} out of the served range")
    return {
        "label": window.label,
        "version": window.version,
        "rows": window.rows,
        "judged": window.judged,
        "drifted": window.drifted,
        "prediction_drifted": doc["prediction"]["drifted"],
        "findings": findings,
        "labeled": performance.get("labeled"),
        "completeness": performance.get("label_completeness"),
        "performance_judged": performance.get("judged"),
        "degraded": performance.get("degraded") or [],
        "why_not": performance.get("why_not_judged"),
        "id": window.id,
    }


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("medops.monitoring", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["pct"] = lambda v: "-" if v is None else f"{v:.1%}"
    env.filters["when"] = lambda v: "-" if v is None else v.strftime("%Y-%m-%d %H:%M UTC")
    return env


def render(ws: Platform, model: str, since: datetime | None = None, until: datetime | None = None) -> str:
    """The report's HTML."""
    from medops.evaluation.report import stylesheet

    view = build_view(ws, model, since, until)
    return _environment().get_template("monitoring_report.html.j2").render(**view, css=stylesheet())
