"""The state of governed rows, hashed into every audit event that touches them.

An event says what changed, but a row edited in SQL afterwards (a role granted, a stage
set, a revocation undone, an approval inserted) leaves the trail as it was. So each event
on a governed entity also carries the SHA-256 of that entity's state right after the
change, read in the change's own transaction, and verification recomputes the state of
every governed row now: a row whose state matches no event's was changed outside medops.

A model is one unit (its versions, stages, aliases and approvals together), because one
promotion changes the stages of two versions. An alert's state (acknowledged, resolved) is
governed too: resolving one in SQL would hide it.

Nothing medops does may launder such an edit into the trail: a change first checks that the
entity is as its latest event left it (and refuses to build on it otherwise), an event that
changes nothing (a denial, a failed login) carries the state last recorded instead of reading
the row, and a role check refuses an actor whose own user record no event explains.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, or_, select
from sqlalchemy.orm import Session

from medops.audit.chain import canonical_json
from medops.store.schema import (
    Alert,
    ApiToken,
    Approval,
    AuditEvent,
    Evaluation,
    ExternalIdentity,
    GateResult,
    ModelAlias,
    ModelVersion,
    RegisteredModel,
    SigningKey,
    TrustedBundleKey,
    User,
    UserRole,
)

ABSENT = None  # the state of an entity that has no row (never made, or gone)
Keys = Collection[str] | None  # None: every row


def _sha(text: str | None) -> str | None:
    return None if text is None else hashlib.sha256(text.encode("utf-8")).hexdigest()


def _only(query: Any, column: Any, keys: Keys) -> Any:
    return query if keys is None else query.where(column.in_(list(keys)))


def _by_id(session: Session, columns: tuple[Any, ...], keys: Keys) -> dict[str, dict[str, Any]]:
    """Rows of ``columns`` (the first is the key) as documents by key, each column by its name."""
    return {
        row[0]: {c.key: v for c, v in zip(columns[1:], row[1:], strict=True)}
        for row in session.execute(_only(select(*columns), columns[0], keys))
    }


# Users and tokens are read by every credential and role check: their statements are built once and run on
# the session's connection, which costs a fraction of building one and passing it through the ORM session.
_USER_ROWS = select(User.id, User.username, User.full_name, User.active, User.password_hash, User.must_change_password)
_USER_ROWS_BY = _USER_ROWS.where(User.username.in_(bindparam("keys", expanding=True)))
_USER_ROLES = (
    select(UserRole.user_id, UserRole.role)
    .where(UserRole.user_id.in_(bindparam("ids", expanding=True)))
    .order_by(UserRole.role)
)
_USER_LINKS = (
    select(ExternalIdentity.user_id, ExternalIdentity.issuer, ExternalIdentity.subject)
    .where(ExternalIdentity.user_id.in_(bindparam("ids", expanding=True)))
    .order_by(ExternalIdentity.issuer)
)


def _run(session: Session, statement: Any, **params: Any) -> list[Any]:
    return list(session.connection().execute(statement, params).all())


def _users(session: Session, keys: Keys) -> dict[str, Any]:
    rows = _run(session, _USER_ROWS) if keys is None else _run(session, _USER_ROWS_BY, keys=list(keys))
    roles: dict[int, list[str]] = defaultdict(list)
    ids = [r[0] for r in rows]
    for user_id, role in _run(session, _USER_ROLES, ids=ids):
        roles[user_id].append(role)
    links: dict[int, list[str]] = defaultdict(list)
    for user_id, issuer, subject in _run(session, _USER_LINKS, ids=ids):
        links[user_id].append(f"{issuer} {subject}")
    return {
        name: {
            "full_name": full,
            "active": bool(active),
            "roles": roles[uid],
            "password": _sha(digest),  # a password set in SQL is a state change like any other
            "must_change_password": bool(must_change),
            # only when linked: the state of a user with no provider account hashes as it always did
            **({"sso": links[uid]} if links[uid] else {}),
        }
        for uid, name, full, active, digest, must_change in rows
    }


_TOKEN_ROWS = select(
    ApiToken.id,
    User.username,
    ApiToken.kind,
    ApiToken.name,
    ApiToken.secret_hash,
    ApiToken.expires_at,
    ApiToken.revoked_at,
).join(User, User.id == ApiToken.user_id)
_TOKEN_ROWS_BY = _TOKEN_ROWS.where(ApiToken.id.in_(bindparam("keys", expanding=True)))


def _tokens(session: Session, keys: Keys) -> dict[str, Any]:
    rows = _run(session, _TOKEN_ROWS) if keys is None else _run(session, _TOKEN_ROWS_BY, keys=list(keys))
    return {
        tid: {"user": user, "kind": kind, "name": name, "secret": secret, "expires_at": expires, "revoked_at": revoked}
        for tid, user, kind, name, secret, expires, revoked in rows
    }


def _models(session: Session, keys: Keys) -> dict[str, Any]:
    out: dict[str, Any] = {
        name: {"created_by": by, "versions": [], "aliases": {}, "approvals": []}
        for name, by in session.execute(
            _only(select(RegisteredModel.name, RegisteredModel.created_by), RegisteredModel.name, keys)
        )
    }
    names = list(out)
    for row in session.execute(
        select(
            ModelVersion.model,
            ModelVersion.version,
            ModelVersion.run_id,
            ModelVersion.artifact_sha256,
            ModelVersion.evaluation_id,
            ModelVersion.required_approvals,
            ModelVersion.stage,
            ModelVersion.origin,
        )
        .where(ModelVersion.model.in_(names))
        .order_by(ModelVersion.model, ModelVersion.version)
    ):
        model, version, run, sha, evaluation, required, stage, origin = row
        out[model]["versions"].append([version, run, sha, evaluation, required, stage, _sha(origin)])
    for model, alias, version in session.execute(
        select(ModelAlias.model, ModelAlias.alias, ModelAlias.version).where(ModelAlias.model.in_(names))
    ):
        out[model]["aliases"][alias] = version
    for approval in session.execute(
        select(
            Approval.model,
            Approval.id,
            Approval.version,
            Approval.role,
            Approval.username,
            Approval.decision,
            Approval.signature_id,
        )
        .where(Approval.model.in_(names))
        .order_by(Approval.id)
    ):
        out[approval[0]]["approvals"].append(list(approval[1:]))
    return out


def _evaluations(session: Session, keys: Keys) -> dict[str, Any]:
    columns = (
        Evaluation.id,
        Evaluation.run_id,
        Evaluation.passed,
        Evaluation.champion_run_id,
        Evaluation.policy_sha256,
        Evaluation.governing,
        Evaluation.project_sha256,
        Evaluation.document,
        Evaluation.report,
        Evaluation.created_by,
    )
    out = {
        key: {**doc, "passed": bool(doc["passed"]), "governing": bool(doc["governing"]), "gates": []}
        for key, doc in _by_id(session, columns, keys).items()
    }
    for evaluation, position, passed, value, threshold in session.execute(
        select(GateResult.evaluation_id, GateResult.position, GateResult.passed, GateResult.value, GateResult.threshold)
        .where(GateResult.evaluation_id.in_(list(out)))
        .order_by(GateResult.evaluation_id, GateResult.position)
    ):
        out[evaluation]["gates"].append([position, bool(passed), value, threshold])
    return out


def _bundle_keys(session: Session, keys: Keys) -> dict[str, Any]:
    rows = session.execute(
        _only(
            select(TrustedBundleKey.key_id, TrustedBundleKey.public_key, TrustedBundleKey.trusted_by),
            TrustedBundleKey.key_id,
            keys,
        )
    )
    return {kid: {"public_key": public, "trusted_by": by} for kid, public, by in rows}


def _signing_keys(session: Session, keys: Keys) -> dict[str, Any]:
    rows = session.execute(_only(select(SigningKey.key_id, SigningKey.public_key), SigningKey.key_id, keys))
    return {kid: {"public_key": public} for kid, public in rows}


def _alerts(session: Session, keys: Keys) -> dict[str, Any]:
    """What a user moves (acknowledged, resolved, by whom and why): the rest of an alert is fixed by triggers."""
    columns = (
        Alert.id,
        Alert.model,
        Alert.version,
        Alert.rule,
        Alert.state,
        Alert.acknowledged_by,
        Alert.acknowledged_reason,
        Alert.resolved_by,
        Alert.resolved_reason,
    )
    return _by_id(session, columns, keys)


@dataclass(frozen=True)
class Governed:
    """One kind of governed entity: how an event's entity id names its state, and how to read it."""

    entity_type: str
    read: Callable[[Session, Keys], dict[str, Any]]
    key: Callable[[str], str] = lambda entity_id: entity_id


