"""`medops train`: the project's training, tracked."""

from __future__ import annotations

from pathlib import Path

from medops.cli.common import JsonOption, ReasonOption, console, ok, open_workspace, print_json
from medops.cli.data import ProjectOption, project_at

EPILOG = "Examples:  medops train   ·   MEDOPS_USER=alice medops train -r 'baseline for the Q3 review'"


def train(project: Path | None = ProjectOption, reason: str | None = ReasonOption, as_json: bool = JsonOption) -> None:
    """Train the model the project file declares: training set, patient split, leakage checks, fit, test metrics.

    Every setting, the data versions, the code commit and the environment are recorded
    with the run (`medops runs show RUN`). The same data, settings and seed give the
    same model file.
    """
    from medops.pipelines.train import train_from_project

    loaded = project_at(project)
    with open_workspace() as ws:
        result = train_from_project(
            ws, loaded, reason=reason, say=lambda m: None if as_json else console.print(f"  {m}")
        )
    if as_json:
        print_json({"run": result.run_id, "model_sha256": result.model_sha256, "metrics": result.metrics})
        return
    m = result.metrics
    ok(
        f"run {result.run_id[:12]}: test AUROC {m['test_auroc']:.3f}, AUPRC {m['test_auprc']:.3f}, "
        f"Brier {m['test_brier']:.3f}  model sha256:{result.model_sha256[:12]}"
    )
