"""The estimators a project can train, each declared once.

A declaration says how the estimator is built (with medops's fixed settings: seed, one
thread, LightGBM's deterministic mode), whether numeric features are scaled for it, how a
tuning trial reports while it fits (so Optuna can prune it), how a bundle carries it (in
its library's own format, or as a skops pipeline) and which types outside scikit-learn its
model file may build. Training, tuning, the project file's schema, ``medops train --help``,
the model file's safe list and the registry's bundles all read these declarations.

Importing this module imports no machine-learning library: each is imported when a model
is built, fitted or loaded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from medops.errors import ConfigError, InvalidInput

# Types outside scikit-learn that any trainer's model file may hold: the containers scikit-learn's
# own objects use, and the wrapper calibration puts around a model.
# Calibration (docs/training.md: sigmoid or isotonic) adds scikit-learn's private holders of the fitted
# calibrators: _SigmoidCalibration keeps two floats (Platt's a and b) and runs no code of its own on load.
COMMON_SAFE_TYPES = frozenset(
    {
        "collections.OrderedDict",
        "numpy.dtype",
        "sklearn.calibration._CalibratedClassifier",
        "sklearn.calibration._SigmoidCalibration",
    }
)


class StagedFit(Protocol):
    """Fit ``model`` and call ``report(step, validation probabilities)`` every ``every`` steps;
    ``report`` raises to stop a weak trial early (Optuna's pruning)."""

    def __call__(
        self, model: Any, x_fit: Any, y_fit: Any, x_valid: Any, every: int, report: Callable[[int, Any], None]
    ) -> None: ...


@dataclass(frozen=True)
class NativeModel:
    """A bundle carries the model in its library's format, with the preprocessing as plain JSON.

    ``booster`` takes the fitted estimator and returns the object that scores the model's
    input matrix (``predict(matrix)`` gives the positive class's probabilities), or None when
    this model can't travel natively (then the bundle holds the skops pipeline). ``dumps``
    and ``loads`` write and read that object as the bundle member ``file``.
    """

    file: str
    booster: Callable[[Any], Any | None]
    dumps: Callable[[Any], bytes]
    loads: Callable[[bytes], Any]
    # scores a few rows (one request) on the calling thread alone: a library's thread pool wakes up
    # for each call, and on a busy server its tail latency is the request's (None: ``predict`` as it is)
    predict_few: Callable[[Any, Any], Any] | None = None


@dataclass(frozen=True)
class Trainer:
    """One estimator: built for a seed, whether numbers are scaled, pruned, bundled, its safe types."""

    name: str
    build: Callable[[int], Any]
    scale_numbers: bool = False
    safe_types: frozenset[str] = frozenset()
    staged_fit: StagedFit | None = None
    native: NativeModel | None = None


_TRAINERS: dict[str, Trainer] = {}


def register_trainer(trainer: Trainer) -> Trainer:
    """Make ``trainer.name`` an estimator a project, the CLI and bundles accept."""
    if trainer.name in _TRAINERS:
        raise ConfigError(f"estimator {trainer.name!r} is registered already")
    _TRAINERS[trainer.name] = trainer
    return trainer


def unregister_trainer(name: str) -> None:
    if _TRAINERS.pop(name, None) is None:
        raise ConfigError(f"estimator {name!r} is not registered")


def trainer_names() -> list[str]:
    """Every estimator's name, in the order they were registered."""
    return list(_TRAINERS)


def get_trainer(name: str) -> Trainer:
    trainer = _TRAINERS.get(name)
    if trainer is None:
        raise InvalidInput(f"estimator {name!r} is not known", hint=f"estimators: {', '.join(_TRAINERS)}")
    return trainer


def safe_types() -> frozenset[str]:
    """The types beyond scikit-learn's that a model file or bundle may build: any trainer's, and no other."""
    return COMMON_SAFE_TYPES.union(*(t.safe_types for t in _TRAINERS.values()))


def native_models() -> list[NativeModel]:
    """The library formats bundles may carry a model in."""
    return [t.native for t in _TRAINERS.values() if t.native is not None]


# ---------------------------------------------------------------------------- the built-in trainers


def _logistic_regression(seed: int) -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=1000, random_state=seed)


def _random_forest(seed: int) -> Any:
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(random_state=seed, n_jobs=1)


def _hist_gradient_boosting(seed: int) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(random_state=seed)


def _lightgbm(seed: int) -> Any:
    from lightgbm import LGBMClassifier

    return LGBMClassifier(random_state=seed, deterministic=True, force_row_wise=True, n_jobs=1, verbose=-1)


SINGLE_ROWS = 8  # up to this many rows, one call per row beats predict's per-call preparation (measured)


def _lightgbm_staged_fit(
    model: Any, x_fit: Any, y_fit: Any, x_valid: Any, every: int, report: Callable[[int, Any], None]
) -> None:
    """LightGBM calls back after each boosting round; every ``every`` rounds the model so far is scored."""

    def callback(env: Any) -> None:
        step = env.iteration + 1
        if not step % every:
            report(step, env.model.predict(x_valid, num_iteration=step))

    model.fit(x_fit, y_fit, callbacks=[callback])


def _lightgbm_booster(model: Any) -> Any | None:
    """A binary LGBMClassifier's booster (its ``predict`` gives probabilities); None for anything else."""
    if type(model).__name__ == "LGBMClassifier" and getattr(model, "n_classes_", 2) == 2:
        return model.booster_
    return None


def _lightgbm_text(booster: Any) -> bytes:
    return str(booster.model_to_string()).encode()


def _lightgbm_few(booster: Any, matrix: Any) -> Any:
    if len(matrix) <= SINGLE_ROWS:  # the same values: LightGBM's prepared single-row predictor
        from medops.training.lightgbm_rows import predict_rows

        return predict_rows(booster, matrix)
    return booster.predict(matrix, num_threads=1)  # the same values: each row is scored on its own


def _lightgbm_from_text(text: bytes) -> Any:
    import lightgbm

    return lightgbm.Booster(model_str=text.decode())


register_trainer(Trainer("logistic_regression", _logistic_regression, scale_numbers=True))
register_trainer(Trainer("random_forest", _random_forest, safe_types=frozenset({"sklearn.tree._tree.Tree"})))
register_trainer(
    Trainer(
        "hist_gradient_boosting",
        _hist_gradient_boosting,
        safe_types=frozenset({"sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"}),
    )
)
register_trainer(
    Trainer(
        "lightgbm",
        _lightgbm,
        safe_types=frozenset({"lightgbm.basic.Booster", "lightgbm.sklearn.LGBMClassifier"}),
        staged_fit=_lightgbm_staged_fit,
        native=NativeModel("model.txt", _lightgbm_booster, _lightgbm_text, _lightgbm_from_text, _lightgbm_few),
    )
)
