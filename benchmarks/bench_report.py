"""Validation report: time to render the HTML report and the model card of an evaluation with
60 subgroups (aim: under 0.5 s without the charts), against pandas writing the same subgroup
table as HTML. Medians of repeated renders in one process."""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable
from typing import Any

from benchmarks.common import print_table, timed


def _median(fn: Callable[[], Any], repeats: int) -> float:
    fn()  # warm-up: templates compiled, modules loaded
    return statistics.median(timed(fn)[0] for _ in range(repeats))


def main(argv: list[str] | None = None) -> list[list[Any]]:
    import pandas as pd
    from tests.report_doc import make_doc  # the document the report tests render

    from medops.evaluation import charts
    from medops.evaluation.report import render_model_card, render_report

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--groups", type=int, default=60, help="subgroups in the document (at least 9)")
    parser.add_argument("--repeats", type=int, default=21, help="timed renders (the median is reported)")
    parser.add_argument("--quick", action="store_true", help="5 repeats")
    args = parser.parse_args(argv)
    repeats = 5 if args.quick else args.repeats
    doc = make_doc(extra_groups=max(0, args.groups - 9))
    groups = doc["subgroups"]["groups"]
    table = pd.DataFrame(
        [
            {"attribute": g["attribute"], "group": g["group"], "n": g["n"], "flagged": ", ".join(g["flagged"])}
            | {f"{k} {end}": v[end] for k, v in (g["metrics"] | g["gaps"]).items() for end in ("value", "low", "high")}
            for g in groups
        ]
    )
    peer = _median(lambda: table.to_html(float_format=lambda v: f"{v:.3f}", na_rep="—"), repeats)
    with_charts = _median(lambda: (render_report(doc), render_model_card(doc)), repeats)
    saved = {name: getattr(charts, name) for name in ("roc_svg", "pr_svg", "calibration_svg")}
    try:
        for name in saved:
            setattr(charts, name, lambda *a, **k: "<svg></svg>")
        without = _median(lambda: (render_report(doc), render_model_card(doc)), repeats)
    finally:
        for name, fn in saved.items():
            setattr(charts, name, fn)
    size = f"{len(groups)} subgroups"
    result = [
        ["report + model card, with charts", size, f"{with_charts * 1000:.0f} ms", f"{peer * 1000:.1f} ms",
         f"{with_charts / peer:.1f}"],
        ["report + model card, no charts", size, f"{without * 1000:.0f} ms", f"{peer * 1000:.1f} ms",
         f"{without / peer:.1f}"],
    ]  # fmt: skip
    print_table(
        f"validation report (medians of {repeats}; aim without charts: < 500 ms)",
        ["benchmark", "size", "medops", "pandas to_html (table only)", "ratio"],
        result,
    )
    return result


if __name__ == "__main__":
    main()
