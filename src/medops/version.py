"""The installed medops version, importable without loading anything else.

Read from the installed metadata on first use: importlib.metadata is slow to load, and
`medops --help` should not pay for it.
"""

from __future__ import annotations

from functools import cache


@cache
def installed_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("medops")
    except PackageNotFoundError:  # running from a source tree without install
        return "0.0.0+source"


def __getattr__(name: str) -> str:
    """``from medops.version import __version__`` reads it on first use."""
    if name == "__version__":
        return installed_version()
    raise AttributeError(f"module 'medops.version' has no attribute {name!r}")
