"""The project file, ``medops.yaml``: one reviewed declaration of a use case.

It names the use case, its intended use and population, then one section per capability:
``sources``, ``contracts``, ``deidentify``, ``features`` (or a file of its own named by
``features_file``), ``train``, ``evaluate``, ``monitor``, ``schedules`` and ``score``. A pydantic schema checks it;
unknown keys are errors, and every error names the file, the line and the field path.
Paths in it are relative to the file, so a project moves with its folder.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from medops.data.contracts import ContractSpec, DataContractError, load_contract
from medops.data.deid import action_error
from medops.data.sources import FLATTENERS, CsvSource, FhirNdjsonSource, ParquetSource, Source, SqlSource
from medops.errors import ConfigError, InvalidInput
from medops.evaluation.spec import EvaluateSpec
from medops.features.views import FeatureSet, FeaturesSpec, FeatureViewError, views_from_spec
from medops.monitoring.spec import MonitorSpec
from medops.training.estimators import trainer_names

PROJECT_FILE = "medops.yaml"
_SLUG = r"^[a-z][a-z0-9_]{0,63}$"
MAX_ERRORS = 10
_FORMATS = {".csv": "csv", ".tsv": "csv", ".parquet": "parquet", ".ndjson": "fhir", ".jsonl": "fhir"}


class ProjectError(ConfigError):
    """The project file can't be read or is not valid; the message says where."""

    code = "project_invalid"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SourceSpec(_Strict):
    """A file (CSV, Parquet, FHIR NDJSON) or a SQL query; the format follows the extension."""

    path: str | None = None
    format: Literal["csv", "parquet", "fhir", "sql"] | None = None
    delimiter: str = Field(",", min_length=1, max_length=1)
    resource: str | None = None
    url: str | None = None
    query: str | None = None

    @model_validator(mode="after")
    def _complete(self) -> SourceSpec:
        if self.format is None:
            if self.url or self.query:
                self.format = "sql"
            elif self.path:
                self.format = _FORMATS.get(Path(self.path).suffix.lower())  # type: ignore[assignment]
                if self.format is None:
                    raise ValueError(f"can't tell the format of {self.path!r}: set format (csv, parquet, fhir, sql)")
        if self.format == "sql":
            if not (self.url and self.query):
                raise ValueError("a sql source needs url and query")
        elif not self.path:
            raise ValueError(f"a {self.format} source needs a path")
        if self.format == "fhir" and self.resource not in FLATTENERS:
            raise ValueError(f"a fhir source needs resource: one of {', '.join(FLATTENERS)}")
        return self


class NamesSpec(_Strict):
    """Which source holds the names that free-text redaction looks for, keyed by patient id."""

    source: str
    id: str = "patient_id"
    columns: list[str] = ["first_name", "last_name"]


class DeidTableSpec(_Strict):
    # Every column needs an action; those the contract types as numbers or booleans default to keep.
    columns: dict[str, str] = {}
    text_phi: Literal["redact", "fail"] = "redact"
    quasi_identifiers: list[str] = []  # columns (after de-identification) k-anonymity counts over

    @field_validator("columns")
    @classmethod
    def _actions(cls, value: dict[str, str]) -> dict[str, str]:
        for column, action in value.items():
            problem = action_error(action)
            if problem:
                raise ValueError(f"{column}: {problem}")
        return value


class DeidSpec(_Strict):
    reference_date: date = date(2026, 1, 1)
    names: NamesSpec | None = None
    tables: dict[str, DeidTableSpec]


class TrainingSetSpec(_Strict):
    """The point-in-time training set a training reads (built by `medops train` if missing)."""

    name: str = Field(pattern=_SLUG)
    labels: str
    timestamp: str
    features: list[str] = Field(min_length=1)
    # A label whose entity lost source rows to quarantine: left out (drop), or the build stops (refuse).
    quarantined: Literal["drop", "refuse"] = "drop"


class SplitSpec(_Strict):
    kind: Literal["grouped", "temporal", "period", "stratified"] = "grouped"
    group: str | None = "patient_id"
    time: str | None = None  # temporal: a timestamp column; period: a number such as the year
    cutoff: date | int | None = None  # temporal: a date; period: the first test period (2019)
    test_size: Annotated[float, Field(gt=0, lt=1)] = 0.2

    @field_validator("cutoff", mode="before")
    @classmethod
    def _year_is_a_number(cls, value: Any) -> Any:
        return int(value) if isinstance(value, str) and value.strip().isdigit() else value

    @model_validator(mode="after")
    def _cutoff_fits_the_kind(self) -> SplitSpec:
        if self.kind == "period" and isinstance(self.cutoff, date):
            raise ValueError("cutoff: a period split's cutoff is a number such as 2019, not a date")
        if self.kind == "temporal" and isinstance(self.cutoff, int):
            raise ValueError("cutoff: a temporal split's cutoff is a date; for a year use kind: period")
        return self


