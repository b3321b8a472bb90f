"""Scoring checked rows, and the one function that builds each row's response.

``prediction`` is the single place a response row is made: what a prediction log, an
explanation or a shadow variant adds later goes there, so every caller gets the same form.
"""

from __future__ import annotations

import json
import math
import os
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from medops.serving.models import ServedModel
from medops.serving.validation import Checked, check_rows

if TYPE_CHECKING:
    import pandas as pd


def score(
    model: ServedModel,
    records: list[Any],
    *,
    explained: bool = False,
    looked_up: list[dict[str, list[str]] | None] | None = None,
) -> list[dict[str, Any]]:
    """Each record checked against the model's input schema, scored, and answered (RowsInvalid if any fails).

    With ``explained``, each answer carries the row's per-feature contributions; a model whose
    kind has no explanation is refused (InvalidInput, code ``not_explainable``) and nothing is answered.
    ``looked_up`` holds, per row, the online lookup's flags (see medops.serving.lookup), or None.
    """
    compiled, encoder = model.predictor.compiled, model.encoder
    # clean rows in one pass; None: the field checks name what is wrong, or flag it under the model's policy
    x = encoder.encode(records) if compiled is not None and encoder is not None and not explained else None
    why = None
    if x is not None and compiled is not None:
        probabilities = compiled.predict_matrix(x)
        flags: list[list[str]] = [[] for _ in records]
    else:
        checked = check_rows(records, model.input_schema)
        if explained:
            from medops.serving.explain import explain  # pandas and the explainers load only when asked

            why = explain(model.predictor, _frame(model, checked), check=False)
        probabilities = _probabilities(model, checked)
        flags = checked.flags
    ids = time_ordered_ids(len(probabilities))
    return [
        prediction(
            model,
            float(p),
            flags[i],
            why.row(i) if why is not None else None,
            looked_up[i] if looked_up else None,
            prediction_id=ids[i],
        )
        for i, p in enumerate(probabilities)
    ]


def _frame(model: ServedModel, checked: Checked) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame({name: checked.columns[name] for name in model.predictor.features})


def _probabilities(model: ServedModel, checked: Checked) -> np.ndarray:
    predictor = model.predictor
    if predictor.compiled is not None:
        return predictor.compiled.predict_columns(checked.columns, checked.rows)
    return predictor.predict_proba(_frame(model, checked), check=False)


def time_ordered_id() -> str:
    """A UUID version 7 (RFC 9562): the millisecond, then 74 random bits.

    Why not version 4: the prediction log's table is keyed by this id, and random keys land all
    over its index, so each drained batch dirtied a page per row (measured: 62 against 35 µs of
    the drain's CPU per row on SQLite). Ids made in time order append at the index's end.
    """
    return time_ordered_ids(1)[0]


def time_ordered_ids(n: int) -> list[str]:
    """``n`` of them, for one request's rows: one read of the clock and of the random source (a system
    call each, 0.5 us a row saved)."""
    ms = (time.time_ns() // 1_000_000) & 0xFFFF_FFFF_FFFF
    head = ms << 80 | 0x7 << 76
    random = os.urandom(10 * n)
    ids = []
    for i in range(0, 10 * n, 10):
        rand = int.from_bytes(random[i : i + 10], "big")
        value = head | (rand >> 68) << 64 | 0b10 << 62 | rand & ((1 << 62) - 1)
        text = f"{value:032x}"  # uuid.UUID's own formatting, without building the object
        ids.append(f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}")
    return ids


def prediction(
    model: ServedModel,
    probability: float,
    flags: list[str],
    explanation: dict[str, Any] | None = None,
    features: dict[str, list[str]] | None = None,
    *,
    prediction_id: str | None = None,
) -> dict[str, Any]:
    """One row's answer: the probability, the decision at the validated threshold, and which model gave it."""
    row: dict[str, Any] = {
        "prediction_id": prediction_id or time_ordered_id(),
        "probability": probability,
        "decision": int(probability >= model.threshold),
        "threshold": model.threshold,
        "model": model.name,
        "version": model.version,
        "bundle_sha256": model.bundle_sha256,
    }
    if flags:
        row["out_of_range"] = flags  # scored under the model's ``flag`` policy: outside what it was trained on
    if explanation is not None:
        row["explanation"] = explanation  # base + contributions = raw_score, on the scale it names
    if features is not None:
        row["features"] = features  # looked up online: which came back missing or stale, which the caller gave
    return row


_PLAIN = ("prediction_id", "probability", "decision", "threshold", "model", "version", "bundle_sha256")
_encode = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode
_string = json.encoder.encode_basestring  # the encoder's own, in C
_shared: dict[tuple[Any, ...], str] = {}  # a model's part of its rows, encoded: at most a few models served


def encode_answer(request_id: str, rows: list[dict[str, Any]]) -> bytes:
    """``{"request_id": ..., "predictions": rows}`` exactly as the JSON encoder writes it (compact,
    no NaN; a test compares the bytes), with what a model's plain rows share (threshold, name,
    version, bundle hash) encoded once: 1.6 against 4.6 us for one row, 130 against 215 us for
    100. Any other row (flagged, explained, looked up, a variant) goes through the encoder whole."""
    parts = []
    for row in rows:
        probability, decision = row["probability"], row["decision"]
        if (
            tuple(row) != _PLAIN
            or type(probability) is not float
            or not math.isfinite(probability)
            or type(decision) is not int
            or type(row["prediction_id"]) is not str
        ):
            parts.append(_encode(row))
            continue
        threshold, version = row["threshold"], row["version"]  # with their types: 1, 1.0 and True are equal keys
        key = (type(threshold), threshold, row["model"], type(version), version, row["bundle_sha256"])
        shared = _shared.get(key)
        if shared is None:
            if len(_shared) > 64:
                _shared.clear()
            shared = _shared[key] = _encode({k: row[k] for k in _PLAIN[3:]})[1:-1]
        parts.append(
            f'{{"prediction_id":{_string(row["prediction_id"])},"probability":{probability!r},'
            f'"decision":{decision},{shared}}}'
        )
    return f'{{"request_id":{_string(request_id)},"predictions":[{",".join(parts)}]}}'.encode()
