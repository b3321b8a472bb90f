"""Serving as a caller meets it: who may call the prediction API, the models a server answers for,
and batch scoring of a file or a dataset by a registered model.

One rule, by role: a user holding ``predictor``, ``ml_engineer`` or ``admin`` may use every
model a server serves (predict, list, describe, and the metrics unless they are opened to a
scraper). A refusal is audited like every other (``model.predict.denied``). Batch scoring
needs the roles of ``medops.serving.batch.SCORE_ROLES``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medops.caller import Caller
from medops.identity.roles import Role
from medops.platform import Platform
from medops.serving.follow import Follower, FollowListener, ModelSlot
from medops.serving.models import ServedModel, load_specs
from medops.serving.rollout import Rollout, RolloutPlan, Routing
from medops.serving.scoring import score
from medops.serving.validation import FieldError, RowsInvalid

if TYPE_CHECKING:  # pandas, Arrow and the model libraries load with the scoring itself
    from medops.identity.admissions import Admissions
    from medops.registry.versions import VersionInfo
    from medops.serving.batch import ScoreInput, ScoreResult

PREDICT_ROLES = {Role.PREDICTOR, Role.ML_ENGINEER, Role.ADMIN}


@dataclass(frozen=True)
class Scored:
    answers: list[dict[str, Any]]  # what the caller gets, one per row
    inputs: list[Any]  # each row as scored: the features, looked up or sent
    entities: list[str | None]  # each row's entity as key=pseudonym, None when the row carried its features
    models: list[ServedModel]  # which model answered each row
    variants: list[str]  # champion, canary or shadow, per row


class ServingService:
    def __init__(self, platform: Platform) -> None:
        self.platform = platform

    def load(self, specs: list[str]) -> dict[str, ServedModel]:
        """Each spec's version or bundle file, verified (see medops.serving.models.load_specs)."""
        return load_specs(self.platform, specs)

    def follower(
        self, slots: dict[str, ModelSlot], *, interval: float, listener: FollowListener | None = None
    ) -> Follower:
        """The thread that keeps each followed slot on the version its spec names now (medops.serving.follow)."""
        return Follower(self.platform, slots, interval=interval, listener=listener)

    def plan_rollouts(
        self, served: list[str], shadows: list[str], canaries: list[str], percents: list[str]
    ) -> RolloutPlan:
        """The declared variants, checked before any bundle is read (medops.serving.rollout.plan)."""
        from medops.serving.models import is_bundle_file, parse_spec
        from medops.serving.rollout import plan

        names = [parse_spec(s).name for s in served if not is_bundle_file(s)]  # a bundle file has no variants
        return plan(names, shadows, canaries, percents)

    def rollouts(self, models: dict[str, ServedModel], plan: RolloutPlan) -> dict[str, Rollout]:
        """The declared shadow and canary of each served model, loaded verified; a canary must hold
        production's evidence (it answers patients), a shadow need not (it never answers)."""
        from medops.serving.follow import require_production_evidence
        from medops.serving.models import load_served, parse_spec

        out: dict[str, Rollout] = {}
        for name, model in models.items():
            canary, shadow = plan.canaries.get(name), plan.shadows.get(name)
            if canary is None and shadow is None:
                continue
            rollout = Rollout(ModelSlot.of(model))
            if canary is not None:
                loaded = load_served(self.platform, parse_spec(canary.spec))
                require_production_evidence(self.platform, loaded)
                rollout.canary = ModelSlot.of(loaded)
                rollout.canary.gated = True
                rollout.canary_percent = plan.percents[name]
            if shadow is not None:
                rollout.shadow = ModelSlot.of(load_served(self.platform, parse_spec(shadow.spec)))
            out[name] = rollout
        return out

    def authorize(self, caller: Caller) -> None:
        """PermissionDenied unless the caller may use the prediction API (see the module's rule)."""
        self.platform.users.require_role(caller.user, "model.predict", PREDICT_ROLES)

    @cached_property
    def admissions(self) -> Admissions:
        from medops.identity.admissions import Admissions

        def check(secret: str) -> tuple[Caller, datetime | None]:
            from medops.services.identity import IdentityService

            caller, until = IdentityService(self.platform).authenticate_until(secret)
            self.authorize(caller)
            return caller, until

        return Admissions(self.platform.db, check)

    def close(self) -> None:
        """Give back what serving holds: the connection admissions read the trail's newest id on."""
        if "admissions" in self.__dict__:
            self.admissions.close()

    def remembered(self, secret: str, epoch: int | None = None) -> Caller | None:
        """A remembered admission still valid (one read of the trail's newest id, unless the caller read it
        after the request arrived: ``epoch``), else None: ``admit`` it."""
        return self.admissions.remembered(secret, epoch)

    def epoch(self) -> int:
        """The audit trail's newest event id: what a remembered admission is valid for."""
        return self.admissions.epoch()

    def admit(self, secret: str) -> Caller:
        """The caller a bearer secret proves, allowed to predict; checked in full unless nothing audited has
        happened since it last was (medops.identity.admissions)."""
        return self.admissions.admit(secret)

    def predict(self, caller: Caller, routing: Routing, records: list[Any], *, explained: bool = False) -> Scored:
        """The answer for each record, explained if asked; the caller was authorized when the request came in.

        Rows the canary takes (medops.serving.rollout) are answered by it, the rest by the champion.
        A record naming its entity gets its model's features from the online store first
        (medops.serving.lookup). What the prediction log keeps comes back beside the answers: the rows
        as scored, and entities only as pseudonyms, never the id the caller sent.
        """
        from medops.serving.rollout import to_canary

        canary = to_canary(routing, records)
        if routing.canary is None or not any(canary):
            return self._score(routing.champion, records, explained, "champion")
        parts = [
            (routing.champion, "champion", [i for i, c in enumerate(canary) if not c]),
            (routing.canary, "canary", [i for i, c in enumerate(canary) if c]),
        ]
        answers: list[Any] = [None] * len(records)
        inputs: list[Any] = [None] * len(records)
        entities: list[str | None] = [None] * len(records)
        models: list[ServedModel] = [routing.champion] * len(records)
        variants = ["champion"] * len(records)
        errors: list[FieldError] = []
        for model, variant, rows in parts:
            if not rows:
                continue
            try:
                part = self._score(model, [records[i] for i in rows], explained, variant)
            except RowsInvalid as exc:  # numbered as the caller sent them, whichever variant checked them
                errors.extend(replace(e, row=rows[e.row]) for e in exc.errors)
                continue
            for n, i in enumerate(rows):
                answers[i], inputs[i], entities[i] = part.answers[n], part.inputs[n], part.entities[n]
                models[i], variants[i] = model, variant
        if errors:
            raise RowsInvalid(sorted(errors, key=lambda e: e.row))
        return Scored(answers, inputs, entities, models, variants)

    def shadow(self, caller: Caller, model: ServedModel, records: list[Any]) -> Scored:
        """The shadow's answers to the same rows: for the log only, never for the caller."""
        return self._score(model, records, False, "shadow")

    @staticmethod
    def _score(model: ServedModel, records: list[Any], explained: bool, variant: str) -> Scored:
        from medops.serving.lookup import with_online_features

        looked = with_online_features(model, records)
        answers = score(model, looked.records, explained=explained, looked_up=looked.flags)
        if variant != "champion":
            for answer in answers:
                answer["variant"] = variant
        n = len(answers)
        return Scored(answers, looked.records, looked.entities, [model] * n, [variant] * n)

    def database_reachable(self) -> bool:
        from sqlalchemy import text

        try:
            with self.platform.db.read() as session:
                session.execute(text("SELECT 1"))
        except Exception:  # readiness reports, it never raises: the probe only needs yes or no
            return False
        return True

    def online_store_reachable(self, models: dict[str, ServedModel]) -> bool | None:
        """Whether the online store answers, for the served models that read it (None when none does)."""
        lookups = [m.lookup for m in models.values() if m.lookup is not None]
        return all(lookup.reachable() for lookup in lookups) if lookups else None

    def resolve(self, ref: str) -> VersionInfo:
        """``NAME`` (its production version), ``NAME@ALIAS`` or ``NAME:VERSION``."""
        from medops.serving.models import resolve_ref

        return resolve_ref(self.platform, ref)

    def score_input(self, value: str) -> ScoreInput:
        """A Parquet or CSV file when ``value`` is one (or is named like one), else a dataset reference."""
        from medops.data.datasets import get
        from medops.serving.batch import PARQUET_SUFFIXES, ScoreInput, file_input

        path = Path(value).expanduser()
        if path.exists() or path.suffix.lower() in (*PARQUET_SUFFIXES, ".csv"):
            return file_input(path)
        info = get(self.platform.db, value)
        return ScoreInput(
            self.platform.artifacts.local_path(info.version), "parquet", info.node, dataset=info.ref, rows=info.rows
        )

    def score(
        self,
        caller: Caller,
        ref: str,
        source: ScoreInput,
        output: Path,
        *,
        keep: list[str] | tuple[str, ...] = (),
        chunk_rows: int | None = None,
        overwrite: bool = False,
        reason: str | None = None,
        on_chunk: Callable[[int], None] | None = None,
        executor: str | None = None,
    ) -> ScoreResult:
        """Score ``source`` with the verified bundle of ``ref`` into ``output`` (see medops.serving.batch);
        on ``executor`` (default: the workspace's setting)."""
        from medops.registry.predictor import load_model
        from medops.serving.batch import DEFAULT_CHUNK_ROWS, SCORE_ROLES
        from medops.serving.batch import score as score_batch

        info = self.resolve(ref)
        self.platform.users.require_role(caller.user, "predictions.score", SCORE_ROLES)  # before the bundle is read
        predictor = load_model(self.platform, (info.model, info.version))
        return score_batch(
            self.platform,
            predictor,
            info.artifact_sha256,
            source,
            output,
            actor=caller.user,
            keep=keep,
            chunk_rows=chunk_rows or DEFAULT_CHUNK_ROWS,
            overwrite=overwrite,
            reason=reason,
            on_chunk=on_chunk,
            executor=executor if executor is not None else self.platform.settings.executor,
        )
