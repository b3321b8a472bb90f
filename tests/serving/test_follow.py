"""The registry follower without HTTP: what it checks, what a failed check leaves in place, and
when it runs at all (the swap under load is tested over HTTP in tests/server/test_follow.py)."""

from __future__ import annotations

import logging
import time

import pytest

from medops.registry import approvals, stages, versions
from medops.serving.follow import Follower, ModelSlot
from medops.serving.models import ServedModel, load_served, parse_spec
from medops.workspace import Workspace
from tests.factories import PASSWORD


class Heard:
    """A listener that keeps what the follower told it."""

    def __init__(self) -> None:
        self.swaps: list[tuple[int, int]] = []
        self.failures: list[tuple[str, str]] = []
        self.checks = 0

    def swapped(self, old: ServedModel, new: ServedModel) -> None:
        self.swaps.append((old.version, new.version))

    def swap_failed(self, name: str, reason: str) -> None:
        self.failures.append((name, reason))

    def registry_checked(self) -> None:
        self.checks += 1


def _slot(ws: Workspace, spec: str) -> ModelSlot:
    return ModelSlot.of(load_served(ws, parse_spec(spec)))


def _approved(ws: Workspace, run: str) -> int:
    version = versions.register(ws, run, "readmission", actor="alice").version
    approvals.approve(ws, ("readmission", version), "carol", PASSWORD, "clinical_reviewer")
    approvals.approve(ws, ("readmission", version), "victor", PASSWORD, "validator")
    return version


def test_a_check_swaps_a_moved_version_and_a_failed_one_keeps_the_model_served(
    registry: tuple[Workspace, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="medops.serving.follow")
    ws, run = registry
    _approved(ws, run)
    stages.promote(ws, "readmission", 1, "production", actor="ming", reason="go live")
    stages.set_alias(ws, "readmission", "champion", 1, actor="ming", reason="live")
    slots = {"readmission": _slot(ws, "readmission@champion")}
    heard = Heard()
    follower = Follower(ws, slots, interval=60, listener=heard)
    served = slots["readmission"].current

    assert follower.check() == [] and slots["readmission"].current is served  # nothing moved: the same object
    stages.set_alias(ws, "readmission", "champion", None, actor="ming", reason="withdrawn")
    assert follower.check() == [] and follower.check() == []
    assert slots["readmission"].current is served  # no alias to follow: the version served stays
    assert heard.failures == [("readmission", "alias_not_found")] * 2
    refusals = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert refusals == [
        "readmission: readmission@champion can't be served (alias_not_found: model 'readmission' has no alias "
        "'champion'); still serving version 1; trying again every 60s"
    ]  # logged once, counted twice

    v2 = _approved(ws, run)
    stages.set_alias(ws, "readmission", "champion", v2, actor="ming", reason="next")
    assert follower.check() == ["readmission"]
    new = slots["readmission"].current
    assert (new.version, new.spec, heard.swaps) == (v2, parse_spec("readmission@champion"), [(1, v2)])
    assert new.bundle_sha256 == versions.get(ws, "readmission", v2).artifact_sha256
    assert heard.checks == 4


def test_the_thread_runs_only_when_something_is_followed(registry: tuple[Workspace, str]) -> None:
    ws, run = registry
    _approved(ws, run)
    stages.promote(ws, "readmission", 1, "production", actor="ming", reason="go live")
    pinned = {"readmission": _slot(ws, "readmission:1")}
    assert not pinned["readmission"].followed
    assert Follower(ws, pinned, interval=0.01).start() is False  # pinned: nothing to follow
    followed = {"readmission": _slot(ws, "readmission")}
    assert Follower(ws, followed, interval=0).start() is False  # an interval of 0 turns following off
    heard = Heard()
    follower = Follower(ws, followed, interval=0.01, listener=heard)
    assert follower.start() is True
    try:
        v2 = _approved(ws, run)
        stages.promote(ws, "readmission", v2, "production", actor="ming", reason="better")
        for _ in range(3000):  # a bounded wait for the thread's check
            if heard.swaps:
                break
            time.sleep(0.02)
    finally:
        follower.stop()
    assert heard.swaps == [(1, v2)] and followed["readmission"].current.version == v2
    checks = heard.checks
    time.sleep(0.05)
    assert heard.checks == checks  # stopped: no check after stop returned