class ModelSpecYaml(_Strict):
    estimator: str
    params: dict[str, Any] = {}
    class_weight: Literal["balanced"] | None = None
    calibration: Literal["sigmoid", "isotonic"] | None = None
    resample: Literal["over", "under"] | None = None

    @field_validator("estimator", mode="before")
    @classmethod
    def _a_registered_estimator(cls, value: Any) -> Any:
        """One of the trainers declared in medops.training.estimators, said as a choice among them."""
        names = trainer_names()
        if value not in names:
            quoted = [repr(n) for n in names]
            expected = quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"
            raise PydanticCustomError("literal_error", "Input should be {expected}", {"expected": expected})
        return value


class TuneSpec(_Strict):
    """The search: parameter ranges and a budget (trials, seconds, or both)."""

    space: dict[str, dict[str, Any]] = Field(min_length=1)
    trials: int | None = Field(20, ge=1)
    timeout: float | None = Field(None, gt=0)


class TrainSpec(_Strict):
    """How the use case's model is trained: data, label, split, model, seed."""

    experiment: str = Field("default", pattern=_SLUG)
    training_set: TrainingSetSpec | None = None  # labels joined point-in-time with feature views
    dataset: str | None = None  # or one table holding the features and the outcome (static data)
    label: str
    features: list[str] | None = None
    drop_missing_labels: bool = False
    split: SplitSpec = SplitSpec()
    model: ModelSpecYaml
    seed: int = 0
    allow_leakage: list[Literal["entity_overlap", "future_feature", "perfect_predictor"]] = []
    tune: TuneSpec | None = None


