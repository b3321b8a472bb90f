"""Running the lifecycle from the project file: loading it, and the steps it declares.

The project module loads on first use (it brings the contract and feature schemas).
"""

from __future__ import annotations

from typing import Any

__all__ = ["PROJECT_FILE", "LoadedProject", "Project", "ProjectError", "find_project", "load_project"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from medops.pipelines import project

        return getattr(project, name)
    raise AttributeError(f"module 'medops.pipelines' has no attribute {name!r}")
