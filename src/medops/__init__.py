"""medops: MLOps for healthcare and life sciences, with governance built in."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

    from medops.registry.predictor import Predictor
    from medops.training.tracking import Run

try:
    __version__ = version("medops")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+source"

__all__ = ["__version__", "load_model", "start_run"]


def start_run(experiment: str, name: str | None = None, **kwargs: Any) -> Run:
    """Open a tracked run in the current workspace: ``with medops.start_run("readmission") as run:``."""
    from medops.training.tracking import start_run as start

    return start(experiment, name, **kwargs)


def load_model(ref: str | tuple[str, int] | Path) -> Predictor:
    """A verified predictor: ``medops.load_model("readmission_30d:2")`` or a bundle file's path.

    The bundle's signature and checksums are checked before the model is loaded; ``predict``
    and ``predict_proba`` refuse inputs outside what the model was trained on.
    """
    from medops.registry.predictor import load_model as load
    from medops.workspace import Workspace

    with Workspace.open() as ws:
        return load(ws, ref)
