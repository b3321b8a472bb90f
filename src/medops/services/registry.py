"""The model registry as its users meet it: versions, signed decisions, stages, aliases, transfer.

Each operation takes the Caller; the domain (medops.registry) checks the caller's roles inside
the transaction of the change and audits refusals. Results are the registry's own types,
each with ``to_json()``; the composites below add what a screen shows together.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medops.caller import Caller
from medops.errors import InvalidInput
from medops.platform import Platform
from medops.registry import versions
from medops.registry.versions import VersionInfo, parse_ref

if TYPE_CHECKING:  # signing, stages and bundles load with the operations that need them: a listing stays light
    from medops.registry.approvals import Decision, Request
    from medops.registry.stages import Transition


def version_ref(ref: str) -> tuple[str, int]:
    """``NAME:VERSION``, refused when the version is missing."""
    name, version = parse_ref(ref)
    if version is None:
        raise InvalidInput(f"{ref!r} names no version", hint=f"give NAME:VERSION, for example {name}:1")
    return name, version


@dataclass(frozen=True)
class ModelSummary:
    name: str
    versions: int
    production: int | None
    created_by: str
    production_passed: bool | None = None  # whether the production version's evaluation passed

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class ModelDetail:
    """A model's versions, or one version with every decision on it."""

    versions: list[VersionInfo]
    decisions: list[Decision] | None  # None when no single version was asked for

    def to_json(self) -> dict[str, Any] | list[dict[str, Any]]:
        if self.decisions is None:
            return [v.to_json() for v in self.versions]
        return {**self.versions[0].to_json(), "approvals": [d.to_json() for d in self.decisions]}


@dataclass(frozen=True)
class ApprovalState:
    decisions: list[Decision]
    missing: list[str]  # what production still lacks, in words
    requests: list[Request] = field(default_factory=list)  # who asked for signatures, when, from whom

    def to_json(self) -> dict[str, Any]:
        return {
            "decisions": [d.to_json() for d in self.decisions],
            "missing": self.missing,
            "requests": [r.to_json() for r in self.requests],
        }


@dataclass(frozen=True)
class Holding:
    version: int | None  # None: the alias had been removed
    by: str
    at: datetime

    def to_json(self) -> dict[str, Any]:
        return {"version": self.version, "by": self.by, "at": self.at}


@dataclass(frozen=True)
class ModelHistory:
    moves: list[Transition]
    held: dict[str, Holding | None] | None  # with ``at``: which version held each stage and alias then

    def to_json(self) -> dict[str, Any]:
        held = None if self.held is None else {k: None if h is None else h.to_json() for k, h in self.held.items()}
        return {"moves": [m.to_json() for m in self.moves], "at": held}


