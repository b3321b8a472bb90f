"""Monitoring's false-alarm rate: baseline years (nothing changes) over many seeds, default rules.

Not a timing: how often monitoring alarms on a model whose world never changed. A logistic model is
trained once on a baseline period of the synthetic generator (as tests/monitoring/test_scenarios.py
trains it); then, for each seed, another baseline period's discharges are served to it as a model of
its own name (scored by the model, written to the prediction log with the times they would have
had, the outcomes ingested as they became known), and the twelve months from May 2025 are judged
by ``Services(ws).monitoring.run`` with the default alert rules: feature and prediction drift, data
quality, unit changes, performance and bias drift. Every alert opened is a false alarm.

    python -m benchmarks.monitoring_false_alarms [--seeds 40 --first-seed 100 --patients 6000]

Prints each seed's alerts as it goes, then the share of years with an alert, the alerts per year,
the share of windows that opened one, and the count per rule.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from benchmarks.common import print_table, temp_dir


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=40)
    parser.add_argument("--first-seed", type=int, default=100)
    parser.add_argument("--patients", type=int, default=6000)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the shared scenario year lives in tests/
    from tests.conftest import PSEUDONYM_KEY
    from tests.monitoring.scenario_year import alerts_by_window, build_model, serve_year

    with temp_dir("medops-false-alarms-") as folder:
        os.environ["MEDOPS_KEY_DIR"] = str(folder / "keys")
        os.environ["MEDOPS_PSEUDONYM_KEY"] = PSEUDONYM_KEY
        from medops.workspace import Workspace

        run = build_model(folder, None)
        rules: Counter[str] = Counter()
        years_alarmed = windows = alarmed_windows = judged_performance = 0
        with Workspace.open(folder / "ws") as ws:
            for seed in range(args.first_seed, args.first_seed + args.seeds):
                started = time.perf_counter()
                name = f"baseline_{seed}"
                serve_year(ws, run, name, "baseline", seed=seed, patients=args.patients)
                ran, fired = alerts_by_window(ws, name)
                windows += len(ran.windows)
                judged_performance += sum("performance.auroc" in w.metrics for w in ran.windows)
                alarmed_windows += len(fired)
                years_alarmed += bool(fired)
                for opened in fired.values():
                    rules.update(opened)
                seconds = time.perf_counter() - started
                drifted = {w.label: w.drifted for w in ran.windows if w.drifted}
                print(f"seed {seed}: {len(ran.windows)} windows, alerts {dict(sorted(fired.items())) or 'none'}, "
                      f"drifted {drifted or 'none'} ({seconds:.1f} s)", flush=True)  # fmt: skip
    result = {
        "seeds": args.seeds,
        "patients": args.patients,
        "years_with_an_alert": years_alarmed / args.seeds,
        "alerts_per_year": sum(rules.values()) / args.seeds,
        "windows_with_an_alert": alarmed_windows / windows if windows else 0.0,
        "windows": windows,
        "performance_judged": judged_performance,
        "by_rule": dict(rules),
    }
    print_table(
        f"False alarms: {args.seeds} baseline years of {args.patients:,} patients, twelve monthly windows each",
        ["measure", "value"],
        [
            ["years with an alert", f"{years_alarmed} of {args.seeds} ({result['years_with_an_alert']:.1%})"],
            ["alerts per year", f"{result['alerts_per_year']:.2f}"],
            ["windows that opened an alert", f"{alarmed_windows} of {windows} ({result['windows_with_an_alert']:.2%})"],
            ["windows judged on performance", f"{judged_performance} of {windows}"],
            *[[f"alerts of rule {rule}", str(count)] for rule, count in sorted(rules.items())],
        ],
    )
    return result


if __name__ == "__main__":
    main()
