"""Feature views as a reader sees them: definition, statistics, versions, lineage and history."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from medops.audit import AuditFilter, list_events
from medops.audit.query import EventView
from medops.caller import Caller
from medops.errors import NotFound
from medops.features.store import AppliedView, list_applied, view_node
from medops.identity import Role
from medops.platform import Platform
from medops.store.lineage import Edge, walk


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


class FeatureService:
    def __init__(self, platform: Platform) -> None:
        self.platform = platform

    def show(self, caller: Caller, view: str) -> FeatureViewDetail:
        """The whole history is read in the database (the view and its versions ``view@...``)."""
        self.platform.users.require_role(caller.user, "features.read", set(Role))
        versions = list_applied(self.platform, view)
        if not versions:
            raise NotFound(f"feature view {view!r} is not applied", code="feature_view_not_applied")
        history = list_events(self.platform.db, AuditFilter(entity_type="feature_view", entity_family=view), limit=None)
        edges = walk(self.platform.db, view_node(versions[0].name, versions[0].version), "both", depth=3)
        return FeatureViewDetail(versions, edges, history)
