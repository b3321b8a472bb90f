"""Feature views: what a feature is, declared once, for training and for serving alike.

A view names an entity column (a pseudonymized patient or HCP id), the event-time column
of its source dataset, optionally the column saying when a row became known (``created``,
for the backfill guard), a TTL, and its features. A feature is one of:

- a latest value: a DuckDB SQL expression over the source row (or a Python function over
  the source frame); at a label time it takes the row with the latest event time at or
  before that time, within the TTL;
- a windowed aggregate (count, sum, mean, min, max, coverage) of such an expression over
  the rows in ``window`` before the label time, optionally filtered;
- ``days_since_last``: days from the latest qualifying row to the label time.

On-demand features are SQL expressions or Python functions over the assembled row (the
view features plus request fields and ``event_timestamp``); the same code computes them
for a training set and for a live request.

A view's version is the SHA-256 of its canonical definition together with the version
of the source dataset it reads, so a change to either is a new version.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

import pandas as pd
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from medops.clock import duration
from medops.errors import InvalidInput

NAME = r"^[a-z][a-z0-9_]{0,63}$"
# The layout of offline feature tables. It is part of every view version, so a medops that
# writes tables differently builds new ones instead of reading old ones it can't use.
TABLE_FORMAT = 2
AGGREGATES = ("count", "sum", "mean", "min", "max", "coverage", "days_since_last")
WINDOWED = ("count", "sum", "mean", "min", "max", "coverage")
RESERVED = {"event_timestamp", "entity_id", "_row", "_t", "_c", "_ts", "_k"}

PythonFeature = Callable[[pd.DataFrame], "pd.Series[Any]"]


class FeatureViewError(InvalidInput):
    """A feature view (or on-demand feature) is not valid; the message names it and the field."""

    code = "feature_view_invalid"


def _check_duration(text: str) -> None:
    if duration(text) is None:
        raise ValueError(f"{text!r} is not a duration: write a number and a unit (30d, 12h, 2w)")


def parse_duration(text: str, where: str) -> timedelta:
    """``30d``, ``12h``, ``90m``, ``2w``: the spelling of TTLs and windows."""
    value = duration(text)
    if value is None:
        raise FeatureViewError(f"{where}: {text!r} is not a duration", hint="write a number and a unit: 30d, 12h, 2w")
    return value


def _is_expression(text: str) -> str:
    if ";" in text:
        raise ValueError("an expression can't contain ';'")
    if not text.strip():
        raise ValueError("an expression can't be empty")
    return text


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FeatureSpec(_Strict):
    """One feature of a view, as written in YAML."""

    expr: str | None = None
    agg: Literal["count", "sum", "mean", "min", "max", "coverage", "days_since_last"] | None = None
    window: str | None = None
    filter: str | None = None
    description: str = ""

    @field_validator("expr", "filter")
    @classmethod
    def _sql(cls, value: str | None) -> str | None:
        return None if value is None else _is_expression(value)

    @model_validator(mode="after")
    def _shape(self) -> FeatureSpec:
        if self.agg in WINDOWED and not self.window:
            raise ValueError(f"window: required for agg {self.agg} (for example 180d)")
        if self.agg is None and (self.window or self.filter):
            raise ValueError("window and filter need an agg (count, sum, mean, min, max, coverage, days_since_last)")
        if self.agg in ("sum", "mean", "min", "max", "coverage") and not self.expr:
            raise ValueError(f"expr: required for agg {self.agg}")
        if self.window:
            _check_duration(self.window)
        return self


class ViewSpec(_Strict):
    """One feature view, as written in YAML."""

    entity: str = Field(pattern=NAME)
    source: str
    timestamp: str | None = None
    created: str | None = None
    ttl: str | None = None
    filter: str | None = None
    owner: str | None = None
    description: str = ""
    tags: list[str] = []
    features: dict[str, FeatureSpec]

    @field_validator("filter")
    @classmethod
    def _sql(cls, value: str | None) -> str | None:
        return None if value is None else _is_expression(value)

    @field_validator("ttl")
    @classmethod
    def _ttl(cls, value: str | None) -> str | None:
        if value is not None:
            _check_duration(value)
        return value

    @model_validator(mode="after")
    def _shape(self) -> ViewSpec:
        if not self.features:
            raise ValueError("features: a view needs at least one feature")
        for name, feature in self.features.items():
            if not re.match(NAME, name) or name in RESERVED:
                raise ValueError(f"features.{name}: a feature name is lowercase letters, digits and '_'")
            if self.timestamp is None and feature.agg is not None:
                raise ValueError(f"features.{name}: agg {feature.agg} needs the view's timestamp column")
        if self.timestamp is None and self.created is not None:
            raise ValueError("created: needs a timestamp column too")
        return self


class OnDemandSpec(_Strict):
    """An on-demand feature: a SQL expression over the assembled row."""

    expr: str
    inputs: list[str] = []
    description: str = ""

    @field_validator("expr")
    @classmethod
    def _sql(cls, value: str) -> str:
        return _is_expression(value)


class FeaturesSpec(_Strict):
    """The ``features`` section of a project file (or a features file of its own)."""

    views: dict[str, ViewSpec] = {}
    on_demand: dict[str, OnDemandSpec] = {}

    @model_validator(mode="after")
    def _names(self) -> FeaturesSpec:
        for name in [*self.views, *self.on_demand]:
            if not re.match(NAME, name):
                raise ValueError(f"{name}: a view name is lowercase letters, digits and '_'")
        return self


@dataclass(frozen=True)
class Feature:
    """A feature of a view; ``fn`` (Python) and ``expr`` (SQL) are alternatives."""

    name: str
    expr: str | None = None
    agg: str | None = None
    window: timedelta | None = None
    filter: str | None = None
    description: str = ""
    fn: PythonFeature | None = None

    @property
    def input_sql(self) -> str:
        """The per-row value the view stores: the expression (1 for a plain count), NULL when filtered out."""
        if self.fn is not None:
            value = _python_column(self.name)
        elif self.expr is not None:
            value = f"({self.expr})"
        elif self.agg in ("count", "days_since_last"):
            value = "1"
        else:
            value = _quote(self.name)
        return f"CASE WHEN {self.filter} THEN {value} END" if self.filter else value

    def definition(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"name": self.name, "expr": self.expr, "agg": self.agg, "filter": self.filter}
        doc["window_seconds"] = int(self.window.total_seconds()) if self.window else None
        if self.fn is not None:
            doc["python"] = _function_source(self.fn)
        return doc


@dataclass(frozen=True)
class FeatureView:
    """A validated feature view; build one from YAML with ``views_from_spec`` or directly in Python."""

    name: str
    entity: str
    source: str
    features: tuple[Feature, ...]
    timestamp: str | None = None
    created: str | None = None
    ttl: timedelta | None = None
    filter: str | None = None
    owner: str | None = None
    description: str = ""
    tags: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not re.match(NAME, self.name):
            raise FeatureViewError(f"view {self.name!r}: a view name is lowercase letters, digits and '_'")
        seen: set[str] = set()
        for feature in self.features:
            if feature.name in seen:
                raise FeatureViewError(f"view {self.name}, features.{feature.name}: duplicate feature name")
            seen.add(feature.name)
            problem = _feature_problem(feature, self.timestamp is not None)
            if problem:
                raise FeatureViewError(f"view {self.name}, features.{feature.name}: {problem}")
        if self.created is not None and self.timestamp is None:
            raise FeatureViewError(f"view {self.name}, created: needs a timestamp column too")
        if not self.features:
            raise FeatureViewError(f"view {self.name}: no features")

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def latest(self) -> list[Feature]:
        return [f for f in self.features if f.agg is None]

    @property
    def aggregates(self) -> list[Feature]:
        return [f for f in self.features if f.agg is not None]

    def feature(self, name: str) -> Feature:
        for f in self.features:
            if f.name == name:
                return f
        raise FeatureViewError(
            f"view {self.name}: no feature {name!r}", hint=f"its features: {', '.join(self.feature_names)}"
        )

    def definition(self) -> dict[str, Any]:
        """Everything that decides the values, in canonical form (owner and descriptions excluded)."""
        return {
            "name": self.name,
            "entity": self.entity,
            "source": self.source.partition("@")[0],
            "timestamp": self.timestamp,
            "created": self.created,
            "ttl_seconds": int(self.ttl.total_seconds()) if self.ttl else None,
            "filter": self.filter,
            "features": [f.definition() for f in self.features],
        }

    def version(self, source_version: str) -> str:
        """Definition, owner, description and tags, with the source version: a change to any is a new version."""
        doc = {
            "definition": self.definition(),
            "metadata": self.metadata(),
            "source_version": source_version,
            "table_format": TABLE_FORMAT,
        }
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()

    def metadata(self) -> dict[str, Any]:
        return {"owner": self.owner, "description": self.description, "tags": list(self.tags)}


@dataclass(frozen=True)
class OnDemandFeature:
    """Computed from the assembled row; ``fn`` takes a frame and returns one value per row."""

    name: str
    expr: str | None = None
    fn: PythonFeature | None = None
    inputs: tuple[str, ...] = ()
    description: str = ""

    def __post_init__(self) -> None:
        if not re.match(NAME, self.name):
            raise FeatureViewError(f"on_demand.{self.name}: a feature name is lowercase letters, digits and '_'")
        if (self.expr is None) == (self.fn is None):
            raise FeatureViewError(f"on_demand.{self.name}: give expr or a Python function, not both")

    def definition(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "expr": self.expr,
            "python": _function_source(self.fn) if self.fn else None,
            "inputs": list(self.inputs),
        }


@dataclass
class FeatureSet:
    """The views and on-demand features of a project."""

    views: dict[str, FeatureView] = field(default_factory=dict)
    on_demand: dict[str, OnDemandFeature] = field(default_factory=dict)

    def view(self, name: str) -> FeatureView:
        if name not in self.views:
            known = ", ".join(sorted(self.views)) or "none"
            raise FeatureViewError(f"no feature view {name!r}", hint=f"views: {known}")
        return self.views[name]

    def add(self, item: FeatureView | OnDemandFeature) -> None:
        if item.name in self.views or item.name in self.on_demand:
            raise FeatureViewError(f"{item.name}: defined twice")
        if isinstance(item, FeatureView):
            self.views[item.name] = item
        else:
            self.on_demand[item.name] = item


def _feature_problem(feature: Feature, timed: bool) -> str | None:
    """What is wrong with a feature built in Python (YAML features are checked by their schema)."""
    if not re.match(NAME, feature.name) or feature.name in RESERVED:
        return "a feature name is lowercase letters, digits and '_', and not a reserved name"
    if feature.expr is not None and feature.fn is not None:
        return "give expr or a Python function, not both"
    if feature.agg is None:
        return "window and filter need an agg" if (feature.window or feature.filter) else None
    if feature.agg not in AGGREGATES:
        return f"unknown agg {feature.agg!r}: use one of {', '.join(AGGREGATES)}"
    if not timed:
        return f"agg {feature.agg} needs the view's timestamp column"
    if feature.agg in WINDOWED and (feature.window is None or feature.window <= timedelta(0)):
        return f"window: required for agg {feature.agg} (a positive duration)"
    if feature.agg in ("sum", "mean", "min", "max", "coverage") and feature.expr is None and feature.fn is None:
        return f"expr: required for agg {feature.agg}"
    return None


def views_from_spec(spec: FeaturesSpec) -> FeatureSet:
    """Turn the validated YAML section into view objects."""
    out = FeatureSet()
    for name, view in spec.views.items():
        features = tuple(
            Feature(
                name=fname,
                expr=f.expr,
                agg=f.agg,
                window=parse_duration(f.window, f"view {name}, features.{fname}.window") if f.window else None,
                filter=f.filter,
                description=f.description,
            )
            for fname, f in view.features.items()
        )
        out.add(
            FeatureView(
                name=name,
                entity=view.entity,
                source=view.source,
                features=features,
                timestamp=view.timestamp,
                created=view.created,
                ttl=parse_duration(view.ttl, f"view {name}, ttl") if view.ttl else None,
                filter=view.filter,
                owner=view.owner,
                description=view.description,
                tags=tuple(view.tags),
            )
        )
    for name, od in spec.on_demand.items():
        out.add(OnDemandFeature(name=name, expr=od.expr, inputs=tuple(od.inputs), description=od.description))
    return out


def run_python(fn: PythonFeature, frame: pd.DataFrame, where: str) -> pa.Array:
    """Call a Python feature on a frame: one value per row, as Arrow; its failure becomes a clear error."""
    try:
        values = fn(frame)
    except Exception as exc:  # noqa: BLE001 - user code; its error becomes a clear one
        raise FeatureViewError(f"{where}: the Python function failed: {type(exc).__name__}: {exc}") from None
    if len(values) != len(frame):
        raise FeatureViewError(
            f"{where}: the Python function returned {len(values)} values for {len(frame)} rows",
            hint="a Python feature maps each row to one value",
        )
    return pa.array(pd.Series(values).to_numpy(dtype=object, na_value=None), from_pandas=True)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _python_column(name: str) -> str:
    return _quote(f"_py_{name}")


def python_column(name: str) -> str:
    """The hidden column a Python feature's values travel in before SQL sees them."""
    return f"_py_{name}"


def _function_source(fn: Callable[..., Any]) -> str:
    """A Python feature is versioned by its code: a changed function is a new view version."""
    try:
        return inspect.getsource(fn)
    except (OSError, TypeError):
        return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"
