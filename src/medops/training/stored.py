"""What a training run stored, read back verified: its recipe, its data, its model, its input schema.

Every read goes through the artifact store, which checks the SHA-256 before returning bytes, and
a model file is skops, which builds only safe types: nothing is unpickled.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from medops.errors import InvalidInput
from medops.training import model_file
from medops.training.input_schema import InputSchema
from medops.training.tracking import RunInfo, Tracker
from medops.training.train import label_as_numbers
from medops.training.trainers import FittedModel


def artifact(info: RunInfo, path: str) -> str | None:
    return next((a["digest"] for a in info.artifacts if a["path"] == path), None)


def recipe(tracker: Tracker, info: RunInfo) -> dict[str, Any]:
    digest = artifact(info, "recipe.json")
    if digest is None:
        raise InvalidInput(f"run {info.short} recorded no recipe", code="run_not_trained")
    doc: dict[str, Any] = json.loads(tracker.ws.artifacts.read_bytes(digest))
    return doc


def training_frame(tracker: Tracker, info: RunInfo, doc: dict[str, Any]) -> pd.DataFrame:
    """The rows the run was trained and tested on, chosen from its dataset version as it chose them."""
    data = doc.get("data")
    if not data:
        raise InvalidInput(
            f"run {info.short} was trained on a frame, not a dataset version: its data can't be read back",
            code="run_not_trained",
        )
    frame = label_as_numbers(pq.read_table(tracker.ws.artifacts.local_path(data["version"])).to_pandas(), doc["label"])
    if data.get("drop_missing_labels"):
        frame = frame[frame[doc["label"]].notna()].reset_index(drop=True)
    return frame


def model(tracker: Tracker, info: RunInfo) -> FittedModel:
    digest = info.tags.get("model_sha256")
    if not digest:
        raise InvalidInput(f"run {info.short} stored no model", code="run_not_trained")
    return model_file.loads(tracker.ws.artifacts.read_bytes(digest))  # verified against its SHA-256 first


def input_schema(tracker: Tracker, info: RunInfo) -> InputSchema | None:
    digest = artifact(info, "input_schema.json")
    return None if digest is None else InputSchema.from_json(tracker.ws.artifacts.read_bytes(digest))
