"""Hyperparameter tuning with Optuna: each trial a nested run, the best refit and tested once.

The search runs inside the training side of the split: trials train on part of it and
are scored (AUROC) on a patient-grouped validation part, so the test side is touched
only once, by the refit best model. The sampler is TPE, seeded; LightGBM trials report
their validation score every few boosting rounds and the median pruner stops the weak
ones early. The budget is a number of trials, a time limit, or both. The parent run
records the search space, the budget, every trial's parameters and score (as an artifact
and as child runs), the best trial, and the test metrics of the refit model.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from medops.errors import InvalidInput
from medops.features.executor import Executor
from medops.training.estimators import get_trainer
from medops.training.splits import make_split
from medops.training.tracking import Run, Tracker
from medops.training.train import TrainConfig, evaluate, recipe, record_override, save_model, split_and_check
from medops.training.trainers import FittedModel, ModelSpec, build_pipeline, check_training_data, estimator_for, prepare

PRUNE_EVERY = 10


@dataclass(frozen=True)
class ParamSpace:
    name: str
    kind: str  # int, float, categorical
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()


def parse_space(space: Mapping[str, Mapping[str, Any]], estimator: str) -> list[ParamSpace]:
    """``{num_leaves: {int: [8, 64]}, learning_rate: {float: [0.01, 0.3], log: true}, boosting: {choices: [...]}}``."""
    if not space:
        raise InvalidInput("the search space is empty", hint="name at least one parameter and its range")
    out = []
    for name, spec in space.items():
        where = f"search space, {name}"
        estimator_for(ModelSpec(estimator, {}), 0)
        if not isinstance(spec, Mapping):
            raise InvalidInput(f"{where}: give int: [low, high], float: [low, high] or choices: [...]")
        kinds = [k for k in ("int", "float", "choices") if k in spec]
        unknown = set(spec) - {"int", "float", "choices", "log"}
        if len(kinds) != 1 or unknown:
            raise InvalidInput(f"{where}: give exactly one of int, float or choices (and log for numbers)")
        kind = kinds[0]
        if kind == "choices":
            choices = tuple(spec["choices"] or ())
            if not choices:
                raise InvalidInput(f"{where}: the choices are empty")
            out.append(ParamSpace(name, "categorical", choices=choices))
            continue
        bounds = spec[kind]
        if not isinstance(bounds, (list, tuple)) or len(bounds) != 2:
            raise InvalidInput(f"{where}: {kind} needs [low, high]")
        low, high = float(bounds[0]), float(bounds[1])
        if not low < high:
            raise InvalidInput(f"{where}: the range [{bounds[0]}, {bounds[1]}] is empty", hint="low must be below high")
        log = bool(spec.get("log", False))
        if log and low <= 0:
            raise InvalidInput(f"{where}: a log range needs a low above 0")
        out.append(ParamSpace(name, "int" if kind == "int" else "float", low, high, log))
    probe = ModelSpec(estimator, {p.name: (p.choices[0] if p.choices else p.low) for p in out})
    estimator_for(probe, 0)  # an unknown parameter name: the estimator's own list in the error
    return out


@dataclass
class TuneResult:
    run_id: str
    best_params: dict[str, Any]
    best_score: float
    trials: int
    pruned: int
    model: FittedModel
    model_sha256: str
    metrics: dict[str, float]


def _suggest(trial: Any, space: list[ParamSpace]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for p in space:
        assert p.low is not None or p.kind == "categorical"
        if p.kind == "int":
            params[p.name] = trial.suggest_int(p.name, int(p.low or 0), int(p.high or 0), log=p.log)
        elif p.kind == "float":
            params[p.name] = trial.suggest_float(p.name, float(p.low or 0), float(p.high or 0), log=p.log)
        else:
            params[p.name] = trial.suggest_categorical(p.name, list(p.choices))
    return params


def tune(
    tracker: Tracker,
    frame: pd.DataFrame,
    config: TrainConfig,
    space: Mapping[str, Mapping[str, Any]],
    *,
    trials: int | None = 20,
    timeout: float | None = None,
    actor: str,
    project: Any = None,
    progress: Any = None,
    executor: Executor | None = None,
) -> TuneResult:
    """Search, refit the best on the whole training side, test once; all as one parent run with trial runs."""
    import optuna

    if not trials and not timeout:
        raise InvalidInput("a tuning needs a budget: trials, a timeout, or both")
    check_training_data(frame, config.features, config.label)
    params_space = parse_space(space, config.model.estimator)
    outer, allowed = split_and_check(frame, config)
    train_side = frame.iloc[outer.train].reset_index(drop=True)
    test_side = frame.iloc[outer.test]
    inner = make_split(
        train_side,
        "grouped" if config.group else "stratified",
        label=config.label,
        group=config.group,
        test_size=0.25,
        seed=config.seed,
    )
    fit_part, valid_part = train_side.iloc[inner.train], train_side.iloc[inner.test]
    check_training_data(fit_part, config.features, config.label)
    check_training_data(valid_part, config.features, config.label)
    # A failed trial's error (Ctrl-C included) ends the search and reaches the caller, actor reports it once;
    # optuna's own warning about it would print its traceback first.
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=config.seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=PRUNE_EVERY),
    )
    history: list[dict[str, Any]] = []
    parent_params = {
        "estimator": config.model.estimator,
        "search_space": {k: dict(v) for k, v in space.items()},
        "budget.trials": trials or "none",
        "budget.timeout_s": timeout or "none",
        "sampler": "TPE",
        "pruner": "median",
        "label": config.label,
        "features": list(config.features),
        **{f"split.{k}": v for k, v in outer.description.items()},
    }
    with tracker.start_run(
        config.experiment, config.name or "tuning", params=parent_params, seed=config.seed, actor=actor, project=project
    ) as parent:
        for ref in config.inputs:
            parent.log_dataset(ref)
        for view, version in config.feature_views.items():  # like a plain run: the lineage reaches the views
            parent.log_input("featureview", view, version)
        record_override(tracker, parent, actor, config, allowed)

        def objective(trial: Any) -> float:
            chosen = _suggest(trial, params_space)
            spec = replace(config.model, params={**config.model.params, **chosen})
            child = parent.child(f"trial-{trial.number}", params={"trial": trial.number, **chosen})
            try:
                score = _score(trial, child, spec, config, fit_part, valid_part)
            except optuna.TrialPruned:
                child.end("finished")  # stopped early on purpose: tagged "pruned", not a failure
                raise
            except BaseException as exc:
                child.end("failed", f"{type(exc).__name__}: {exc}")
                raise
            child.end("finished")
            history.append({"trial": trial.number, "params": chosen, "auroc": score, "state": "complete"})
            return score

        start = time.monotonic()
        if executor is None or executor.partitions == 1:
            study.optimize(
                objective,
                n_trials=trials,
                timeout=timeout,
                catch=(),
                callbacks=[_progress(progress)] if progress else [],
            )
        else:
            _optimize_in_parallel(
                study, executor, parent, params_space, config, fit_part, valid_part, history, trials, timeout, progress
            )
        if trials and len(study.trials) < trials:  # the time cap bit: the search is not the one the budget asked
            parent.set_tag("budget.time_cap_hit", f"{len(study.trials)} of {trials} trials within {timeout:g} s")
        pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
        for t in pruned:
            history.append({"trial": t.number, "params": t.params, "auroc": None, "state": "pruned"})
        complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        if not complete:
            raise InvalidInput("no trial completed within the budget", hint="give more trials or time")
        best = study.best_trial
        best_score = float(best.value if best.value is not None else math.nan)
        best_params = {**config.model.params, **best.params}
        parent.log_params({f"best.{k}": v for k, v in best.params.items()})
        parent.log_metrics({"best_validation_auroc": best_score, "trials": len(study.trials), "pruned": len(pruned)})
        parent.log_metric("search_seconds", time.monotonic() - start)
        parent.log_artifact(
            "search_history.json", json.dumps(sorted(history, key=lambda h: h["trial"]), default=str).encode()
        )
        from medops.training.trainers import fit

        chosen = replace(config, model=replace(config.model, params=best_params))
        parent.log_artifact("recipe.json", json.dumps(recipe(chosen), sort_keys=True, default=str).encode())
        model = fit(train_side, config.features, config.label, chosen.model, config.seed)
        metrics = evaluate(test_side[config.label].to_numpy(), model.predict_proba(test_side))
        parent.log_metrics(metrics)
        digest = save_model(parent, model, train_side)
    return TuneResult(parent.id, best_params, best_score, len(study.trials), len(pruned), model, digest, metrics)


def trial_score(spec: ModelSpec, config: TrainConfig, fit_part: pd.DataFrame, valid: pd.DataFrame) -> float:
    """One trial's validation AUROC, as a plain function a Dask worker can run."""
    from sklearn.metrics import roc_auc_score

    from medops.training.trainers import fit

    model = fit(fit_part, config.features, config.label, spec, config.seed)
    return float(roc_auc_score(valid[config.label].to_numpy(), model.predict_proba(valid)))