class RegistryService:
    def __init__(self, platform: Platform) -> None:
        self.platform = platform

    # --- versions ----------------------------------------------------------------
    def register(
        self,
        caller: Caller,
        run: str,
        name: str,
        *,
        description: str = "",
        extra_approvals: list[str] | tuple[str, ...] = (),
        evaluation: str | None = None,
        reason: str | None = None,
        tags: dict[str, str] | None = None,
        profile: bool = True,
    ) -> VersionInfo:
        """A new version from a trained run, and (``profile``) its reference profile for monitoring."""
        info = versions.register(
            self.platform,
            run,
            name,
            description=description,
            extra_approvals=extra_approvals,
            evaluation=evaluation,
            reason=reason,
            tags=tags or {},
            actor=caller.user,
        )
        if profile:  # what monitoring compares windows with: built from the run, stored beside the version
            from medops.services.monitoring import MonitoringService

            MonitoringService(self.platform).profile_quietly(caller, info.model, info.version)
        return info

    def models(self, caller: Caller) -> list[ModelSummary]:
        return [ModelSummary(**m) for m in versions.models(self.platform)]

    def awaiting(self, caller: Caller, roles: Collection[str]) -> list[tuple[str, int, str]]:
        """(model, version, role) for each version not archived that needs a signature for one of ``roles``
        and has no valid one for it yet: what awaits a signer."""
        from medops.registry import approvals

        return approvals.awaiting(self.platform, roles)

    def show(self, caller: Caller, ref: str) -> ModelDetail:
        from medops.registry import approvals

        name, version = parse_ref(ref)
        if version is None:
            return ModelDetail(versions.versions(self.platform, name), None)
        info = versions.get(self.platform, name, version)
        return ModelDetail([info], approvals.decisions(self.platform, (name, version)))

    # --- signed decisions ----------------------------------------------------------
    def approve(self, caller: Caller, ref: str, password: str, role: str) -> Decision:
        from medops.registry import approvals

        return approvals.approve(self.platform, version_ref(ref), caller.user, password, role)

    def reject(self, caller: Caller, ref: str, password: str, role: str, reason: str) -> Decision:
        from medops.registry import approvals

        return approvals.reject(self.platform, version_ref(ref), caller.user, password, role, reason)

    def accept_evaluation(self, caller: Caller, ref: str, password: str, reason: str) -> Decision:
        from medops.registry import approvals

        return approvals.accept_evaluation(self.platform, version_ref(ref), caller.user, password, reason)

    def approvals(self, caller: Caller, ref: str) -> ApprovalState:
        from medops.registry import approvals

        name, version = version_ref(ref)
        decided = approvals.decisions(self.platform, (name, version))
        lacking = approvals.missing(self.platform, versions.get(self.platform, name, version))
        return ApprovalState(decided, lacking, approvals.requests(self.platform, (name, version)))

    def request_approvals(self, caller: Caller, ref: str, *, reason: str | None = None) -> Request:
        """Ask the roles the version still lacks to sign (audited; the pipeline does it when it registers)."""
        from medops.registry import approvals

        return approvals.request(self.platform, version_ref(ref), actor=caller.user, reason=reason)

    # --- stages and aliases --------------------------------------------------------
    def promote(self, caller: Caller, ref: str, stage: str, *, reason: str | None = None) -> list[Transition]:
        from medops.registry import stages

        name, version = version_ref(ref)
        return stages.promote(self.platform, name, version, stage, reason=reason, actor=caller.user)

    def rollback(self, caller: Caller, name: str, *, reason: str | None = None) -> list[Transition]:
        from medops.registry import stages

        return stages.rollback(self.platform, parse_ref(name)[0], reason=reason, actor=caller.user)

    def set_alias(
        self, caller: Caller, ref: str, alias: str, *, remove: bool = False, reason: str | None = None
    ) -> Transition:
        from medops.registry import stages

        name, version = parse_ref(ref) if remove else version_ref(ref)
        return stages.set_alias(
            self.platform, name, alias, None if remove else version, reason=reason, actor=caller.user
        )

    def history(self, caller: Caller, name: str, *, at: datetime | None = None) -> ModelHistory:
        from medops.registry import stages

        moves = stages.history(self.platform, name)
        if at is None:
            return ModelHistory(moves, None)
        when = at if at.tzinfo else at.replace(tzinfo=UTC)
        held: dict[str, Holding | None] = {}
        for slot in sorted({m.name for m in moves if m.name != "archived"}):
            move = stages.holder_at(self.platform, name, slot, when)
            held[slot] = None if move is None else Holding(move.version, move.actor, move.at)
        return ModelHistory(moves, held)

    # --- between workspaces --------------------------------------------------------
    def export(self, caller: Caller, ref: str, path: Path) -> VersionInfo:
        from medops.registry import transfer

        return transfer.export(self.platform, ref, path, actor=caller.user)

    def import_bundle(
        self, caller: Caller, path: Path, *, name: str | None = None, extra_approvals: list[str] | tuple[str, ...] = ()
    ) -> VersionInfo:
        from medops.registry import transfer

        return transfer.import_bundle(
            self.platform, path, name=name, extra_approvals=extra_approvals, actor=caller.user
        )

    def public_key(self, caller: Caller) -> str:
        from medops.registry import transfer

        return transfer.public_key(self.platform)

    def trust_key(self, caller: Caller, public: str, *, note: str) -> str:
        from medops.registry import transfer

        return transfer.trust_key(self.platform, public, note=note, actor=caller.user)

    def distrust_key(self, caller: Caller, kid: str, *, reason: str) -> None:
        from medops.registry import transfer

        transfer.distrust_key(self.platform, kid, reason=reason, actor=caller.user)

    def trusted_keys(self, caller: Caller) -> list[dict[str, str]]:
        """The other workspaces' keys this one accepts bundles from, as its signed keyring holds them."""
        from medops.registry import keyring

        return [{"key_id": kid, **entry} for kid, entry in sorted(keyring.load(self.platform).keys.items())]
