"""Validation report: time to render the HTML report and the model card of an evaluation with
60 subgroups (aim: under 0.5 s without the charts), against pandas writing the same subgroup
table as HTML.

medops: ``render_report`` and ``render_model_card``, what ``medops evaluate`` writes its report
and model card with, with its charts and with the charts stubbed out. pandas:
``DataFrame.to_html``, its default and also its fastest documented HTML writer (``Styler.to_html``
is the richer, slower one). The three sides run interleaved in a rotating order over
``--repeats`` rounds in one process (``common.interleaved``), each once untimed first (templates
compiled, modules loaded); medians reported, with the load average at the start and the end."""

from __future__ import annotations

import argparse
from typing import Any

from benchmarks.common import interleaved, load_average, medians, print_table


def main(argv: list[str] | None = None) -> list[list[Any]]:
    import pandas as pd
    from tests.report_doc import make_doc  # the document the report tests render

    from medops.evaluation import charts
    from medops.evaluation.report import render_model_card, render_report

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--groups", type=int, default=60, help="subgroups in the document (at least 9)")
    parser.add_argument("--repeats", type=int, default=21, help="interleaved rounds of timed renders (medians)")
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
    saved = {name: getattr(charts, name) for name in ("roc_svg", "pr_svg", "calibration_svg")}

    def without_charts() -> None:
        try:
            for name in saved:
                setattr(charts, name, lambda *a, **k: "<svg></svg>")
            render_report(doc)
            render_model_card(doc)
        finally:
            for name, fn in saved.items():
                setattr(charts, name, fn)

    print(f"load average at start: {load_average()}")
    med = medians(
        interleaved(
            {
                "peer": lambda: table.to_html(float_format=lambda v: f"{v:.3f}", na_rep="—"),
                "with": lambda: (render_report(doc), render_model_card(doc)),
                "without": without_charts,
            },
            repeats,
        )
    )
    peer, with_charts, without = med["peer"], med["with"], med["without"]
    assert all(g["group"] in render_report(doc) for g in groups[:3])  # the report names the subgroups
    size = f"{len(groups)} subgroups"
    result = [
        ["report + model card, with charts", size, f"{with_charts * 1000:.0f} ms", f"{peer * 1000:.1f} ms",
         f"{with_charts / peer:.1f}"],
        ["report + model card, no charts", size, f"{without * 1000:.0f} ms", f"{peer * 1000:.1f} ms",
         f"{without / peer:.1f}"],
    ]  # fmt: skip
    print_table(
        f"validation report (medians of {repeats} interleaved rounds; aim without charts: < 500 ms)",
        ["benchmark", "size", "medops", "pandas to_html (table only)", "ratio"],
        result,
    )
    print("pandas: to_html is both its default and its fastest documented HTML writer (Styler.to_html is slower)")
    print(f"load average at end: {load_average()}")
    return result


if __name__ == "__main__":
    main()
