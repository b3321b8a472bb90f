"""Which of a challenger's test rows the champion never trained on: the only fair rows to compare them on.

A challenger retrained on a later extract is tested on patients held out of that extract, but the
champion, trained on an earlier extract of the same records, may have learnt from some of those
rows (a held-out patient's earlier stays were in its training data). Scoring the champion on rows
it was fitted to flatters it, and a non-inferiority gate would then refuse any retrained model.
Both are therefore compared on the rows neither was trained on: the challenger's test rows less
the champion's training rows, matched by the columns that identify a row rather than describe it
(entity, event time, identifiers: the same stay in two extracts).
When the two runs share their training set and split, nothing is left out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from medops.training import stored
from medops.training.tracking import RunInfo, Tracker
from medops.training.train import TrainConfig, config_from_recipe, configured_split


@dataclass(frozen=True)
class Unseen:
    mask: np.ndarray  # over the challenger's test rows: True where the champion never trained on the row
    key: list[str]  # the columns a row was matched by (none: nothing to match, every row is kept)

    @property
    def left_out(self) -> int:
        return int((~self.mask).sum())


def unseen_by(tracker: Tracker, champion: RunInfo, test: pd.DataFrame, config: TrainConfig) -> Unseen:
    """The challenger's ``test`` rows (split by ``config``) that are not among ``champion``'s training rows."""
    doc = stored.recipe(tracker, champion)
    frame = stored.training_frame(tracker, champion, doc)
    theirs = config_from_recipe(doc)
    trained = frame.iloc[configured_split(frame, theirs).train]  # its leakage was checked when it was trained
    key = _key(config, theirs, test, trained)
    if not key:  # no column says which row it is: nothing can be matched, so nothing is left out
        return Unseen(np.ones(len(test), dtype=bool), key)
    seen = pd.MultiIndex.from_frame(_normalized(trained[key]))
    mask = ~pd.MultiIndex.from_frame(_normalized(test[key])).isin(seen)
    return Unseen(np.asarray(mask, dtype=bool), key)


def _key(ours: TrainConfig, theirs: TrainConfig, test: pd.DataFrame, trained: pd.DataFrame) -> list[str]:
    """The columns that say which row it is, not what the model saw: those beside the features and the
    label (the entity, the event's time and identifiers of a training set), when both frames have them."""
    modelled = {*ours.features, *theirs.features, ours.label, theirs.label}
    return [c for c in test.columns if c in trained.columns and c not in modelled]


def _normalized(frame: pd.DataFrame) -> pd.DataFrame:
    """Values as comparable across two reads of two dataset versions: times as UTC instants, the rest as text."""
    out = {}
    for column in frame.columns:
        values = frame[column]
        if pd.api.types.is_datetime64_any_dtype(values):
            stamps = pd.to_datetime(values, utc=True)
            out[column] = stamps.dt.strftime("%Y-%m-%dT%H:%M:%S.%f").fillna("")
        else:
            out[column] = values.astype("string").fillna("")
    return pd.DataFrame(out, index=frame.index).reset_index(drop=True)
