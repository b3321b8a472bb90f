"""The feature store over the team's workspace, with the events and people datasets ingested."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from medops.features import FeatureStore
from medops.workspace import Workspace
from tests.factories import events_table, feature_set, people_table, put


@pytest.fixture
def store(team: Workspace, tmp_path: Path) -> Iterator[FeatureStore]:
    put(team, tmp_path, "events", events_table())
    put(team, tmp_path, "people", people_table())
    with FeatureStore(team, feature_set(), executor="local", online_store="sqlite") as fs:
        yield fs
