"""The lineage graph as its readers meet it: from an entity a person names (a model version, a dataset,
a node id or a prefix of one), what fed it and what it fed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from medops.caller import Caller
from medops.data import datasets
from medops.errors import InvalidInput, NotFound
from medops.platform import Platform
from medops.store.database import Database
from medops.store.lineage import Edge, nodes_matching, walk

NODE_KINDS = ("file", "query", "dataset", "featureview", "run", "evaluation", "model", "predictions", "pipeline")


@dataclass(frozen=True)
class LineageView:
    node: str
    upstream: list[Edge]
    downstream: list[Edge]

    def to_json(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "upstream": [e.__dict__ | {"created_at": str(e.created_at)} for e in self.upstream],
            "downstream": [e.__dict__ | {"created_at": str(e.created_at)} for e in self.downstream],
        }


class LineageService:
    def __init__(self, platform: Platform) -> None:
        self.platform = platform

    def show(self, caller: Caller, entity: str, *, up: bool = True, down: bool = True) -> LineageView:
        db = self.platform.db
        node = resolve_node(db, entity)
        return LineageView(node, walk(db, node, "up") if up else [], walk(db, node, "down") if down else [])


def resolve_node(db: Database, entity: str) -> str:
    """A model version (NAME:VERSION), a dataset (NAME, NAME@VERSION), a typed node id, or a unique prefix of one."""
    if entity.startswith(("file:", "query:", "dataset:")) and len(entity) > 40:
        return entity
    name, sep, version = entity.partition(":")
    if sep and version.isdigit() and name not in NODE_KINDS:
        from medops.registry.versions import version_node

        node = version_node(name, int(version))
        if node not in nodes_matching(db, node):
            raise NotFound(
                f"no model version {entity} in the lineage graph", code="model_version_not_found", model=name
            )
        return node
    if not entity.startswith(("file:", "query:")):
        try:
            return datasets.get(db, entity).node
        except (NotFound, InvalidInput):
            pass
    matches = nodes_matching(db, entity)
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise NotFound(
            f"nothing in the lineage graph matches {entity!r}",
            hint="give a dataset's name, a model version NAME:VERSION, or a node id (file:SHA256, a prefix will do)",
        )
    raise InvalidInput(f"{entity!r} matches {len(matches)} nodes", hint="give more of it: " + ", ".join(matches[:3]))
