"""medops: MLOps for healthcare and life sciences, with governance built in."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from medops.training.tracking import Run

try:
    __version__ = version("medops")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+source"

__all__ = ["__version__", "start_run"]


def start_run(experiment: str, name: str | None = None, **kwargs: Any) -> Run:
    """Open a tracked run in the current workspace: ``with medops.start_run("readmission") as run:``."""
    from medops.training.tracking import start_run as start

    return start(experiment, name, **kwargs)
