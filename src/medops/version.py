"""The installed medops version, importable without loading anything else."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("medops")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+source"