GOVERNED: dict[str, Governed] = {
    g.entity_type: g
    for g in (
        Governed("user", _users),
        Governed("token", _tokens),
        # a model's events name it, a version (name:3) or an alias (name:champion); the state is the model's
        Governed("model", _models, key=lambda entity_id: entity_id.split(":", 1)[0]),
        Governed("evaluation", _evaluations),
        Governed("bundle_key", _bundle_keys),
        Governed("signing_key", _signing_keys),
        Governed("alert", _alerts),
    )
}


def digest(doc: Any) -> str:
    return hashlib.sha256(canonical_json(doc).encode("utf-8")).hexdigest()


def state_of(session: Session, entity_type: str, entity_id: str) -> str | None:
    """The state hash an event on this entity carries: None when the entity is not governed."""
    kind = GOVERNED.get(entity_type)
    if kind is None:
        return None
    key = kind.key(entity_id)
    return digest(kind.read(session, [key]).get(key, ABSENT))


def current_states(session: Session, entity_type: str) -> dict[str, str]:
    """Every governed row of one kind now, as state hashes by key."""
    kind = GOVERNED[entity_type]
    return {key: digest(doc) for key, doc in kind.read(session, None).items()}


def recorded_state(session: Session, entity_type: str, entity_id: str) -> tuple[int, str | None] | None:
    """(seq, state) of the latest event on the entity's state key; None when no event names it."""
    kind = GOVERNED[entity_type]
    key = kind.key(entity_id)
    if entity_type == "model":  # the model's events also name its versions and aliases: name:...
        same = or_(AuditEvent.entity_id == key, AuditEvent.entity_id.startswith(f"{key}:", autoescape=True))
        rows = _run(session, _LATEST.where(AuditEvent.entity_type == entity_type, same))
    else:
        rows = _run(session, _LATEST_OF, entity_type=entity_type, key=key)
    return None if not rows else (int(rows[0][0]), rows[0][1])