def _optimize_in_parallel(
    study: Any,
    executor: Executor,
    parent: Run,
    space: list[ParamSpace],
    config: TrainConfig,
    fit_part: pd.DataFrame,
    valid: pd.DataFrame,
    history: list[dict[str, Any]],
    trials: int | None,
    timeout: float | None,
    progress: Any,
) -> None:
    """Batches of trials as Dask tasks (ask, run, tell); no pruning, as a task reports only its end."""
    start = time.monotonic()
    batch = max(1, executor.partitions // 2)  # partitions are two per worker
    while (trials is None or len(study.trials) < trials) and (timeout is None or time.monotonic() - start < timeout):
        size = batch if trials is None else min(batch, trials - len(study.trials))
        asked = [study.ask() for _ in range(size)]
        chosen = [_suggest(t, space) for t in asked]
        specs = [replace(config.model, params={**config.model.params, **c}) for c in chosen]
        scores = executor.map(trial_score, [(spec, config, fit_part, valid) for spec in specs])
        for trial, params, score in zip(asked, chosen, scores, strict=True):
            with parent.child(f"trial-{trial.number}", params={"trial": trial.number, **params}) as child:
                child.log_metric("validation_auroc", score)
            study.tell(trial, score)
            history.append({"trial": trial.number, "params": params, "auroc": score, "state": "complete"})
        if progress:
            progress(len(study.trials), study.best_value)


def _score(
    trial: Any, child: Run, spec: ModelSpec, config: TrainConfig, fit_part: pd.DataFrame, valid: pd.DataFrame
) -> float:
    """Validation AUROC of one trial; an estimator with a staged fit (LightGBM) reports as it goes,
    so weak trials stop early."""
    import optuna
    from sklearn.metrics import roc_auc_score

    y_valid = valid[config.label].to_numpy()
    staged_fit = get_trainer(spec.estimator).staged_fit
    if staged_fit is None:
        score = trial_score(spec, config, fit_part, valid)
        child.log_metric("validation_auroc", score)
        return score
    pipeline = build_pipeline(fit_part, config.features, spec, config.seed)
    prep, model = pipeline.named_steps["prep"], pipeline.named_steps["model"]
    x_fit = prep.fit_transform(prepare(fit_part, config.features))
    x_valid = prep.transform(prepare(valid, config.features))

    def report(step: int, p: Any) -> None:
        value = float(roc_auc_score(y_valid, p))
        child.log_metric("validation_auroc", value, step=step)
        trial.report(value, step)
        if trial.should_prune():
            child.set_tag("pruned", f"at round {step}")
            raise optuna.TrialPruned()

    staged_fit(model, x_fit, fit_part[config.label].to_numpy(), x_valid, PRUNE_EVERY, report)
    score = float(roc_auc_score(y_valid, model.predict_proba(x_valid)[:, 1]))
    if math.isnan(score):
        raise InvalidInput("the validation part holds one class only: use a larger data set")
    child.log_metric("validation_auroc", score)
    return score


def _progress(progress: Any) -> Any:
    def callback(study: Any, trial: Any) -> None:
        progress(len(study.trials), study.best_value if any(t.value is not None for t in study.trials) else np.nan)

    return callback
