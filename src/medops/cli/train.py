"""`medops train`: the project's training, tracked."""

from __future__ import annotations

from pathlib import Path

import typer

from medops.cli.common import JsonOption, ReasonOption, console, ok, open_workspace, print_json
from medops.cli.data import ProjectOption, project_at

EPILOG = "Examples:  medops train   ·   medops train --tune   ·   MEDOPS_USER=alice medops train -r 'Q3 baseline'"


def train(
    project: Path | None = ProjectOption,
    tune: bool = typer.Option(False, "--tune", help="Run the project's search (train.tune) and refit the best."),
    reason: str | None = ReasonOption,
    as_json: bool = JsonOption,
) -> None:
    """Train the model the project file declares: training set, patient split, leakage checks, fit, test metrics.

    Every setting, the data versions, the code commit and the environment are recorded
    with the run (`medops runs show RUN`). The same data, settings and seed give the
    same model file.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from medops.pipelines.train import train_from_project
    from medops.training.tuning import TuneResult

    loaded = project_at(project)
    spec = loaded.spec.train
    budget = spec.tune.trials if (tune and spec is not None and spec.tune is not None) else None
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with (
        open_workspace() as ws,
        Progress(*columns, console=console, transient=True, disable=as_json or not tune) as bar,
    ):
        task = bar.add_task("tuning", total=budget)
        result = train_from_project(
            ws,
            loaded,
            reason=reason,
            say=lambda m: None if as_json else console.print(f"  {m}"),
            tune=tune,
            progress=lambda done, best: bar.update(task, completed=done, description=f"tuning, best {best:.3f}"),
        )
    if as_json:
        print_json({"run": result.run_id, "model_sha256": result.model_sha256, "metrics": result.metrics})
        return
    if isinstance(result, TuneResult):
        console.print(
            f"  {result.trials} trials ({result.pruned} pruned), best validation AUROC {result.best_score:.3f}: "
            f"{result.best_params}"
        )
    m = result.metrics
    ok(
        f"run {result.run_id[:12]}: test AUROC {m['test_auroc']:.3f}, AUPRC {m['test_auprc']:.3f}, "
        f"Brier {m['test_brier']:.3f}  model sha256:{result.model_sha256[:12]}"
    )
