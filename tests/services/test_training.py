"""The training service's answers for a run logged from elsewhere (the platform API's client)."""

from __future__ import annotations

from medops.caller import Caller
from medops.services import Services
from medops.training.environment import GitState
from medops.training.tracking import Ending
from medops.workspace import Workspace

ADMIN = Caller("admin", channel="token")


def test_a_started_run_is_answered_as_it_is_stored(workspace: Workspace) -> None:
    """The start's answer is built from the row it wrote, not read back: it must equal what a read gives."""
    training = Services(workspace).training
    parent = training.start_run(ADMIN, "remote", "parent", environment="lock", host="h")
    made = training.start_run(ADMIN, "remote", None, seed=3, parent=parent.info.id, environment="lock", host="h")
    stored = training.show(ADMIN, made.info.id[:8]).info  # found by a prefix, as the CLI lets one type it
    assert made.info == stored
    assert training.show(ADMIN, made.info.id[:8].upper()).info == stored  # pasted in capitals: the same run
    assert made.info.parent_id == parent.info.id and made.info.seed == 3 and made.info.state == "running"

    ending = Ending.of("finished", None, GitState(None, None), ({"C": "0.5"}, {}, []))
    ended = training.end_run(ADMIN, made.info.id, ending)
    shown = training.show(ADMIN, made.info.id).info
    assert ended.info.state == shown.state == "finished" and shown.params == {"C": "0.5"}
    assert ended.to_json() == type(ended)(shown).to_json()  # the summary reads what it shows, not the params
