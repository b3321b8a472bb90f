"""An evidence document as one self-contained HTML page: inline style, no script, nothing fetched, so it
opens the same in a browser years later and prints as it shows."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import ChainableUndefined, Environment, FileSystemLoader

from medops.evaluation.report import interval, number, stylesheet, when

TEMPLATES = Path(__file__).parent / "templates"


@lru_cache(maxsize=1)
def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=ChainableUndefined,  # a part this evidence has not (a prediction's has no project) renders empty
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(num=number, ci=interval, when=when, top=_top)
    return env


def html(document: dict[str, Any]) -> str:
    return _environment().get_template("evidence.html.j2").render(doc=document, css=stylesheet())


def _top(contributions: dict[str, float] | None, n: int = 10) -> list[tuple[str, float]]:
    """The largest contributions by size, the way a reader asks "what drove this score"."""
    return sorted((contributions or {}).items(), key=lambda kv: -abs(kv[1]))[:n]
