"""The lineage graph: which source fed which dataset, and (later) features, runs, models.

Nodes are typed ids (``file:<sha256>``, ``dataset:<name>@<version>``); an edge says the
source node fed the destination. Edges are written in the same transaction as the record
they describe and its audit event, and, like the audit trail, never change.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from medops.clock import utc_now
from medops.store.database import Database
from medops.store.schema import LineageEdge


def file_node(sha256: str) -> str:
    return f"file:{sha256}"


def dataset_node(name: str, version: str) -> str:
    return f"dataset:{name}@{version}"


@dataclass(frozen=True)
class Edge:
    src: str
    dst: str
    relation: str
    attrs: dict[str, Any]
    created_at: datetime | None = None
    created_by: str = ""


def add_edges(session: Session, edges: Iterable[Edge], actor: str) -> int:
    """Record edges not recorded yet (inside the caller's transaction); return how many."""
    added = 0
    now = utc_now()
    for edge in edges:
        exists = session.execute(
            select(LineageEdge.id).where(
                LineageEdge.src == edge.src, LineageEdge.dst == edge.dst, LineageEdge.relation == edge.relation
            )
        ).first()
        if exists:
            continue
        session.add(
            LineageEdge(
                src=edge.src,
                dst=edge.dst,
                relation=edge.relation,
                attrs=json.dumps(edge.attrs, sort_keys=True) if edge.attrs else None,
                created_at=now,
                created_by=actor,
            )
        )
        added += 1
    session.flush()
    return added


def _edge(row: LineageEdge) -> Edge:
    return Edge(
        row.src, row.dst, row.relation, json.loads(row.attrs) if row.attrs else {}, row.created_at, row.created_by
    )


def walk(db: Database, node: str, direction: Literal["up", "down", "both"] = "both", depth: int = 50) -> list[Edge]:
    """Every edge reachable from ``node`` upstream, downstream or both, nearest first."""
    found: list[Edge] = []
    seen_edges: set[tuple[str, str, str]] = set()
    with db.read() as session:
        for step in ("up", "down"):
            if direction not in (step, "both"):
                continue
            queue: deque[tuple[str, int]] = deque([(node, 0)])
            visited = {node}
            while queue:
                current, level = queue.popleft()
                if level >= depth:
                    continue
                column = LineageEdge.dst if step == "up" else LineageEdge.src
                rows = session.execute(select(LineageEdge).where(column == current).order_by(LineageEdge.id)).scalars()
                for row in rows:
                    edge = _edge(row)
                    key = (edge.src, edge.dst, edge.relation)
                    if key not in seen_edges:
                        seen_edges.add(key)
                        found.append(edge)
                    nxt = edge.src if step == "up" else edge.dst
                    if nxt not in visited:
                        visited.add(nxt)
                        queue.append((nxt, level + 1))
    return found


def dataset_refs(edges: Iterable[Edge]) -> list[str]:
    """The ``NAME@VERSION`` of every dataset node on ``edges``, once each, in the order met."""
    refs: dict[str, None] = {}
    for edge in edges:
        for node in (edge.src, edge.dst):
            if node.startswith("dataset:"):
                refs.setdefault(node.removeprefix("dataset:"), None)
    return list(refs)


def nodes_matching(db: Database, prefix: str, limit: int = 20) -> list[str]:
    """Known node ids that start with ``prefix`` (to resolve a short id a user typed)."""
    with db.read() as session:
        rows = session.execute(
            select(LineageEdge.src, LineageEdge.dst).where(
                or_(
                    LineageEdge.src.startswith(prefix, autoescape=True),
                    LineageEdge.dst.startswith(prefix, autoescape=True),
                )
            )
        ).all()
    found = sorted({n for row in rows for n in row if n.startswith(prefix)})
    return found[:limit]
