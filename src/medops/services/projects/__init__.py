"""Running the lifecycle from the project file: loading it, and the steps it declares.

The project module loads on first use (it brings the contract and feature schemas).
"""

from __future__ import annotations

from medops.lazy import members

__all__ = ["PROJECT_FILE", "LoadedProject", "Project", "ProjectError", "find_project", "load_project"]

__getattr__ = members(__name__, dict.fromkeys(__all__, "project"))
