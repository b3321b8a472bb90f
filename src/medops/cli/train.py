"""`medops train`: the project's training, tracked."""

from __future__ import annotations

from pathlib import Path

import typer

from medops.cli.common import (
    JsonOption,
    ReasonOption,
    cell,
    cli_caller,
    console,
    key_values,
    ok,
    open_workspace,
    plural,
    print_json,
    progress_bar,
)
from medops.cli.data import ProjectOption, project_at
from medops.errors import InvalidInput
from medops.training.estimators import trainer_names

EPILOG = (
    "Examples:  medops train   ·   medops train --tune   ·   "
    "medops train --estimator logistic_regression --param C=0.5 --seed 7   ·   "
    "medops train -r 'Q3 baseline'"
)


def train(
    project: Path | None = ProjectOption,
    tune: bool = typer.Option(False, "--tune", help="Run the project's search (train.tune) and refit the best."),
    estimator: str | None = typer.Option(
        None,
        "--estimator",
        help=f"Instead of train.model.estimator: {', '.join(trainer_names())}. Starts from that estimator's defaults.",
    ),
    param: list[str] = typer.Option(
        [], "--param", metavar="NAME=VALUE", help="Set a model parameter (repeatable); VALUE is read as YAML."
    ),
    seed: int | None = typer.Option(None, "--seed", help="Instead of train.seed."),
    split: str | None = typer.Option(
        None, "--split", help="Instead of train.split.kind: grouped, temporal, stratified."
    ),
    test_size: float | None = typer.Option(None, "--test-size", help="Instead of train.split.test_size (0 to 1)."),
    cutoff: str | None = typer.Option(None, "--cutoff", metavar="DATE", help="Temporal split: train before DATE."),
    class_weight: str | None = typer.Option(None, "--class-weight", help="balanced or none."),
    calibration: str | None = typer.Option(None, "--calibration", help="sigmoid, isotonic or none."),
    resample: str | None = typer.Option(None, "--resample", help="over, under or none."),
    experiment: str | None = typer.Option(None, "--experiment", help="Instead of train.experiment."),
    allow_leakage: list[str] = typer.Option(
        [],
        "--allow-leakage",
        metavar="CHECK",
        help="Instead of train.allow_leakage: train despite this leakage finding (entity_overlap, "
        "future_feature, perfect_predictor); repeatable, audited.",
    ),
    reason: str | None = ReasonOption,
    as_json: bool = JsonOption,
) -> None:
    """Train the model the project file declares: training set, patient split, leakage checks, fit, test metrics.

    Options replace the file's settings for this training only. Every setting used, the
    data versions, the code commit and the environment are recorded with the run
    (`medops runs show RUN`), and the same data, settings and seed give the same model file.
    """
    import yaml
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

    from medops.services.projects.train import train_from_project
    from medops.training.tuning import TuneResult

    params: dict[str, object] = {}
    for name, values in key_values(param, "--param", "num_leaves=31").items():
        try:
            params[name] = yaml.safe_load(values[-1])
        except yaml.YAMLError:
            raise InvalidInput(
                f"--param {name}={values[-1]!r}: not a value", hint="a number, true/false or a word"
            ) from None
    overrides = {
        "estimator": estimator,
        "params": params or None,
        "seed": seed,
        "split": split,
        "test_size": test_size,
        "cutoff": cutoff,
        "class_weight": class_weight,
        "calibration": calibration,
        "resample": resample,
        "experiment": experiment,
        "allow_leakage": allow_leakage or None,
    }
    loaded = project_at(project)
    spec = loaded.spec.train
    budget = spec.tune.trials if (tune and spec is not None and spec.tune is not None) else None
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with (
        open_workspace() as ws,
        progress_bar(*columns, enabled=tune and not as_json) as bar,
    ):
        task = bar.add_task("tuning", total=budget)
        result = train_from_project(
            ws,
            loaded,
            reason=reason,
            say=lambda m: None if as_json else console.print(f"  {m}"),
            tune=tune,
            progress=lambda done, best: bar.update(task, completed=done, description=f"tuning, best {best:.3f}"),
            overrides=overrides,
            caller=cli_caller(ws, writes=True),
        )
    if as_json:
        print_json({"run": result.run_id, "model_sha256": result.model_sha256, "metrics": result.metrics})
        return
    if isinstance(result, TuneResult):
        console.print(
            f"  {plural(result.trials, 'trial')} ({result.pruned} pruned), "
            f"best validation AUROC {result.best_score:.3f}: "
            f"{cell(result.best_params)}"
        )
    m = result.metrics
    ok(
        f"run {result.run_id[:12]}: test AUROC {m['test_auroc']:.3f}, AUPRC {m['test_auprc']:.3f}, "
        f"Brier {m['test_brier']:.3f}  model sha256:{result.model_sha256[:12]}"
    )
