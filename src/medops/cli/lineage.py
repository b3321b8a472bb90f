"""`medops lineage`: what fed an entity, and what it fed."""

from __future__ import annotations

from typing import Any

import typer
from rich.markup import escape
from rich.tree import Tree

from medops.cli import remote
from medops.cli.common import JsonOption, console, print_json

app = typer.Typer()  # its help line and options are set where it is registered (cli/main.py)


def short(node: str) -> str:
    kind, _, rest = node.partition(":")
    if kind in ("dataset", "featureview"):
        name, _, version = rest.partition("@")
        return f"{kind} {name}@{version[:12]}"
    if kind == "model":
        return f"model {rest}"
    if kind in ("run", "evaluation", "pipeline"):
        return f"{kind} {rest[:12]}"
    return f"{kind} {rest[:16]}…"


def _label(node: str, edge: dict[str, Any]) -> str:
    source = (edge["attrs"] or {}).get("source")
    extra = f"  [dim]{escape(str(source))}[/]" if source and not node.startswith("dataset:") else ""
    return f"{escape(short(node))}  [cyan]{escape(edge['relation'])}[/]{extra}"


@app.command(
    "show",
    epilog="Examples:  medops lineage show readmission_30d:1 --no-down   ·   medops lineage show encounters   ·   "
    "medops lineage show file:04347e9a --no-down",
)
def show(
    entity: str = typer.Argument(
        ...,
        help="Model version (NAME:VERSION), dataset (NAME or NAME@VERSION) or node id (file:SHA256, prefix allowed).",
    ),
    up: bool = typer.Option(True, "--up/--no-up", help="Walk upstream (what fed it)."),
    down: bool = typer.Option(True, "--down/--no-down", help="Walk downstream (what it fed)."),
    as_json: bool = JsonOption,
) -> None:
    """Walk the lineage graph upstream and downstream from an entity."""
    found = remote.read(
        f"/v1/lineage/{remote.segment(entity)}",
        lambda services, caller: services.lineage.show(caller, entity, up=up, down=down).to_json(),
        params={"up": up, "down": down},
    )
    node, upstream, downstream = found["node"], found["upstream"], found["downstream"]
    if as_json:
        print_json(found)
        return
    tree = Tree(f"[bold]{escape(short(node))}[/]")
    if up:
        branch = tree.add("upstream (fed it)")
        _grow(branch, node, upstream, "up")
    if down:
        branch = tree.add("downstream (it fed)")
        _grow(branch, node, downstream, "down")
    console.print(tree)


def _grow(
    branch: Tree, node: str, edges: list[dict[str, Any]], direction: str, seen: frozenset[str] = frozenset()
) -> None:
    near, far = ("dst", "src") if direction == "up" else ("src", "dst")
    nxt = [e for e in edges if e[near] == node]
    if not nxt and not seen:
        branch.add("[dim](nothing)[/]")
    for edge in nxt:
        other = edge[far]
        child = branch.add(_label(other, edge))
        if other not in seen:
            _grow(child, other, edges, direction, seen | {node})
