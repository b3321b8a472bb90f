"""Datasets as their users meet them: ingest, versions, one version in full, the current one, diffs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from medops.caller import Caller
from medops.data import datasets
from medops.data.datasets import DatasetDiff, DatasetInfo
from medops.data.ingest import IngestResult, TablePlan, ingest
from medops.data.sources import DEFAULT_CHUNK_ROWS
from medops.platform import Platform


def _cell(value: Any) -> Any:
    """A statistic as the diff shows it: six significant digits, nothing for a missing value."""
    if isinstance(value, float):
        return f"{value:.6g}"
    return "" if value is None else str(value)


@dataclass(frozen=True)
class DatasetVersion:
    info: DatasetInfo
    current: bool  # what NAME alone means

    def to_json(self) -> dict[str, Any]:
        return {**self.info.to_json(), "current": self.current}


@dataclass(frozen=True)
class DatasetDetail:
    info: DatasetInfo

    def to_json(self) -> dict[str, Any]:
        return {**self.info.to_json(), **self.info.details}


@dataclass(frozen=True)
class DatasetChanges:
    diff: DatasetDiff

    @property
    def changes(self) -> list[tuple[str, str, str, str]]:
        return [(c.column, c.change, _cell(c.before), _cell(c.after)) for c in self.diff.schema + self.diff.stats]

    def to_json(self) -> dict[str, Any]:
        return {
            "a": self.diff.a.ref,
            "b": self.diff.b.ref,
            "identical": self.diff.identical,
            "changes": self.changes,
        }


class DataService:
    def __init__(self, platform: Platform) -> None:
        self.platform = platform

    def project(self, caller: Caller) -> dict[str, Any]:
        """The workspace's reviewed project file (the one whose policy gates production), as a reviewer reads it."""
        from medops.errors import Conflict, NotFound
        from medops.evaluation.governing import project_path
        from medops.services.projects.project import ProjectError, load_project, summary

        path = project_path(self.platform.settings)
        if not path.is_file():
            raise NotFound(
                f"this workspace has no project file at {path.name}",
                hint="add one from a template, or name it in medops.toml (project_file)",
            )
        try:
            loaded = load_project(path)
        except ProjectError as exc:  # the workspace's state, not the server's failure: say what is wrong
            raise Conflict(
                f"the workspace's project file is not valid: {exc.message}", code="project_invalid"
            ) from None
        return {**summary(loaded), "governs_production": True}

    def ingest(
        self,
        caller: Caller,
        plan: TablePlan,
        *,
        reason: str | None = None,
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
        progress: Callable[[int], None] = lambda rows: None,
    ) -> IngestResult:
        return ingest(self.platform, plan, reason=reason, chunk_rows=chunk_rows, progress=progress, actor=caller.user)

    def versions(self, caller: Caller, name: str | None = None, limit: int = 50) -> list[DatasetVersion]:
        rows = datasets.list_versions(self.platform.db, name, limit)
        current = datasets.current_versions(self.platform.db)
        return [DatasetVersion(d, current.get(d.name) == d.version) for d in rows]

    def show(self, caller: Caller, ref: str) -> DatasetDetail:
        return DatasetDetail(datasets.get(self.platform.db, ref))

    def use(self, caller: Caller, ref: str, *, reason: str | None = None) -> DatasetInfo:
        return datasets.use(self.platform, ref, actor=caller.user, reason=reason)

    def diff(self, caller: Caller, a: str, b: str) -> DatasetChanges:
        db = self.platform.db
        return DatasetChanges(datasets.diff(datasets.get(db, a), datasets.get(db, b)))
