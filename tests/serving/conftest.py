"""Fixtures of the serving tests."""

from __future__ import annotations

import pytest

from medops.registry import versions
from medops.workspace import Workspace


@pytest.fixture
def scored(registry: tuple[Workspace, str]) -> Workspace:
    """The registry's run registered as readmission:1 (not promoted)."""
    ws, run_id = registry
    versions.register(ws, run_id, "readmission", actor="alice")
    return ws
