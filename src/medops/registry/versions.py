"""Registered models and their versions: what a version is, how one is registered, how they are read.

A version links its training run, the SHA-256 of its signed bundle, the evaluation it is
registered with (the run's latest one under the workspace's governing policy, unless named),
and the approvals that policy requires. It is never changed afterwards, except its stage,
which only ``medops.registry.stages`` moves. Production is judged on that evaluation alone: a
later evaluation of the run, under whatever policy, never changes what the version is.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from medops.clock import utc_now
from medops.errors import InvalidInput, NotFound
from medops.identity.roles import Role
from medops.platform import Platform
from medops.store.database import dialect_insert
from medops.store.lineage import Edge, add_edges
from medops.store.schema import ModelAlias, ModelVersion, RegisteredModel

if TYPE_CHECKING:  # what registering needs loads when a version is registered, not for a listing
    from medops.evaluation.records import EvaluationInfo

REGISTER_ROLES = {Role.DATA_SCIENTIST, Role.ML_ENGINEER, Role.ADMIN}
STAGES = ("none", "staging", "production", "archived")
DEFAULT_APPROVALS = ("clinical_reviewer", "validator")
_NAME = re.compile(r"^[a-z][a-z0-9_\-]{0,127}$")


@dataclass(frozen=True)
class VersionInfo:
    model: str
    version: int
    run_id: str | None  # None: imported from another workspace (see origin)
    artifact_sha256: str
    evaluation_id: str | None
    required_approvals: list[str]
    stage: str
    aliases: list[str]
    description: str
    created_by: str
    created_at: datetime
    origin: dict[str, Any] | None = None
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def ref(self) -> str:
        return f"{self.model}:{self.version}"

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "stage": self.stage,
            "aliases": self.aliases,
            "run": self.run_id,
            "artifact_sha256": self.artifact_sha256,
            "evaluation": self.evaluation_id,
            "required_approvals": self.required_approvals,
            "description": self.description,
            "tags": self.tags,
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat(),
        }

    def record(self) -> dict[str, Any]:
        """What an approval signs: the bundle and the evaluation on record; change either and it is void."""
        return {
            "model": self.model,
            "version": self.version,
            "bundle_sha256": self.artifact_sha256,
            "evaluation": self.evaluation_id,
        }


def version_node(model: str, version: int) -> str:
    return f"model:{model}:{version}"


def parse_ref(ref: str) -> tuple[str, int | None]:
    """``NAME`` or ``NAME:VERSION``."""
    name, sep, version = ref.strip().partition(":")
    if not _NAME.match(name):
        raise InvalidInput(f"{name!r} is not a model name", hint="lowercase letters, digits, '_' and '-'")
    if not sep:
        return name, None
    if not version.isdigit() or int(version) < 1:
        raise InvalidInput(f"{ref!r}: the version is a positive number", hint="for example readmission:3")
    return name, int(version)


def register(
    ws: Platform,
    run: str,
    name: str,
    *,
    actor: str,
    description: str = "",
    extra_approvals: list[str] | tuple[str, ...] = (),
    evaluation: str | None = None,
    reason: str | None = None,
    tags: dict[str, str] | None = None,
) -> VersionInfo:
    """A new version of ``name`` (created if new) from a finished training run that stored a model.

    The roles that must sign are the governing policy's; ``extra_approvals`` can only add to them.
    """
    from medops.registry import bundles
    from medops.registry.compiled import compile_pipeline, to_doc
    from medops.training import stored
    from medops.training.input_schema import InputSchema
    from medops.training.tracking import Tracker, run_node

    parse_ref(name)
    required_approvals = required_roles(ws, extra_approvals)
    info = Tracker(ws).get(run)
    if info.state != "finished" or "model_sha256" not in info.tags:
        raise InvalidInput(
            f"run {info.short} is {info.state} and {'stored a' if 'model_sha256' in info.tags else 'stored no'} model",
            code="run_not_trained",
        )
    evaluations = [bound_evaluation(ws, info.id, evaluation)] if evaluation else _default_evaluation(ws, info.id)
    tracker = Tracker(ws)
    schema = stored.input_schema(tracker, info)
    if schema is None:
        raise InvalidInput(f"run {info.short} stored no input schema", hint="train it again with this medops")
    evaluated = json.loads(ws.artifacts.read_bytes(evaluations[0].document)) if evaluations else None
    threshold = float(evaluated["threshold"]["value"]) if evaluated else 0.5
    serving = (evaluated or {}).get("serving")
    if serving:  # the ranges the validation judged the test rows by: serving accepts what validation accepted
        schema = InputSchema.from_doc(serving)
    recipe = stored.recipe(tracker, info)
    fitted = stored.model(tracker, info)  # the run's file, verified by its SHA-256, built from skops
    compiled = compile_pipeline(fitted.pipeline)
    native = compiled.native if compiled is not None else None  # LightGBM travels as its own text model
    model_bytes = None if native else bundles.pipeline_bytes(fitted)
    environment = ws.artifacts.read_bytes(info.env_digest).decode() if info.env_digest else ""
    now = utc_now()
    with ws.users.authorized(actor, "model.register", "model", name, REGISTER_ROLES, reason=reason) as ch:
        session = ch.session
        number = next_version(session, name, actor, now)
        bundle = bundles.build(
            ws.signing_key(),
            model=model_bytes,
            input_schema=bundles.input_schema_doc(
                schema, list(recipe["features"]), out_of_range=serving["out_of_range"] if serving else "reject"
            ),
            output_schema={"type": "probability", "classes": [0, 1], "positive": 1, "threshold": threshold},
            metadata={
                "model": name,
                "version": number,
                "run": info.id,
                "experiment": info.experiment,
                "trained_by": info.created_by,
                "model_sha256": info.tags["model_sha256"],
                "features": list(fitted.features),
                "classes": list(fitted.classes),
                "evaluation": {
                    "id": evaluations[0].id,
                    "passed": evaluations[0].passed,
                    "policy_sha256": evaluations[0].policy_sha256,
                    "governing": evaluations[0].governing,
                }
                if evaluations
                else None,
                "threshold": {"value": threshold, "rule": evaluated["threshold"]["rule"] if evaluated else "default"},
                "label": recipe.get("label"),
                "training_set": recipe.get("data"),
                "feature_views": recipe.get("feature_views", {}),
                "project_sha256": info.project_sha256,
                "required_approvals": list(required_approvals),
                "registered_by": actor,
            },
            environment=environment,
            inference=to_doc(compiled) if native and compiled is not None else None,
            native=(native.file, native.dumps(compiled.booster)) if native and compiled is not None else None,
        )
        digest = ws.artifacts.put(bundle)
        session.add(
            ModelVersion(
                model=name,
                version=number,
                run_id=info.id,
                artifact_sha256=digest,
                evaluation_id=evaluations[0].id if evaluations else None,
                required_approvals=json.dumps(list(required_approvals)),
                stage="none",
                description=description,
                tags=json.dumps(dict(sorted((tags or {}).items()))),
                created_by=actor,
                created_at=now,
            )
        )
        session.flush()
        add_edges(session, [Edge(run_node(info.id), version_node(name, number), "registered_as", {})], actor)
        ch.entity_id = f"{name}:{number}"
        ch.after = {
            "run": info.id,
            "bundle_sha256": digest,
            "model_sha256": info.tags["model_sha256"],
            "evaluation": evaluations[0].id if evaluations else None,
            "required_approvals": list(required_approvals),
        }
    return get(ws, name, number)


def required_roles(ws: Platform, extra: list[str] | tuple[str, ...] = ()) -> list[str]:
    """The governing policy's approval roles (the default pair without a policy), plus any extra ones."""
    from medops.evaluation.governing import governing_policy

    policy = governing_policy(ws)
    base = policy.approvals if policy is not None else list(DEFAULT_APPROVALS)
    roles = [r.value for r in Role]
    for role in extra:
        if role not in roles:
            raise InvalidInput(f"approval role {role!r} is not a role", hint=f"roles: {', '.join(roles)}")
    return base + [r for r in dict.fromkeys(extra) if r not in base]


