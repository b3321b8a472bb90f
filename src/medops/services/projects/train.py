"""`medops train` from the project file: the training set, then one tracked training.

The training set is built (or found unchanged) from the applied feature views and the
labels dataset, point-in-time, and the run records its version; the features are the
training set's columns that did not come from the labels, unless the project lists them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import date
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
from pydantic import ValidationError

from medops.caller import Caller
from medops.data.datasets import DatasetInfo, get
from medops.errors import ConfigError, InvalidInput
from medops.features import FeatureStore
from medops.platform import Platform
from medops.services.projects.project import LoadedProject, TrainSpec
from medops.training.tracking import RUN_ROLES, Tracker
from medops.training.train import TrainConfig, TrainResult, label_as_numbers, train
from medops.training.trainers import ModelSpec, estimator_for
from medops.training.tuning import TuneResult
from medops.training.tuning import tune as run_tuning

# Where each command-line setting lives in the project's train section, for overrides and their errors.
OVERRIDES: dict[str, tuple[str, ...]] = {
    "estimator": ("model", "estimator"),
    "params": ("model", "params"),
    "class_weight": ("model", "class_weight"),
    "calibration": ("model", "calibration"),
    "resample": ("model", "resample"),
    "split": ("split", "kind"),
    "test_size": ("split", "test_size"),
    "cutoff": ("split", "cutoff"),
    "seed": ("seed",),
    "experiment": ("experiment",),
    "allow_leakage": ("allow_leakage",),
}


def build_training_set(
    ws: Platform, project: LoadedProject, spec: TrainSpec, who: str, reason: str | None, say: Callable[[str], None]
) -> tuple[DatasetInfo, bool]:
    """Labels joined point-in-time with the feature views: the set built, or found unchanged (``False``)."""
    ts = spec.training_set
    assert ts is not None
    labels_info = get(ws.db, ts.labels)
    refuse_shifted_timeline(project, spec, labels_info, ts.timestamp)  # before minutes of point-in-time joins
    with FeatureStore(ws, project.features) as store:
        info, new = store.save_training_set(
            ts.name,
            ts.labels,
            ts.features,
            timestamp=ts.timestamp,
            actor=who,
            reason=reason,
            quarantined=ts.quarantined,
        )
    say(f"training set {info.ref}: {info.rows:,} rows ({'new version' if new else 'unchanged'})")
    lost = info.details.get("training_set", {}).get("quarantine") or {}
    if lost.get("label_rows_dropped"):
        say(
            f"{lost['label_rows_dropped']:,} label rows left out: their entities lost source rows to quarantine "
            f"({', '.join(k for k, v in lost['sources'].items() if v['label_rows_dropped'])})"
        )
    return info, new


def _training_set(
    ws: Platform,
    project: LoadedProject,
    spec: TrainSpec,
    who: str,
    reason: str | None,
    say: Callable[[str], None],
    built: str | None = None,
) -> tuple[DatasetInfo, pd.DataFrame, list[str], dict[str, str]]:
    """The training set (``built``: a version of it already made, as a pipeline's own step made it; else built
    or found unchanged now), read, and its features."""
    ts = spec.training_set
    assert ts is not None
    labels_info = get(ws.db, ts.labels)
    if built is None:
        info = build_training_set(ws, project, spec, who, reason, say)[0]
    else:
        ws.users.require_role(who, "run.start", RUN_ROLES)  # before reading the data, not after
        info = get(ws.db, built)
        if info.name != ts.name:
            raise InvalidInput(f"{built!r} is not a version of the training set {ts.name!r}")
        say(f"training set {info.ref}: {info.rows:,} rows (made by the pipeline's training_set step)")
    frame = pq.read_table(ws.artifacts.local_path(info.version)).to_pandas()
    label_columns = {c["name"] for c in labels_info.schema}
    if spec.label not in frame.columns:
        raise InvalidInput(f"{project.where(('train', 'label'))}: the training set has no column {spec.label!r}")
    features = spec.features or [c for c in frame.columns if c not in label_columns]
    return info, frame, features, dict(info.details.get("training_set", {}).get("views", {}))


def _flat_table(
    ws: Platform, project: LoadedProject, spec: TrainSpec, who: str, say: Callable[[str], None]
) -> tuple[DatasetInfo, pd.DataFrame, list[str], dict[str, str]]:
    """A dataset holding features and outcome in one table (static data: no point-in-time join needed)."""
    assert spec.dataset is not None
    ws.users.require_role(who, "run.start", RUN_ROLES)  # before reading the data, not after
    info = get(ws.db, spec.dataset)
    refuse_shifted_timeline(project, spec, info, None)
    frame = pq.read_table(ws.artifacts.local_path(info.version)).to_pandas()
    say(f"dataset {info.ref}: {info.rows:,} rows, features and outcome in one table")
    if spec.label not in frame.columns:
        raise InvalidInput(
            f"{project.where(('train', 'label'))}: dataset {spec.dataset!r} has no column {spec.label!r}",
            hint=f"columns: {', '.join(frame.columns)}",
        )
    deid = (info.details.get("deid") or {}).get("columns", [])
    ids = {c["column"] for c in deid if str(c["action"]).startswith("pseudonymize")}
    times = {c for c in frame.columns if pd.api.types.is_datetime64_any_dtype(frame[c])}  # when, not what
    not_features = {spec.label, spec.split.group, spec.split.time, *ids, *times}
    features = spec.features or [c for c in frame.columns if c not in not_features]
    unknown = [f for f in features if f not in frame.columns]
    if unknown:
        raise InvalidInput(
            f"{project.where(('train', 'features'))}: dataset {spec.dataset!r} has no column {unknown[0]!r}"
        )
    if not features:
        raise InvalidInput(f"{project.where(('train', 'features'))}: no feature left besides the label and ids")
    return info, frame, features, {}


def refuse_shifted_timeline(
    project: LoadedProject, spec: TrainSpec, labels: DatasetInfo, label_timestamp: str | None
) -> None:
    """A temporal split on a date shifted per patient at ingest mixes periods: each patient moved by up to
    182 days, so rows cross the cutoff both ways. The de-identification record says which columns moved."""
    if spec.split.kind != "temporal" or not spec.split.time:
        return
    column = label_timestamp if spec.split.time == "event_timestamp" and label_timestamp else spec.split.time
    shifted = {
        c["column"] for c in (labels.details.get("deid") or {}).get("columns", []) if c["action"] == "shift_dates"
    }
    if column in shifted:
        raise ConfigError(
            f"{project.where(('train', 'split', 'time'))}: {spec.split.time!r} comes from {labels.name}.{column}, "
            "whose dates were shifted per patient at ingest (up to ±182 days): a temporal split on it would put "
            "rows from after the cutoff into training and from before it into the test",
            hint="split by period on a year kept unshifted (deidentify action 'year', then "
            "split: {kind: period, time: <column>_year, cutoff: 2019}), or use a grouped split",
        )


def with_overrides(spec: TrainSpec, changes: Mapping[str, Any]) -> TrainSpec:
    """The project's training with some settings replaced, checked exactly as the project file is.

    A new estimator starts from its own defaults: the file's parameters belong to the old one.
    ``changes`` holds keys of OVERRIDES; ``None`` means "as in the file". For ``class_weight``,
    ``calibration`` and ``resample`` the string "none" turns the setting off.
    """
    doc = spec.model_dump()
    given = {k: v for k, v in changes.items() if v is not None}
    unknown = sorted(set(given) - set(OVERRIDES))
    if unknown:
        raise InvalidInput(f"can't override {unknown[0]!r}", hint=f"settings: {', '.join(OVERRIDES)}")
    if "estimator" in given and given["estimator"] != doc["model"]["estimator"]:
        doc["model"]["params"] = {}
    for key, value in given.items():
        *parents, leaf = OVERRIDES[key]
        target = doc
        for part in parents:
            target = target[part]
        if key in ("class_weight", "calibration", "resample") and value == "none":
            value = None
        if key == "params":
            value = {**target[leaf], **value}
        target[leaf] = value
    try:
        changed = TrainSpec.model_validate(doc)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = tuple(str(p) for p in first["loc"])
        option = next((k for k, path in OVERRIDES.items() if loc[: len(path)] == path), None)
        where = ".".join(OVERRIDES[option] if option and option != "allow_leakage" else loc)
        name = option or ".".join(loc)
        raise InvalidInput(
            f"{name} (train.{where}): {first['msg']}", code="project_option_invalid", option=name
        ) from None
    model = changed.model
    estimator_for(ModelSpec(model.estimator, dict(model.params), model.class_weight), changed.seed)
    return changed


def train_from_project(
    ws: Platform,
    project: LoadedProject,
    *,
    caller: Caller,
    reason: str | None = None,
    say: Callable[[str], None] = lambda message: None,
    tune: bool = False,
    progress: Callable[[int, float], None] | None = None,
    overrides: Mapping[str, Any] | None = None,
    tags: Mapping[str, str] | None = None,
    training_set: str | None = None,
) -> TrainResult | TuneResult:
    """One training as the project declares it; with ``tune``, its search, the best refit and tested.

    ``overrides`` replace settings of the file for this training only (see ``with_overrides``);
    the run records what was actually used, so it reproduces without them. ``tags`` are set on the
    run (a pipeline marks the runs it made with its step's key). ``training_set`` (NAME@VERSION) trains
    on that version of the training set instead of building it again (a pipeline's own step built it).
    """
    spec = project.spec.train
    if spec is None:
        raise ConfigError(f"{project.path} has no train section", hint="add one (see the readmission template)")
    changed = sorted(k for k, v in (overrides or {}).items() if v is not None)
    spec = with_overrides(spec, overrides or {})  # also checks estimator and parameters before any work
    who = caller.user
    if spec.dataset is not None:
        info, frame, features, views = _flat_table(ws, project, spec, who, say)
    else:
        info, frame, features, views = _training_set(ws, project, spec, who, reason, say, training_set)
    frame = label_as_numbers(frame, spec.label)
    dropped = 0
    if spec.drop_missing_labels:
        known = frame[spec.label].notna()
        dropped = int((~known).sum())
        frame = frame[known].reset_index(drop=True)
        if dropped:
            say(f"{dropped:,} rows without a known outcome left out (drop_missing_labels)")
    config = TrainConfig(
        features=features,
        label=spec.label,
        model=ModelSpec(
            spec.model.estimator,
            dict(spec.model.params),
            spec.model.class_weight,
            spec.model.calibration,
            spec.model.resample,
        ),
        split=spec.split.kind,
        group=spec.split.group,
        time=spec.split.time,
        cutoff=spec.split.cutoff.isoformat() if isinstance(spec.split.cutoff, date) else spec.split.cutoff,
        test_size=spec.split.test_size,
        seed=spec.seed,
        allow_leakage=tuple(spec.allow_leakage),
        experiment=spec.experiment,
        inputs=(info.ref,),
        feature_views=views,
        data={"dataset": info.name, "version": info.version, "drop_missing_labels": spec.drop_missing_labels},
        extra_params={
            **({"rows_without_outcome_dropped": dropped} if spec.drop_missing_labels else {}),
            **({"overridden": ",".join(changed)} if changed else {}),
        },
        tags=dict(tags or {}),
    )
    if not tune:
        return train(Tracker(ws), frame, config, actor=who, project=project)
    if spec.tune is None:
        raise ConfigError(f"{project.path}: train has no tune section", hint="add train.tune with a space and a budget")
    from medops.features.executor import open_executor

    executor = open_executor(ws.settings.executor)
    try:
        return run_tuning(
            Tracker(ws),
            frame,
            replace(config, name="tuning"),
            spec.tune.space,
            trials=spec.tune.trials,
            timeout=spec.tune.timeout,
            actor=who,
            project=project,
            progress=progress,
            executor=executor,
        )
    finally:
        executor.close()
