"""Predictions the test set never saw, for choosing the decision threshold.

A threshold solved on the test rows (say, for a target sensitivity) makes every threshold
metric on those rows optimistic, and a gate on sensitivity at or below the target can't
fail. The threshold is therefore solved on out-of-fold predictions of the training side:
the run's own model settings refitted on k-1 folds and scored on the k-th, folds made of
whole patients when the split is grouped (else stratified by label). The test rows then
judge that threshold as they judge everything else.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from medops.errors import InvalidInput
from medops.training.train import TrainConfig
from medops.training.trainers import fit


@dataclass(frozen=True)
class HeldOut:
    y: np.ndarray
    p: np.ndarray
    description: str


def fold_of(frame: pd.DataFrame, label: str, group: str | None, folds: int, seed: int) -> np.ndarray:
    """Each row's fold: whole groups (in order of first appearance, seeded), else rows stratified by label."""
    rng = np.random.default_rng(seed)
    if group is not None and group in frame.columns:
        codes, uniques = pd.factorize(frame[group].astype("string").fillna("<missing>"))
        order = rng.permutation(len(uniques))
        assigned = np.empty(len(uniques), dtype=np.int64)
        assigned[order] = np.arange(len(uniques)) % folds
        return np.asarray(assigned[codes], dtype=np.int64)
    labels = frame[label].to_numpy()
    out = np.empty(len(frame), dtype=np.int64)
    for value in pd.unique(labels):
        members = np.flatnonzero(labels == value)
        rng.shuffle(members)
        out[members] = np.arange(len(members)) % folds
    return out


def out_of_fold(train: pd.DataFrame, config: TrainConfig, folds: int) -> HeldOut:
    """Out-of-fold scores of the training side under the run's model settings."""
    train = train.reset_index(drop=True)
    fold = fold_of(train, config.label, config.group, folds, config.seed)
    y = train[config.label].astype(float).to_numpy()
    p = np.full(len(train), np.nan)
    for k in range(folds):
        inside = fold == k
        if not inside.any() or inside.all():
            continue
        rest = train[~inside]
        if rest[config.label].nunique() < 2:
            raise InvalidInput(
                f"fold {k + 1} of {folds} leaves one class to train on",
                hint="use fewer folds (evaluate.threshold.folds) or a fixed threshold (evaluate.threshold.value)",
            )
        model = fit(rest, config.features, config.label, config.model, config.seed)
        p[inside] = model.predict_proba(train[inside])
    if np.isnan(p).any():
        raise InvalidInput(
            f"the training side is too small for {folds} folds of out-of-fold predictions",
            hint="use fewer folds (evaluate.threshold.folds) or a fixed threshold (evaluate.threshold.value)",
        )
    unit = f"folds of whole {config.group} groups" if config.group in train.columns else "folds stratified by label"
    return HeldOut(y.astype(np.int8), p, f"out-of-fold predictions on the training side ({folds} {unit})")
