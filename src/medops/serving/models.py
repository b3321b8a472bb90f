"""Which registered version a serving spec names, loaded and verified before it serves."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from medops.errors import InvalidInput, NotFound
from medops.platform import Platform
from medops.registry.predictor import Predictor, load_model
from medops.registry.versions import VersionInfo, get
from medops.store.schema import ModelAlias, ModelVersion

if TYPE_CHECKING:
    from medops.serving.lookup import OnlineLookup

_SPEC = re.compile(r"^(?P<name>[a-z][a-z0-9_\-]{0,127})(?:(?P<sep>[@:])(?P<target>[A-Za-z0-9_\-]+))?$")


@dataclass(frozen=True)
class ServeSpec:
    """``NAME`` (the production version), ``NAME@ALIAS`` or ``NAME:VERSION``."""

    name: str
    alias: str | None = None
    version: int | None = None

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}:{self.version}"
        return f"{self.name}@{self.alias}" if self.alias else self.name


def parse_spec(text: str) -> ServeSpec:
    found = _SPEC.match(text.strip())
    if found is None:
        raise InvalidInput(
            f"{text!r} is not a model to serve", hint="give NAME, NAME@ALIAS or NAME:VERSION, for example readmission"
        )
    name, sep, target = found["name"], found["sep"], found["target"]
    if sep == ":":
        if not target.isdigit() or int(target) < 1:
            raise InvalidInput(f"{text!r}: the version is a positive number", hint=f"for example {name}:1")
        return ServeSpec(name, version=int(target))
    return ServeSpec(name, alias=target if sep == "@" else None)


def resolve(platform: Platform, spec: ServeSpec) -> int:
    """The version a spec names now: the given one, the alias's, or the production version."""
    if spec.version is not None:
        return get(platform, spec.name, spec.version).version
    with platform.db.read() as session:
        if spec.alias is not None:
            held = session.get(ModelAlias, (spec.name, spec.alias))
            if held is None:
                raise NotFound(
                    f"model {spec.name!r} has no alias {spec.alias!r}", code="alias_not_found", model=spec.name
                )
            return int(held.version)
        production = session.scalar(
            select(ModelVersion.version).where(ModelVersion.model == spec.name, ModelVersion.stage == "production")
        )
    if production is None:
        get(platform, spec.name)  # an unknown model says so
        raise NotFound(f"model {spec.name!r} has no production version", code="no_production_version", model=spec.name)
    return int(production)


def resolve_ref(platform: Platform, text: str) -> VersionInfo:
    """``NAME`` (its production version), ``NAME@ALIAS`` or ``NAME:VERSION``, as the version it names now."""
    spec = parse_spec(text)
    return get(platform, spec.name, resolve(platform, spec))


@dataclass
class ServedModel:
    """One model a server answers for: the verified predictor and what its responses name."""

    name: str
    version: int
    bundle_sha256: str
    stage: str
    aliases: list[str]
    predictor: Predictor
    input_schema: dict[str, Any] = field(default_factory=dict)
    gates: dict[str, Any] | None = None  # the bound evaluation's verdict and each gate's; None without one
    spec: ServeSpec | None = None  # what it was loaded by: a server following the registry resolves it again
    lookup: OnlineLookup | None = None  # how rows naming an entity get their features; None: not from views
    entity_keys: frozenset[str] = frozenset()  # the workspace's entity keys, refused clearly when lookup is None

    @property
    def threshold(self) -> float:
        return self.predictor.threshold

    @property
    def out_of_range(self) -> str:
        return self.predictor.out_of_range

    def describe(self) -> dict[str, Any]:
        """What GET /v1/models/{name} shows; ``example`` is a body the predict endpoint accepts as it is."""
        from medops.serving.example import example_row

        return {
            "name": self.name,
            "version": self.version,
            "stage": self.stage,
            "aliases": self.aliases,
            "bundle_sha256": self.bundle_sha256,
            "threshold": self.threshold,
            "out_of_range": self.out_of_range,
            "gates": self.gates,
            "input_schema": self.input_schema,
            "example": example_row(self.input_schema),
            "online_features": self.lookup.describe() if self.lookup is not None else None,
        }

    def summary(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "bundle_sha256": self.bundle_sha256, "stage": self.stage}


def load_served(platform: Platform, spec: ServeSpec) -> ServedModel:
    """Resolve the spec and load its bundle, verified (signature, every checksum) before it serves."""
    version = resolve(platform, spec)
    info = get(platform, spec.name, version)
    predictor = load_model(platform, (spec.name, version))
    gates = None
    if info.evaluation_id is not None:
        from medops.evaluation.records import get as evaluation

        found = evaluation(platform, info.evaluation_id)
        gates = {
            "evaluation": found.id,
            "passed": found.passed,
            "gates": [{"criterion": g["criterion"], "passed": g["passed"]} for g in found.gates],
        }
    from medops.serving.lookup import entity_keys, plan_lookup

    schema = dict(predictor.bundle.input_schema)
    names = [f["name"] for f in schema.get("features", [])]
    lookup = plan_lookup(platform, predictor.bundle, names)
    keys = frozenset() if lookup is not None else entity_keys(platform) - set(names)
    return ServedModel(
        spec.name,
        version,
        info.artifact_sha256,
        info.stage,
        list(info.aliases),
        predictor,
        schema,
        gates,
        spec,
        lookup,
        keys,
    )
