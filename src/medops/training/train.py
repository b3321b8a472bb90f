"""One training, tracked: check, split, check for leakage, fit, evaluate, store the model.

All input checks run before the run starts, so bad settings or a bad label create no run
at all. Leakage findings stop the training too, unless the caller allows those checks by
name; an allowed finding is written to the audit trail and the run's tags.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from medops.audit.trail import NewEvent
from medops.training.input_schema import InputSchema
from medops.training.leakage import Finding, check_leakage, enforce
from medops.training.splits import Split, SplitKind, make_split
from medops.training.tracking import Run, Tracker
from medops.training.trainers import FittedModel, ModelSpec, check_training_data, estimator_for, fit


@dataclass(frozen=True)
class TrainConfig:
    features: Sequence[str]
    label: str
    model: ModelSpec
    split: SplitKind = "grouped"
    group: str | None = "patient_id"
    time: str | None = None
    cutoff: datetime | str | int | float | None = None  # a date (temporal) or a period such as 2019
    test_size: float = 0.2
    seed: int = 0
    allow_leakage: Sequence[str] = ()
    experiment: str = "default"
    name: str | None = None
    inputs: Sequence[str] = field(default_factory=tuple)
    extra_params: Mapping[str, Any] = field(default_factory=dict)
    label_time: str | None = None
    feature_times: Mapping[str, str] = field(default_factory=dict)  # feature -> column with its own time
    # The data as a dataset version, and how rows were chosen from it: recorded so the run can be reproduced.
    data: Mapping[str, Any] | None = None
    feature_views: Mapping[str, str] = field(default_factory=dict)  # view -> version the data came from
    tags: Mapping[str, str] = field(default_factory=dict)  # set on the run, not part of its recipe (who asked)


def label_as_numbers(frame: pd.DataFrame, label: str) -> pd.DataFrame:
    """A yes/no label read as booleans (with missing outcomes it arrives as objects) as 1/0, missing kept."""
    if label not in frame.columns:
        return frame
    values = frame[label]
    if pd.api.types.is_bool_dtype(values) or (
        values.dtype == object and set(values.dropna().unique()) <= {True, False}
    ):
        return frame.assign(
            **{label: values.map({True: 1, False: 0}).astype("float64" if values.isna().any() else "int64")}
        )
    return frame


def recipe(config: TrainConfig) -> dict[str, Any]:
    """Everything needed to train this model again, as JSON."""
    return {
        "features": list(config.features),
        "label": config.label,
        "model": {
            "estimator": config.model.estimator,
            "params": dict(config.model.params),
            "class_weight": config.model.class_weight,
            "calibration": config.model.calibration,
            "resample": config.model.resample,
        },
        "split": config.split,
        "group": config.group,
        "time": config.time,
        "cutoff": str(config.cutoff) if config.cutoff is not None else None,
        "test_size": config.test_size,
        "seed": config.seed,
        "allow_leakage": list(config.allow_leakage),
        "experiment": config.experiment,
        "label_time": config.label_time,
        "feature_times": dict(config.feature_times),
        "data": dict(config.data) if config.data else None,
        "extra_params": dict(config.extra_params),
        "feature_views": dict(config.feature_views),
    }


def config_from_recipe(doc: Mapping[str, Any], **changes: Any) -> TrainConfig:
    model = doc["model"]
    config = TrainConfig(
        features=doc["features"],
        label=doc["label"],
        model=ModelSpec(
            model["estimator"], model["params"], model["class_weight"], model["calibration"], model.get("resample")
        ),
        split=doc["split"],
        group=doc["group"],
        time=doc["time"],
        cutoff=doc["cutoff"],
        test_size=doc["test_size"],
        seed=doc["seed"],
        allow_leakage=tuple(doc["allow_leakage"]),
        experiment=doc["experiment"],
        label_time=doc["label_time"],
        feature_times=doc["feature_times"],
        data=doc["data"],
        extra_params=doc.get("extra_params", {}),
        feature_views=doc.get("feature_views", {}),
    )
    return replace(config, **changes)


@dataclass
class TrainResult:
    run_id: str
    model: FittedModel
    model_sha256: str
    metrics: dict[str, float]
    split: Split


def evaluate(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """Test-set metrics every run records (the clinical validation issue adds the rest, with CIs)."""
    from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

    return {
        "test_auroc": float(roc_auc_score(y, p)),
        "test_auprc": float(average_precision_score(y, p)),
        "test_brier": float(brier_score_loss(y, p)),
        "test_log_loss": float(log_loss(y, np.clip(p, 1e-15, 1 - 1e-15))),
        "test_prevalence": float(np.mean(y)),
    }


def configured_split(frame: pd.DataFrame, config: TrainConfig) -> Split:
    """The split ``config`` makes of ``frame``: the same rows each time, from the recorded seed."""
    return make_split(
        frame,
        config.split,
        label=config.label,
        group=config.group,
        time=config.time,
        cutoff=config.cutoff,
        test_size=config.test_size,
        seed=config.seed,
    )


def split_and_check(frame: pd.DataFrame, config: TrainConfig) -> tuple[Split, list[Finding]]:
    """The configured split and its leakage checks: raises on a finding not allowed; returns the allowed ones."""
    split = configured_split(frame, config)
    findings = check_leakage(
        frame,
        split,
        label=config.label,
        features=config.features,
        group=config.group,
        label_time=config.label_time,
        feature_times=config.feature_times,
    )
    return split, enforce(findings, config.allow_leakage)


def record_override(tracker: Tracker, run: Run, who: str, config: TrainConfig, allowed: list[Finding]) -> None:
    """An allowed leakage finding is a decision: tagged on the run and written to the audit trail."""
    if not allowed:
        return
    run.set_tag("leakage_override", ",".join(sorted({f.check for f in allowed})))
    tracker.ws.trail.record(
        NewEvent(
            who,
            "run.leakage_override",
            "run",
            run.id,
            after={"allowed": list(config.allow_leakage), "findings": [f.detail for f in allowed]},
        )
    )


def train(
    tracker: Tracker, frame: pd.DataFrame, config: TrainConfig, *, actor: str, project: Any = None
) -> TrainResult:
    check_training_data(frame, config.features, config.label)
    estimator_for(config.model, config.seed)  # unknown estimator or parameter: stop before any work
    split, allowed = split_and_check(frame, config)
    train_rows, test_rows = frame.iloc[split.train], frame.iloc[split.test]
    check_training_data(train_rows, config.features, config.label)
    params = {
        "estimator": config.model.estimator,
        **{f"model.{k}": v for k, v in config.model.params.items()},
        "class_weight": config.model.class_weight or "none",
        "calibration": config.model.calibration or "none",
        "resample": config.model.resample or "none",
        "label": config.label,
        "features": list(config.features),
        **{f"split.{k}": v for k, v in split.description.items()},
        **config.extra_params,
    }
    with tracker.start_run(
        config.experiment, config.name, params=params, seed=config.seed, actor=actor, project=project
    ) as run:
        for name, value in config.tags.items():
            run.set_tag(name, value)
        for ref in config.inputs:
            run.log_dataset(ref)
        for view, version in config.feature_views.items():
            run.log_input("featureview", view, version)
        run.log_artifact("recipe.json", json.dumps(recipe(config), sort_keys=True, default=str).encode())
        record_override(tracker, run, actor, config, allowed)
        model = fit(train_rows, config.features, config.label, config.model, config.seed)
        metrics = evaluate(test_rows[config.label].to_numpy(), model.predict_proba(test_rows))
        run.log_metrics(metrics)
        digest = save_model(run, model, train_rows)
    return TrainResult(run.id, model, digest, metrics, split)


def save_model(run: Run, model: FittedModel, train_rows: pd.DataFrame) -> str:
    """The model file and what it accepts (its input schema), stored with the run; returns the model's SHA-256."""
    schema = InputSchema.from_frame(train_rows, model.features)
    run.log_artifact("input_schema.json", schema.to_json().encode())
    digest = run.log_artifact("model.skops", model.to_bytes())
    run.set_tag("model_sha256", digest)
    return digest
