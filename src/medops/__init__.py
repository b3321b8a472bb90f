"""medops: MLOps for healthcare and life sciences, with governance built in."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("medops")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+source"

__all__ = ["__version__"]