_LATEST = select(AuditEvent.seq, AuditEvent.state).order_by(AuditEvent.seq.desc()).limit(1)
_LATEST_OF = _LATEST.where(AuditEvent.entity_type == bindparam("entity_type"), AuditEvent.entity_id == bindparam("key"))


def unexplained(session: Session, entity_type: str, entity_id: str) -> str | None:
    """Why the entity's row is not as the trail left it (None when it is, or it is not governed)."""
    if entity_type not in GOVERNED:
        return None
    now = state_of(session, entity_type, entity_id)
    recorded = recorded_state(session, entity_type, entity_id)
    key = GOVERNED[entity_type].key(entity_id)
    if recorded is None:
        if now == digest(ABSENT):
            return None
        return f"{entity_type} {key!r} was written outside medops: no audit event made it"
    seq, state = recorded
    if state is None or state == now:  # None: last changed before state hashing, nothing to compare
        return None
    return f"{entity_type} {key!r} was changed outside medops after audit event {seq}"


def carried_state(session: Session, entity_type: str, entity_id: str) -> str | None:
    """The state an event that changes nothing carries: the one last recorded, never the row as it is."""
    if entity_type not in GOVERNED:
        return None
    recorded = recorded_state(session, entity_type, entity_id)
    return digest(ABSENT) if recorded is None else recorded[1]


def state_key(entity_type: str, entity_id: str) -> str | None:
    kind = GOVERNED.get(entity_type)
    return None if kind is None else kind.key(entity_id)


def governed_types() -> Iterable[str]:
    return GOVERNED.keys()
