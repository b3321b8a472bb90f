"""The feature store as its users meet it: views applied, training sets, materialization, online
lookups, online/offline checks, and one view in full (definition, versions, lineage, history)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from medops.audit import AuditFilter, list_events
from medops.audit.query import EventView
from medops.caller import Caller
from medops.errors import NotFound
from medops.features.store import AppliedView, list_applied, view_node
from medops.identity import Role
from medops.platform import Platform
from medops.store.lineage import Edge, walk

if TYPE_CHECKING:
    from medops.data.datasets import DatasetInfo
    from medops.features import FeatureSet
    from medops.features.store import ApplyResult, CheckReport, OnlineResult


@dataclass(frozen=True)
class FeatureViewDetail:
    versions: list[AppliedView]  # newest first
    lineage: list[Edge]
    history: list[EventView]  # every audited change of the view, newest first

    @property
    def latest(self) -> AppliedView:
        return self.versions[0]

    def to_json(self) -> dict[str, Any]:
        latest = self.latest
        return {
            "view": latest.name,
            "version": latest.version,
            "definition": latest.definition,
            "stats": latest.stats,
            "versions": [{"version": v.version, "at": v.created_at, "by": v.created_by} for v in self.versions],
            "lineage": [{"src": e.src, "dst": e.dst, "relation": e.relation} for e in self.lineage],
            "history": [{"at": e.ts, "actor": e.actor, "action": e.action, "reason": e.reason} for e in self.history],
        }


@dataclass(frozen=True)
class AppliedViews:
    results: list[ApplyResult]

    def to_json(self) -> list[dict[str, Any]]:
        return [
            {"view": r.view.name, "version": r.view.version, "rows": r.view.rows, "new": r.new} for r in self.results
        ]


@dataclass(frozen=True)
class TrainingSet:
    info: DatasetInfo
    new: bool

    def to_json(self) -> dict[str, Any]:
        return {"dataset": self.info.ref, "version": self.info.version, "rows": self.info.rows, "new": self.new}


@dataclass(frozen=True)
class OnlineFeatures:
    result: OnlineResult

    def to_json(self) -> dict[str, Any]:
        r = self.result
        return {
            "rows": r.rows,
            "event_times": {k: [t.isoformat() if t else None for t in v] for k, v in r.event_times.items()},
            "stale": {k: v for k, v in r.stale.items() if any(v)},
            "found": r.found,
        }


@dataclass(frozen=True)
class OnlineCheck:
    report: CheckReport

    def to_json(self) -> dict[str, Any]:
        r = self.report
        return {
            "ok": r.ok,
            "checked": r.checked,
            "not_materialized": r.not_materialized,
            "differences": [vars(d) for d in r.differences[:100]],
        }


class FeatureService:
    """Each operation opens the feature store of the project's views for its own length."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform

    def apply(
        self,
        caller: Caller,
        features: FeatureSet,
        *,
        views: Sequence[str] | None = None,
        executor: str | None = None,
        reason: str | None = None,
        progress: Callable[[str], None] = lambda name: None,
    ) -> AppliedViews:
        from medops.features import FeatureStore

        with FeatureStore(self.platform, features, executor=executor) as store:
            return AppliedViews(store.apply(caller.user, views=views, reason=reason, progress=progress))

    def training_set(
        self,
        caller: Caller,
        features: FeatureSet,
        name: str,
        labels: str,
        chosen: Sequence[str],
        *,
        timestamp: str,
        executor: str | None = None,
        reason: str | None = None,
        backfill_guard: bool = True,
    ) -> TrainingSet:
        from medops.features import FeatureStore

        with FeatureStore(self.platform, features, executor=executor) as store:
            info, new = store.save_training_set(
                name,
                labels,
                chosen,
                timestamp=timestamp,
                reason=reason,
                backfill_guard=backfill_guard,
                actor=caller.user,
            )
        return TrainingSet(info, new)

    def materialize(
        self,
        caller: Caller,
        features: FeatureSet,
        *,
        views: Sequence[str] | None = None,
        as_of: datetime | None = None,
        executor: str | None = None,
        reason: str | None = None,
        progress: Callable[[str, int], None] = lambda view, rows: None,
    ) -> dict[str, int]:
        """Entities written per view."""
        from medops.features import FeatureStore

        with FeatureStore(self.platform, features, executor=executor) as store:
            return store.materialize(caller.user, views=views, as_of=as_of, reason=reason, progress=progress)

    def online_features(
        self,
        caller: Caller,
        features: FeatureSet,
        entities: Mapping[str, Sequence[str]],
        chosen: Sequence[str],
        *,
        request: Mapping[str, Sequence[Any]] | None = None,
    ) -> OnlineFeatures:
        from medops.features import FeatureStore

        # a patient's values: a read for someone holding a role, never for a caller without a login
        self.platform.users.require_role(caller.user, "features.read", set(Role))
        with FeatureStore(self.platform, features) as store:
            return OnlineFeatures(store.get_online_features(entities, chosen, request=request))

    def check(
        self,
        caller: Caller,
        features: FeatureSet,
        *,
        views: Sequence[str] | None = None,
        sample: int = 100,
        seed: int = 0,
    ) -> OnlineCheck:
        from medops.features import FeatureStore

        with FeatureStore(self.platform, features) as store:
            return OnlineCheck(store.check(caller.user, views=views, sample=sample, seed=seed))

    def show(self, caller: Caller, view: str) -> FeatureViewDetail:
        """The whole history is read in the database (the view and its versions ``view@...``)."""
        self.platform.users.require_role(caller.user, "features.read", set(Role))
        versions = list_applied(self.platform, view)
        if not versions:
            raise NotFound(f"feature view {view!r} is not applied", code="feature_view_not_applied")
        history = list_events(self.platform.db, AuditFilter(entity_type="feature_view", entity_family=view), limit=None)
        edges = walk(self.platform.db, view_node(versions[0].name, versions[0].version), "both", depth=3)
        return FeatureViewDetail(versions, edges, history)
