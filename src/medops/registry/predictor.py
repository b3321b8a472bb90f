"""A loaded model: input checks first, then the fitted pipeline, then the threshold.

``load_model`` accepts a registered version (``"NAME:VERSION"`` or a ``(name, version)``
pair, read from the workspace's artifact store) or a bundle file; ``load_bundle_file``
needs no workspace, only the exporting workspace's public key. Either way the bundle is
verified (trusted signature, every checksum, safe types only) before the model is built.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from medops.errors import InvalidInput
from medops.registry.bundles import INFERENCE, SKOPS, Bundle, load_fitted, native_model, read, schema_from_doc
from medops.registry.compiled import Compiled, compile_pipeline, from_doc
from medops.training.input_schema import InputSchema
from medops.training.trainers import FittedModel

if TYPE_CHECKING:
    from medops.platform import Platform

MAX_LISTED = 5


@dataclass
class Predictor:
    bundle: Bundle
    schema: InputSchema
    threshold: float
    compiled: Compiled | None = None  # the same inference as plain arrays (see compiled.py)
    features: list[str] = field(default_factory=list)
    _model: FittedModel | None = None
    out_of_range: str = "reject"  # or "flag": scored, and listed in ``flags`` (the model's policy, from its bundle)
    flags: dict[str, np.ndarray] = field(default_factory=dict)  # the last call's rows outside the checks, by feature

    @property
    def model(self) -> FittedModel:
        """The scikit-learn pipeline itself, built from the bundle's skops file when first asked for."""
        if self._model is None:
            if SKOPS not in self.bundle.raw:
                raise InvalidInput(
                    "this bundle holds a LightGBM model as LightGBM's text and plain statistics, "
                    "not a scikit-learn object",
                    hint="predict with predict_proba or predict; the booster is compiled.booster",
                )
            self._model = load_fitted(self.bundle)
        return self._model

    def check(self, frame: pd.DataFrame) -> None:
        """Refuse rows the model never saw the like of: missing columns, out-of-range values, new categories."""
        self._checked(frame)

    def _checked(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        absent = sorted(set(self.features) - set(frame.columns))
        if absent:
            raise InvalidInput(
                f"input has no column {absent[0]!r}", hint=f"the model needs: {', '.join(self.features)}"
            )
        columns = {f: frame[f].to_numpy() for f in self.features}
        problems = []
        checked = self.schema.check_columns(columns, len(frame))
        self.flags = {column: rows for column, rows in checked.items() if rows.any()}
        if self.out_of_range == "flag":
            return columns
        for column, rows in checked.items():
            for row in np.flatnonzero(rows)[:MAX_LISTED]:
                problems.append(f"row {int(row)}, column {column!r}: {self._why(column, columns[column][row])}")
        if problems:
            raise InvalidInput("input outside what the model was trained on: " + "; ".join(problems[:MAX_LISTED]))
        return columns

    def _why(self, column: str, value: Any) -> str:
        if pd.isna(value):
            return "missing, and it never was in training"
        if column in self.schema.numeric:
            low, high = self.schema.numeric[column]
            return f"outside the accepted range [{low:g}, {high:g}]"
        return "a category not seen in training"

    def predict_proba(self, frame: pd.DataFrame, *, check: bool = True) -> np.ndarray:
        """The probability of the positive class per row (input checked unless ``check=False``)."""
        if self.compiled is not None:
            columns = self._checked(frame) if check else {f: frame[f].to_numpy() for f in self.features}
            return self.compiled.predict_columns(columns, len(frame))
        if check:
            self.check(frame)
        return self.model.predict_proba(frame)

    def predict(self, frame: pd.DataFrame, *, check: bool = True) -> np.ndarray:
        """1 where the probability reaches the validated threshold, else 0."""
        return (self.predict_proba(frame, check=check) >= self.threshold).astype(np.int8)


def load_model(ws: Platform, ref: str | tuple[str, int] | Path) -> Predictor:
    """A verified predictor from a registered version or a bundle file."""
    from medops.registry.transfer import trusted_keys
    from medops.registry.versions import get, parse_ref

    if isinstance(ref, Path):
        source = ref  # read as a stream, within the bundle limits
    else:
        name, version = parse_ref(ref) if isinstance(ref, str) else ref
        source = ws.artifacts.local_path(get(ws, name, version).artifact_sha256)  # checked against its SHA-256
    return _predictor(source, trusted_keys(ws))


def load_bundle_file(path: str | Path, public_key: str) -> Predictor:
    """A verified predictor from a bundle file outside any workspace, trusting one public key
    (the exporting workspace's: ``medops models public-key``): what a serving process runs."""
    from medops.public_keys import decode_public, key_id

    try:
        kid = key_id(decode_public(public_key.strip()))
    except ValueError:
        raise InvalidInput("not an Ed25519 public key (base64 of 32 bytes)") from None
    return _predictor(Path(path), {kid: public_key.strip()})


def load_bundle_bytes(data: bytes, sha256: str, trusted: dict[str, str]) -> Predictor:
    """A verified predictor from a bundle's bytes, as a task on another machine receives them: their
    SHA-256 must be ``sha256`` (the registered version's), then the bundle verifies as any other
    (a signature by one of ``trusted``, key id -> public key; every checksum; safe types)."""
    import hashlib

    from medops.errors import IntegrityError

    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise IntegrityError(f"the bundle's sha256 {digest[:12]} is not the registered {sha256[:12]}")
    return _predictor(data, trusted)


def _predictor(source: Path | bytes, trusted: dict[str, str]) -> Predictor:
    bundle = read(source, trusted)  # every file checked: a tampered bundle is refused whole, even a part unused here
    schema, threshold = schema_from_doc(bundle.input_schema), float(bundle.output_schema["threshold"])
    policy = str(bundle.input_schema.get("out_of_range", "reject"))
    native = native_model(bundle)
    if native is not None:  # LightGBM: its own text model and the statistics, no pipeline to build
        booster = native.loads(bundle.file(native.file))
        compiled = from_doc(json.loads(bundle.file(INFERENCE)), booster, native)
        return Predictor(
            bundle, schema, threshold, compiled, features=list(bundle.metadata["features"]), out_of_range=policy
        )
    model = load_fitted(bundle)
    return Predictor(
        bundle, schema, threshold, compile_pipeline(model.pipeline), list(model.features), model, out_of_range=policy
    )
