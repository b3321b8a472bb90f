"""Stages and aliases, moved only here: each move role-checked, rule-checked, recorded in the
transition history and the audit trail, in one transaction.

A version enters production only if the evaluation it was registered with was made under the
workspace's governing policy (as it is now) and passed every gate, and every approval that
policy requires is signed and still valid; the production version it replaces is archived in the
same step. Promotions of one model are serialized (a row lock on PostgreSQL, the single
writer on SQLite) and the database holds at most one production version per model, so two
concurrent promotions can't both win; approvals take the same lock, so a rejection is never
lost between the checks and the move. Rollback restores the version that was in production
before the current one, under the same rules.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from medops.audit.trail import NewEvent
from medops.clock import utc_now
from medops.errors import Conflict, InvalidInput, InvalidTransition
from medops.evaluation.governing import governing_policy, project_path
from medops.evaluation.records import get as get_evaluation
from medops.identity.roles import Role
from medops.platform import Platform
from medops.registry.approvals import missing
from medops.registry.versions import STAGES, VersionInfo, lock_model, read, require_model
from medops.store.schema import ModelAlias, ModelTransition, ModelVersion

PROMOTE_ROLES = {Role.ML_ENGINEER, Role.ADMIN}
_ALIAS = re.compile(r"^[a-z][a-z0-9_\-]{0,63}$")


@dataclass(frozen=True)
class Transition:
    name: str  # a stage or an alias
    version: int | None
    previous: int | None
    actor: str
    at: datetime
    reason: str | None

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)  # the at stays a datetime: printed as str(), as before


def promote(
    ws: Platform, name: str, version: int, stage: str, *, actor: str, reason: str | None = None
) -> list[Transition]:
    """Move a version to ``staging``, ``production`` or ``archived``; returns the moves made."""
    if stage not in STAGES[1:]:
        raise InvalidInput(f"stage {stage!r} is not known", hint="staging, production or archived")
    if not (reason and reason.strip()):
        raise InvalidInput(f"moving {name}:{version} to {stage} needs a reason")
    try:
        return _move(ws, name, version, stage, actor, reason)
    except InvalidTransition as exc:  # a refused move is audited like a refused permission
        ws.trail.record(NewEvent(actor, f"model.{stage}.refused", "model", f"{name}:{version}", reason=exc.message))
        raise


def _move(ws: Platform, name: str, version: int, stage: str, who: str, reason: str | None) -> list[Transition]:
    with ws.users.authorized(who, f"model.{stage}", "model", f"{name}:{version}", PROMOTE_ROLES, reason=reason) as ch:
        session = ch.session
        lock_model(session, name)
        current = read(session, name, version)  # read again under the lock
        if current.stage == stage:
            raise Conflict(f"{current.ref} is already in {stage}")
        if current.stage == "production" and stage == "staging":
            raise InvalidTransition(
                f"{current.ref} is in production: it leaves by a promotion of another version, an archive or a rollback"
            )
        if current.stage == "archived" and stage != "archived":
            raise InvalidTransition(
                f"{current.ref} is archived: it can't return to {stage}",
                hint="register the run again as a new version, or roll back to the previous production version",
            )
        moves = []
        if stage == "production":
            # Judged under the lock: an approval or rejection is serialized with this move, never lost between.
            evidence = production_evidence(ws, current)
            if evidence.blockers:
                raise InvalidTransition(f"{current.ref} can't enter production: {'; '.join(evidence.blockers)}")
            previous = _holder(session, name)
            if previous is not None:
                _set_stage(session, name, previous, "archived")
                moves.append(_record(session, name, "archived", previous, None, who, reason))
            _set_stage(session, name, version, "production")
            moves.append(_record(session, name, "production", version, previous, who, reason))
            ch.after = {"evidence": evidence.doc()}
        else:
            _set_stage(session, name, version, stage)
            moves.append(_record(session, name, stage, version, None, who, reason))
        ch.before = {"stage": current.stage}
        ch.after = {
            **(ch.after or {}),
            "moves": [{"stage": m.name, "version": m.version, "previous": m.previous} for m in moves],
        }
    return moves


@dataclass(frozen=True)
class Evidence:
    """What production is judged on: the evaluation on record, the governing policy, the approvals."""

    evaluation: str | None
    policy_sha256: str | None
    project_sha256: str | None
    blockers: list[str]

    def doc(self) -> dict[str, str | None]:
        return {
            "evaluation": self.evaluation,
            "policy_sha256": self.policy_sha256,
            "project_sha256": self.project_sha256,
        }


def production_evidence(ws: Platform, info: VersionInfo) -> Evidence:
    """The gates and the approvals: what stops this version entering production (no blockers: it may)."""
    policy = governing_policy(ws)
    problems = []
    evaluation_id = info.evaluation_id
    if policy is None:
        problems.append(
            f"the workspace has no validation policy ({project_path(ws.settings).name} with an evaluate section, "
            "where project_file in medops.toml points)"
        )
    if info.run_id is None:  # imported: the signed bundle carries its evaluation's outcome; a validator accepts it
        outcome = ((info.origin or {}).get("metadata") or {}).get("evaluation")
        evaluation_id = str(outcome.get("id")) if outcome else None
        if not outcome:
            problems.append("the imported bundle records no evaluation")
        elif not outcome.get("passed"):
            problems.append(f"its evaluation {str(outcome.get('id'))[:12]} failed (in the exporting workspace)")
    elif info.evaluation_id is None:
        problems.append(f"it was registered without an evaluation: evaluate run {info.run_id[:12]}, register it again")
    else:
        evaluation = get_evaluation(ws, info.evaluation_id)
        if not evaluation.governing:
            problems.append(
                f"its evaluation {evaluation.short} was made under policy {evaluation.policy_sha256[:12]}, not the "
                "workspace's governing policy: an exploratory evaluation can't gate production"
            )
        elif policy is not None and evaluation.policy_sha256 != policy.sha256:
            problems.append(
                f"the governing policy changed since its evaluation {evaluation.short} "
                f"({evaluation.policy_sha256[:12]} -> {policy.sha256[:12]}): evaluate the run again and register it"
            )
        if not evaluation.passed:
            failed = [g["criterion"] for g in evaluation.gates if not g["passed"]]
            problems.append(f"its evaluation {evaluation.short} failed: {', '.join(failed)}")
    problems += missing(ws, info)
    return Evidence(
        evaluation_id,
        policy.sha256 if policy is not None else None,
        policy.project_sha256 if policy is not None else None,
        problems,
    )


def rollback(ws: Platform, name: str, *, actor: str, reason: str | None = None) -> list[Transition]:
    """Restore the version that was in production before the current one, if it may still be there.

    The version restored meets the production rules as they are now: a version rejected or
    evaluated as failing since never comes back this way.
    """
    if not (reason and reason.strip()):
        raise InvalidInput(f"rolling back {name} needs a reason")
    try:
        return _rollback(ws, name, actor, reason)
    except InvalidTransition as exc:
        ws.trail.record(NewEvent(actor, "model.rollback.refused", "model", name, reason=exc.message))
        raise


def _rollback(ws: Platform, name: str, who: str, reason: str) -> list[Transition]:
    with ws.users.authorized(who, "model.rollback", "model", name, PROMOTE_ROLES, reason=reason) as ch:
        session = ch.session
        require_model(session, name)
        lock_model(session, name)
        current = _holder(session, name)
        if current is None:
            raise InvalidTransition(f"{name} has no production version to roll back")
        entries = session.execute(
            select(ModelTransition.version, ModelTransition.previous)
            .where(ModelTransition.model == name, ModelTransition.name == "production")
            .order_by(ModelTransition.id.desc())
        ).first()
        target = entries.previous if entries is not None else None
        if target is None:
            raise InvalidTransition(f"{name}:{current} was the first production version: there is none to restore")
        evidence = production_evidence(ws, read(session, name, target))
        if evidence.blockers:
            raise InvalidTransition(f"{name}:{target} can't return to production: {'; '.join(evidence.blockers)}")
        _set_stage(session, name, current, "archived")
        moves = [_record(session, name, "archived", current, None, who, reason)]
        _set_stage(session, name, target, "production")
        moves.append(_record(session, name, "production", target, current, who, reason))
        ch.entity_id = f"{name}:{target}"
        ch.after = {"production": target, "archived": current, "evidence": evidence.doc()}
    return moves


def set_alias(
    ws: Platform, name: str, alias: str, version: int | None, *, actor: str, reason: str | None = None
) -> Transition:
    """Point a free alias (champion, challenger...) at a version, or remove it (``version=None``)."""
    if not _ALIAS.match(alias) or alias in STAGES:
        raise InvalidInput(f"{alias!r} can't be an alias", hint="lowercase letters, digits, '_'; not a stage name")
    with ws.users.authorized(actor, "model.alias", "model", f"{name}:{alias}", PROMOTE_ROLES, reason=reason) as ch:
        session = ch.session
        lock_model(session, name)
        if version is not None:
            read(session, name, version)  # it exists
        held = session.get(ModelAlias, (name, alias))
        previous = held.version if held is not None else None
        if held is not None:
            session.delete(held)
            session.flush()
        if version is not None:
            session.add(ModelAlias(model=name, alias=alias, version=version))
        move = _record(session, name, alias, version, previous, actor, reason)
        ch.after = {"alias": alias, "version": version, "previous": previous}
    return move


def history(ws: Platform, name: str) -> list[Transition]:
    with ws.db.read() as session:
        require_model(session, name)
        rows = session.execute(
            select(ModelTransition).where(ModelTransition.model == name).order_by(ModelTransition.id)
        ).scalars()
        return [Transition(r.name, r.version, r.previous, r.actor, r.at, r.reason) for r in rows]


def holder_at(ws: Platform, name: str, stage_or_alias: str, when: datetime) -> Transition | None:
    """Which version held a stage (production) or alias at ``when``, and the move that put it there."""
    last = None
    for move in history(ws, name):
        if move.at > when:
            break
        if move.name == stage_or_alias:
            last = move
        elif stage_or_alias == "production" and move.name == "archived" and last and last.version == move.version:
            last = None  # archived without a successor (a plain archive of the production version)
    return last if last is not None and last.version is not None else None


def _holder(session: Session, name: str) -> int | None:
    return session.scalar(
        select(ModelVersion.version).where(ModelVersion.model == name, ModelVersion.stage == "production")
    )


def _set_stage(session: Session, name: str, version: int, stage: str) -> None:
    session.execute(
        update(ModelVersion).where(ModelVersion.model == name, ModelVersion.version == version).values(stage=stage)
    )
    session.flush()


def _record(
    session: Session, name: str, stage: str, version: int | None, previous: int | None, who: str, reason: str | None
) -> Transition:
    at = utc_now()
    session.add(
        ModelTransition(model=name, name=stage, version=version, previous=previous, actor=who, at=at, reason=reason)
    )
    return Transition(stage, version, previous, who, at, reason)