def bound_evaluation(ws: Platform, run_id: str, ref: str) -> EvaluationInfo:
    from medops.evaluation.records import get as get_evaluation

    found = get_evaluation(ws, ref)
    if found.run_id != run_id:
        raise InvalidInput(f"evaluation {found.short} is of run {found.run_id[:12]}, not of run {run_id[:12]}")
    return found


def _default_evaluation(ws: Platform, run_id: str) -> list[EvaluationInfo]:
    """The run's newest evaluation under the governing policy as it is now, else its newest governing one,
    else its newest one (the last two can't gate; promotion says why)."""
    from medops.evaluation.governing import governing_policy
    from medops.evaluation.records import list_for

    made = list_for(ws, run_id, limit=200)
    policy = governing_policy(ws)
    current = [e for e in made if e.governing and policy is not None and e.policy_sha256 == policy.sha256]
    return current[:1] or [e for e in made if e.governing][:1] or made[:1]


def next_version(session: Session, name: str, who: str, now: datetime) -> int:
    """The model (created if new) locked for this transaction, and the number its next version takes."""
    session.execute(  # two first registrations at once: one creates the model, both add a version
        dialect_insert(session)(RegisteredModel)
        .values(name=name, description="", created_by=who, created_at=now)
        .on_conflict_do_nothing(index_elements=["name"])
    )
    lock_model(session, name)
    return (session.scalar(select(func.max(ModelVersion.version)).where(ModelVersion.model == name)) or 0) + 1