class ScheduleSpec(_Strict):
    """When the pipeline runs by itself: a cron expression in a time zone, and which steps."""

    cron: str
    timezone: str = "UTC"
    steps: list[str] = []  # names or kinds, as `medops run STEP...`; none: the whole pipeline
    description: str = ""

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        from medops.pipelines.schedules import cron_error

        problem = cron_error(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        from medops.pipelines.schedules import zone_error

        problem = zone_error(value)
        if problem:
            raise ValueError(problem)
        return value


class ScoreSpec(_Strict):
    """A batch the pipeline scores with the model in production: a dataset of this workspace (its current
    version) or a Parquet or CSV file (relative to the project file), into a prediction file."""

    input: str = Field(min_length=1)
    output: str = Field(min_length=1)  # relative to the project file's folder
    model: str | None = None  # NAME, NAME@ALIAS or NAME:VERSION; none: the project's model in production
    keep: list[str] = []  # input columns copied beside the predictions (an id to join them back by)


class Project(_Strict):
    name: str = Field(pattern=_SLUG)
    intended_use: str = Field(min_length=10)
    population: str = Field(min_length=5)
    description: str = ""
    owner: str | None = None
    sources: dict[str, SourceSpec]
    contracts: dict[str, str] = {}
    deidentify: DeidSpec
    features: FeaturesSpec | None = None
    features_file: str | None = None
    train: TrainSpec | None = None
    evaluate: EvaluateSpec | None = None
    monitor: MonitorSpec | None = None
    schedules: dict[str, ScheduleSpec] = {}
    score: dict[str, ScoreSpec] = {}

    @model_validator(mode="after")
    def _consistent(self) -> Project:
        for name in self.score:
            if not re.match(_SLUG, name):
                raise ValueError(f"score.{name}: a batch's name is lowercase letters, digits and '_'")
        for name in self.sources:
            if not re.match(_SLUG, name):
                raise ValueError(f"sources.{name}: a source name is lowercase letters, digits and '_'")
            if name not in self.deidentify.tables:
                raise ValueError(
                    f"deidentify.tables.{name}: missing; every source needs a de-identification rule per column"
                )
        for section, tables in (
            ("contracts", list(self.contracts)),
            ("deidentify.tables", list(self.deidentify.tables)),
        ):
            for name in tables:
                if name not in self.sources:
                    raise ValueError(f"{section}.{name}: there is no source {name!r}")
        lookup = self.deidentify.names
        if lookup is not None and lookup.source not in self.sources:
            raise ValueError(f"deidentify.names.source: there is no source {lookup.source!r}")
        if self.features is not None:
            if self.features_file is not None:
                raise ValueError("features_file: give features here or in a features file, not both")
            _check_view_sources(self.features, set(self.sources), "features.")
        if self.train is not None:
            if (self.train.training_set is None) == (self.train.dataset is None):
                raise ValueError("train: give training_set (labels and feature views) or dataset (one flat table)")
            if self.train.dataset is not None and self.train.dataset not in self.sources:
                raise ValueError(f"train.dataset: there is no source {self.train.dataset!r}")
        for name in self.schedules:
            if not re.match(_SLUG, name):
                raise ValueError(f"schedules.{name}: a schedule name is lowercase letters, digits and '_'")
        groups = self.evaluate.subgroups if self.evaluate is not None else None
        for name, attr in (groups.attributes if groups is not None else {}).items():
            if attr.source is not None and attr.source not in self.sources:
                raise ValueError(f"evaluate.subgroups.attributes.{name}.source: there is no source {attr.source!r}")
        return self


def _check_view_sources(spec: FeaturesSpec, sources: set[str], prefix: str) -> None:
    for name, view in spec.views.items():
        dataset = view.source.partition("@")[0]
        if dataset not in sources:
            raise ValueError(f"{prefix}views.{name}.source: there is no source {dataset!r}")


@dataclass(frozen=True)
class LoadedProject:
    spec: Project
    path: Path
    sha256: str
    contracts: dict[str, ContractSpec]
    features: FeatureSet = field(default_factory=FeatureSet)
    root: yaml.Node | None = field(default=None, compare=False, repr=False)

    def where(self, loc: tuple[str, ...]) -> str:
        """``FILE, line N: a.b.c`` for a setting of the file: errors found at run time name their line too."""
        line = _line_of(self.root, loc)
        return f"{self.path}{f', line {line}' if line else ''}: {'.'.join(loc)}"

    @property
    def folder(self) -> Path:
        return self.path.parent

    def resolve(self, relative: str) -> Path:
        path = Path(relative).expanduser()
        return path if path.is_absolute() else self.folder / path

    def source(self, name: str) -> Source:
        if name not in self.spec.sources:
            known = ", ".join(self.spec.sources) or "none"
            raise InvalidInput(f"{self.path}: no source {name!r}", hint=f"sources: {known}")
        spec = self.spec.sources[name]
        if spec.format == "sql":
            assert spec.url and spec.query
            return SqlSource(spec.url, spec.query)
        assert spec.path
        path = self.resolve(spec.path)
        if spec.format == "csv":
            return CsvSource(
                path, delimiter="\t" if path.suffix == ".tsv" and spec.delimiter == "," else spec.delimiter
            )
        if spec.format == "parquet":
            return ParquetSource(path)
        assert spec.resource
        return FhirNdjsonSource(path, spec.resource)


def summary(loaded: LoadedProject) -> dict[str, Any]:
    """What a reviewer reads first of a project file: its purpose, and each source with its contract and
    de-identification rules (whether its file is there, relative to the file; it reads no data)."""
    spec = loaded.spec
    return {
        "name": spec.name,
        "path": str(loaded.path),
        "sha256": loaded.sha256,
        "intended_use": spec.intended_use,
        "population": spec.population,
        "sources": [
            {
                "name": name,
                "format": source.format,
                "path": source.path,
                "exists": None if not source.path else loaded.resolve(source.path).is_file(),
                "contract_version": loaded.contracts[name].version if name in loaded.contracts else None,
                "deid_rules": len(spec.deidentify.tables[name].columns),
            }
            for name, source in spec.sources.items()
        ],
    }


def _entry(node: yaml.Node | None, key: Any) -> tuple[yaml.Node, yaml.Node] | None:
    """The (key node, value node) of ``key`` in a YAML mapping, or None."""
    if not isinstance(node, yaml.MappingNode):
        return None
    return next(((k, v) for k, v in node.value if k.value == str(key)), None)


def _line_of(node: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """The line of the deepest YAML node on the error's path (1-based)."""
    line = node.start_mark.line + 1 if node is not None else None
    for key in loc:
        entry = _entry(node, key)
        if entry is not None:
            line = entry[0].start_mark.line + 1
            node = entry[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
            line = node.start_mark.line + 1
        else:
            break
    return line


def _node_at(node: yaml.Node | None, loc: tuple[Any, ...]) -> yaml.Node | None:
    for key in loc:
        if isinstance(node, yaml.SequenceNode) and str(key).isdigit():
            node = node.value[int(key)] if int(key) < len(node.value) else None
            continue
        entry = _entry(node, key)
        if entry is None:
            return None
        node = entry[1]
    return node


def _message(error: Any) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown field"
    if error["type"] == "missing":
        return "required field is missing"
    return str(error["msg"]).removeprefix("Value error, ")


def _locate(path: Path, root: yaml.Node | None, error: Any) -> str:
    """One error as ``FILE, line N: field.path: message``."""
    loc = tuple(error["loc"])
    message = _message(error)
    field = ".".join(str(p) for p in loc)
    dotted = re.match(r"^([\w.]+): (.*)$", message)
    if dotted:  # a rule that names its own field path: a cross-section rule, or a key of a mapping
        more = tuple(dotted.group(1).split("."))
        if not field or _node_at(root, loc + more) is not None:
            loc = loc + more
            field, message = ".".join(str(p) for p in loc), dotted.group(2)
    line = _line_of(root, loc)
    where = f", line {line}" if line else ""
    return f"{path}{where}: {field or '(top level)'}: {message}"


def load_project(path: Path) -> LoadedProject:
    """Read, validate and resolve a project file, with its contract files."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ProjectError(f"{path}: no project file", code="project_file_missing") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ProjectError(f"{path}: can't be read ({exc})") from None
    try:
        root = yaml.compose(text)
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise ProjectError(f"{path}{where}: {problem}") from None
    if not isinstance(raw, dict):
        raise ProjectError(f"{path}: a project file is a mapping (name, intended_use, population, sources, ...)")
    try:
        spec = Project.model_validate(raw)
    except ValidationError as exc:
        # Typos first: an unknown key often explains the "missing" error that follows it.
        errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
        lines = [_locate(path, root, e) for e in errors[:MAX_ERRORS]]
        more = len(errors) - MAX_ERRORS
        raise ProjectError("\n".join(lines) + (f"\n(and {more} more)" if more > 0 else "")) from None
    loaded = LoadedProject(spec, path.resolve(), hashlib.sha256(text.encode()).hexdigest(), {}, root=root)
    for table, relative in spec.contracts.items():
        try:
            loaded.contracts[table] = load_contract(loaded.resolve(relative))
        except DataContractError as exc:
            line = _line_of(root, ("contracts", table))
            raise ProjectError(f"{path}, line {line}: contracts.{table}: {exc.message}") from None
        if loaded.contracts[table].table != table:  # a contract attached to the wrong source checks the wrong data
            line = _line_of(root, ("contracts", table))
            raise ProjectError(
                f"{path}, line {line}: contracts.{table}: {relative} is the contract of table "
                f"{loaded.contracts[table].table!r}, not of source {table!r}",
                hint="attach each contract to its own source, or fix the contract's table:",
            )
    features = spec.features
    if spec.features_file is not None:
        features = _load_features_file(loaded.resolve(spec.features_file), set(spec.sources))
    if features is not None:
        try:
            built = views_from_spec(features)
            loaded.features.views.update(built.views)
            loaded.features.on_demand.update(built.on_demand)
        except FeatureViewError as exc:
            raise ProjectError(f"{path}: features: {exc.message}", hint=exc.hint) from None
    return loaded


def _read_yaml(path: Path, what: str) -> tuple[yaml.Node | None, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ProjectError(f"{path}: no {what}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ProjectError(f"{path}: can't be read ({exc})") from None
    try:
        return yaml.compose(text), yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise ProjectError(f"{path}{where}: {problem}") from None


def _load_features_file(path: Path, sources: set[str]) -> FeaturesSpec:
    """A features file of its own: the same schema as the project's ``features`` section."""
    root, raw = _read_yaml(path, "features file")
    if not isinstance(raw, dict):
        raise ProjectError(f"{path}: a features file is a mapping (views, on_demand)")
    try:
        spec = FeaturesSpec.model_validate(raw)
        _check_view_sources(spec, sources, "")
    except ValidationError as exc:
        lines = [_locate(path, root, e) for e in exc.errors()[:MAX_ERRORS]]
        raise ProjectError("\n".join(lines)) from None
    except ValueError as exc:
        raise ProjectError(_locate(path, root, {"loc": (), "msg": str(exc), "type": "value_error"})) from None
    return spec


def find_project(start: Path | None = None) -> Path:
    """``medops.yaml`` here or in a parent folder (like git finds its repository)."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / PROJECT_FILE).is_file():
            return folder / PROJECT_FILE
    raise ProjectError(
        f"no {PROJECT_FILE} in {here} or a parent folder",
        code="project_file_missing",
    )
