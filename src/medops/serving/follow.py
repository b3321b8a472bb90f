"""Following the registry while serving: each served name holds its model in a slot, and a thread
re-resolves every NAME and NAME@ALIAS spec, loads a version that moved in (verified, off the request
path) and swaps it in with one reference assignment. A NAME:VERSION spec is pinned: never followed.

A request reads ``slot.current`` once and keeps that model to its end, so a swap never changes a
model under a request, and no request waits for a load. A version that fails to load or verify is
not swapped in: the slot keeps the model it has, and the next check tries again.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, replace
from typing import Protocol

from medops.errors import MedopsError
from medops.platform import Platform
from medops.serving.models import ServedModel, ServeSpec, load_served, resolve

log = logging.getLogger(__name__)


@dataclass
class ModelSlot:
    """What one served name answers with now; ``current`` is only ever replaced whole."""

    spec: ServeSpec
    current: ServedModel
    gated: bool = False  # it answers patients beside production (a canary): a version must have production's evidence

    @classmethod
    def of(cls, model: ServedModel) -> ModelSlot:
        """The slot of a loaded model, following the spec it was loaded by (pinned to its version without one)."""
        return cls(model.spec or ServeSpec(model.name, version=model.version), model)

    @property
    def followed(self) -> bool:
        return self.spec.version is None


class FollowListener(Protocol):
    """Who hears what the follower did (the server's metrics)."""

    def swapped(self, old: ServedModel, new: ServedModel) -> None: ...

    def swap_failed(self, name: str, reason: str) -> None: ...

    def registry_checked(self) -> None: ...


class Follower:
    """A daemon thread checking the followed slots every ``interval`` seconds until ``stop``."""

    def __init__(
        self,
        platform: Platform,
        slots: dict[str, ModelSlot],
        *,
        interval: float,
        listener: FollowListener | None = None,
    ) -> None:
        self.platform = platform
        self.slots = slots
        self.interval = interval
        self.listener = listener
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing: dict[str, tuple[int | None, str]] = {}  # the last failure logged per name: logged once

    @property
    def active(self) -> bool:
        """Whether there is anything to follow: an interval, and a slot that is not pinned."""
        return self.interval > 0 and any(slot.followed for slot in self.slots.values())

    def start(self) -> bool:
        """Start the thread if there is anything to follow; True when it runs."""
        if not self.active or self._thread is not None:
            return self._thread is not None
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="medops-follow", daemon=True)
        self._thread.start()
        names = ", ".join(str(s.spec) for s in self.slots.values() if s.followed)
        log.info("following the registry every %gs for %s", self.interval, names)
        return True

    def stop(self, timeout: float = 30.0) -> None:
        """Stop after the check in progress (a load under way finishes first, within ``timeout``)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.check()
            except Exception:  # the thread outlives a pass that failed outside a load (a listener, say)
                log.exception("a registry check failed; the next one runs in %gs", self.interval)

    def check(self) -> list[str]:
        """One pass over the followed slots; returns the names swapped."""
        swapped = []
        for name, slot in self.slots.items():
            if not slot.followed or self._stop.is_set():
                continue
            if self._check(name, slot):
                swapped.append(name)
        if self.listener is not None:
            self.listener.registry_checked()
        return swapped

    def _check(self, name: str, slot: ModelSlot) -> bool:
        old = slot.current
        version: int | None = None
        try:
            version = resolve(self.platform, slot.spec)
            if version == old.version:
                self._failing.pop(name, None)
                return False
            # verified as at start (signature, every checksum) before it can answer anything
            new = replace(load_served(self.platform, ServeSpec(slot.spec.name, version=version)), spec=slot.spec)
            if slot.gated:
                require_production_evidence(self.platform, new)
        except Exception as exc:  # whatever went wrong, the model served stays: never a request failed for it
            self._failed(name, slot, version, exc)
            return False
        slot.current = new  # the swap: one reference; a request in flight keeps the model it read
        self._failing.pop(name, None)
        log.info(
            "%s: serving version %s (bundle %s) in place of version %s (bundle %s), the version %s names now",
            name,
            new.version,
            new.bundle_sha256,
            old.version,
            old.bundle_sha256,
            slot.spec,
        )
        if self.listener is not None:
            self.listener.swapped(old, new)
        return True

    def _failed(self, name: str, slot: ModelSlot, version: int | None, exc: Exception) -> None:
        # a medops error names no patient value (errors never do); anything else is logged by its type only
        reason = exc.code if isinstance(exc, MedopsError) else "internal_error"
        detail = str(exc) if isinstance(exc, MedopsError) else type(exc).__name__
        if self.listener is not None:
            self.listener.swap_failed(name, reason)
        if self._failing.get(name) == (version, reason):  # the same failure again: counted, not logged again
            return
        self._failing[name] = (version, reason)
        target = f"version {version}" if version is not None else str(slot.spec)
        log.error(
            "%s: %s can't be served (%s: %s); still serving version %s; trying again every %gs",
            name,
            target,
            reason,
            detail,
            slot.current.version,
            self.interval,
        )


def require_production_evidence(platform: Platform, model: ServedModel) -> None:
    """Refuse a version that could not enter production (failed or missing evaluation, approvals missing):
    a canary answers patients, so it is held to what production is."""
    from medops.errors import PermissionDenied
    from medops.registry.stages import production_evidence
    from medops.registry.versions import get

    blockers = production_evidence(platform, get(platform, model.name, model.version)).blockers
    if blockers:
        raise PermissionDenied(
            f"{model.name}:{model.version} can't answer patients as a canary: {'; '.join(blockers)}",
            code="canary_not_approved",
            hint="a canary needs what production needs: a passed governing evaluation and every approval",
        )
