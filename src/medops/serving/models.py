"""Which registered version a serving spec names, loaded and verified before it serves.

A spec is ``NAME``, ``NAME@ALIAS`` or ``NAME:VERSION`` (read from the artifact store), or the
path of a bundle file (``.medops``), which is served as it is: what a container does with the
bundle baked into its image. A bundle file must verify against the keys this workspace trusts
(its pinned key, and those its signed keyring holds) and be byte for byte the version the
registry holds under its name: the metadata store still names the stage and aliases it serves
under, and authorizes its callers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from medops.errors import IntegrityError, InvalidInput, NotFound
from medops.platform import Platform
from medops.registry.predictor import Predictor, load_model
from medops.registry.versions import VersionInfo, get
from medops.store.schema import ModelAlias, ModelVersion

BUNDLE_SUFFIX = ".medops"

if TYPE_CHECKING:
    from medops.serving.lookup import OnlineLookup
    from medops.serving.row_encoder import RowEncoder

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


def is_bundle_file(text: str) -> bool:
    """A spec naming a bundle file: a path (a model name never holds '/') or a name ending ``.medops``."""
    return "/" in text or text.strip().endswith(BUNDLE_SUFFIX)


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
    bundle_file: str | None = None  # the bundle file it was loaded from; None when read from the artifact store

    @cached_property
    def encoder(self) -> RowEncoder | None:
        """Clean rows straight to the model's matrix (medops.serving.row_encoder); None without compiled inference."""
        from medops.serving.row_encoder import row_encoder

        compiled = self.predictor.compiled
        return row_encoder(self.input_schema, compiled) if compiled is not None else None

    @property
    def worker_spec(self) -> str:
        """What loads this same model again (another server worker): its version, or its bundle file."""
        return self.bundle_file or f"{self.name}:{self.version}"

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


def load_specs(platform: Platform, specs: list[str]) -> dict[str, ServedModel]:
    """Each spec's version or bundle file, verified, by model name; a name served twice is refused
    (a request names only the model). Every spec is parsed before any bundle is read."""
    if not specs:
        raise InvalidInput("name at least one model to serve", hint="a model is NAME, NAME@ALIAS or NAME:VERSION")
    parsed = [Path(s).expanduser() if is_bundle_file(s) else parse_spec(s) for s in specs]
    _once([p.name for p in parsed if isinstance(p, ServeSpec)])
    loaded = [load_bundle_served(platform, p) if isinstance(p, Path) else load_served(platform, p) for p in parsed]
    _once([m.name for m in loaded])  # a bundle file's model is known once it is read
    return {m.name: m for m in loaded}


def _once(names: list[str]) -> None:
    if len(set(names)) != len(names):
        raise InvalidInput("a model is named twice", hint="serve each model once: NAME, NAME@ALIAS or NAME:VERSION")


def load_served(platform: Platform, spec: ServeSpec) -> ServedModel:
    """Resolve the spec and load its bundle, verified (signature, every checksum) before it serves."""
    version = resolve(platform, spec)
    info = get(platform, spec.name, version)
    return _served(platform, info, load_model(platform, (spec.name, version)), spec=spec)


def load_bundle_served(platform: Platform, path: Path) -> ServedModel:
    """A bundle file served as it is, once verified and found to be the registered version it names.

    Nothing is read from the artifact store. The file is verified with the workspace's trusted keys
    (an unsigned, tampered or foreign-signed bundle is refused), then its SHA-256 must be the one the
    registry recorded for its model and version: a signed bundle of another version is refused too.
    """
    from medops.data.sources import file_sha256

    if not path.is_file():
        raise InvalidInput(f"no bundle file {path}", hint="give the path of a .medops bundle file")
    predictor = load_model(platform, path)  # signature and every checksum, or refused
    meta = predictor.bundle.metadata
    info = get(platform, str(meta["model"]), int(meta["version"]))
    digest = file_sha256(path)
    if digest != info.artifact_sha256:
        raise IntegrityError(
            f"the bundle file is not the registered {info.ref}: its sha256 {digest[:12]} is not the "
            f"registry's {info.artifact_sha256[:12]}",
            code="bundle_not_registered",
        )
    return _served(platform, info, predictor, bundle_file=str(path))


def _served(
    platform: Platform,
    info: VersionInfo,
    predictor: Predictor,
    *,
    spec: ServeSpec | None = None,
    bundle_file: str | None = None,
) -> ServedModel:
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
        info.model,
        info.version,
        info.artifact_sha256,
        info.stage,
        list(info.aliases),
        predictor,
        schema,
        gates,
        spec=spec,
        lookup=lookup,
        entity_keys=keys,
        bundle_file=bundle_file,
    )