def lock_model(session: Session, name: str) -> None:
    """Serialize changes to one model: on PostgreSQL a row lock; SQLite writers are serialized already."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(RegisteredModel.name).where(RegisteredModel.name == name).with_for_update())


def get(ws: Platform, name: str, version: int | None = None) -> VersionInfo:
    """A version, or the newest one of the model."""
    with ws.db.read() as session:
        return read(session, name, version)


def require_model(session: Session, name: str) -> None:
    if session.get(RegisteredModel, name) is None:
        raise NotFound(f"no registered model {name!r}", code="model_not_found")


def read(session: Session, name: str, version: int | None = None) -> VersionInfo:
    require_model(session, name)
    query = select(ModelVersion).where(ModelVersion.model == name)
    query = query.where(ModelVersion.version == version) if version else query.order_by(ModelVersion.version.desc())
    row = session.execute(query.limit(1)).scalar_one_or_none()
    if row is None:
        raise NotFound(f"model {name!r} has no version {version}", code="model_version_not_found", model=name)
    aliases = session.execute(
        select(ModelAlias.alias).where(ModelAlias.model == name, ModelAlias.version == row.version)
    ).scalars()
    return _info(row, sorted(aliases))


def versions(ws: Platform, name: str) -> list[VersionInfo]:
    with ws.db.read() as session:
        require_model(session, name)
        rows = session.execute(
            select(ModelVersion).where(ModelVersion.model == name).order_by(ModelVersion.version)
        ).scalars()
        held: dict[int, list[str]] = {}
        for alias, version in session.execute(
            select(ModelAlias.alias, ModelAlias.version).where(ModelAlias.model == name)
        ):
            held.setdefault(version, []).append(alias)
        return [_info(r, sorted(held.get(r.version, []))) for r in rows]


def models(ws: Platform) -> list[dict[str, Any]]:
    """Every registered model with its version count, its production version and that version's evaluation
    (three queries, however many models: the dashboard's home page lists them all)."""
    from medops.store.schema import Evaluation

    with ws.db.read() as session:
        counts = dict(session.execute(select(ModelVersion.model, func.count()).group_by(ModelVersion.model)).all())
        production = {
            m: (v, e)
            for m, v, e in session.execute(
                select(ModelVersion.model, ModelVersion.version, ModelVersion.evaluation_id).where(
                    ModelVersion.stage == "production"
                )
            ).all()
        }
        evaluations = [e for _, e in production.values() if e]
        passed = dict(
            session.execute(select(Evaluation.id, Evaluation.passed).where(Evaluation.id.in_(evaluations))).all()
        )
        out = []
        for model in session.execute(select(RegisteredModel).order_by(RegisteredModel.name)).scalars():
            version, evaluation = production.get(model.name, (None, None))
            out.append(
                {
                    "name": model.name,
                    "versions": counts.get(model.name, 0),
                    "production": version,
                    "created_by": model.created_by,
                    "production_passed": passed.get(evaluation) if evaluation else None,
                }
            )
        return out


def _info(row: ModelVersion, aliases: list[str]) -> VersionInfo:
    return VersionInfo(
        row.model,
        row.version,
        row.run_id,
        row.artifact_sha256,
        row.evaluation_id,
        list(json.loads(row.required_approvals)),
        row.stage,
        aliases,
        row.description,
        row.created_by,
        row.created_at,
        json.loads(row.origin) if row.origin else None,
        json.loads(row.tags or "{}"),
    )
