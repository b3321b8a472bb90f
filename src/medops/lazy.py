"""Package members that load on first use, so importing one light module of a package does not
import its heavy siblings (pandas, the database layer) and the CLI starts fast."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any


def members(package: str, homes: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__``: each name in ``homes`` comes from the submodule named beside it."""

    def __getattr__(name: str) -> Any:
        if name in homes:
            return getattr(import_module(f"{package}.{homes[name]}"), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
