"""`medops lineage`: what fed an entity, and what it fed."""

from __future__ import annotations

import typer
from rich.markup import escape
from rich.tree import Tree

from medops.cli.common import JsonOption, cli_caller, console, open_workspace, print_json
from medops.data import datasets
from medops.errors import InvalidInput, NotFound
from medops.store.database import Database
from medops.store.lineage import Edge, nodes_matching, walk

app = typer.Typer()  # its help line and options are set where it is registered (cli/main.py)
NODE_KINDS = ("file", "query", "dataset", "featureview", "run", "evaluation", "model", "predictions", "pipeline")


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
                f"no model version {entity} in the lineage graph", hint="see the versions: medops models list"
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
            hint="give a dataset (medops data list) or a model version NAME:VERSION (medops models list)",
        )
    raise InvalidInput(f"{entity!r} matches {len(matches)} nodes", hint="give more of it: " + ", ".join(matches[:3]))


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


def _label(node: str, edge: Edge) -> str:
    source = edge.attrs.get("source")
    extra = f"  [dim]{escape(str(source))}[/]" if source and not node.startswith("dataset:") else ""
    return f"{escape(short(node))}  [cyan]{escape(edge.relation)}[/]{extra}"


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
    with open_workspace() as ws:
        cli_caller(ws, writes=False)  # a read: it needs a login only where the workspace says so
        node = resolve_node(ws.db, entity)
        upstream = walk(ws.db, node, "up") if up else []
        downstream = walk(ws.db, node, "down") if down else []
    if as_json:
        doc = {
            "node": node,
            "upstream": [e.__dict__ | {"created_at": str(e.created_at)} for e in upstream],
            "downstream": [e.__dict__ | {"created_at": str(e.created_at)} for e in downstream],
        }
        print_json(doc)
        return
    tree = Tree(f"[bold]{escape(short(node))}[/]")
    if up:
        branch = tree.add("upstream (fed it)")
        _grow(branch, node, upstream, "up")
    if down:
        branch = tree.add("downstream (it fed)")
        _grow(branch, node, downstream, "down")
    console.print(tree)


def _grow(branch: Tree, node: str, edges: list[Edge], direction: str, seen: frozenset[str] = frozenset()) -> None:
    nxt = [e for e in edges if (e.dst if direction == "up" else e.src) == node]
    if not nxt and not seen:
        branch.add("[dim](nothing)[/]")
    for edge in nxt:
        other = edge.src if direction == "up" else edge.dst
        child = branch.add(_label(other, edge))
        if other not in seen:
            _grow(child, other, edges, direction, seen | {node})
