"""Life in production through `medops server` (MEDOPS_SERVER_URL): the prediction log, monitoring
windows and alerts read the same, byte for byte, as from the workspace's database, tables and --json,
with their filters; an alert acknowledged and resolved over the server is so in the workspace; a
refusal (a role that may not, a missing reason, a filter that is not one) is the same both ways."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.cli.conftest import Both

pytestmark = pytest.mark.slow

FLAGS = pytest.mark.parametrize("as_json", [False, True], ids=["table", "json"])


def _listed(both: Both, user: str, *args: str) -> list[dict[str, Any]]:
    code, out, err = both.local(user, *args, "--json")
    assert code == 0, err
    found: list[dict[str, Any]] = json.loads(out)
    return found


@FLAGS
def test_the_prediction_log_reads_the_same_over_the_server(both: Both, as_json: bool) -> None:
    flag = ["--json"] if as_json else []
    logged = _listed(both, "victor", "predictions", "list", "--limit", "5000")
    entity = next(p for p in logged if p["entity"])
    assert logged[0]["id"] in both.same("victor", "predictions", "list", *flag)
    both.same("ada", "predictions", "list", "--limit", "600", *flag)  # more than one page of the server's
    window = ["--since", "2026-05-01", "--until", "2026-06-01"]
    shown = both.same("ming", "predictions", "list", "--model", "readmission_30d:1", *window, "--limit", "7", *flag)
    assert shown.count("2026-05-") == 7 and "readmission_30d:3" not in shown and '"version": 3' not in shown
    both.same("victor", "predictions", "list", "--since", "3650d", "--variant", "champion", "--limit", "9", *flag)
    assert entity["id"] in both.same("victor", "predictions", "list", "--entity", entity["entity"], *flag)
    both.same("victor", "predictions", "show", entity["id"], *flag)
    both.same("ming", "predictions", "show", logged[0]["id"], *flag)


@FLAGS
def test_windows_and_alerts_read_the_same_over_the_server(both: Both, as_json: bool) -> None:
    flag = ["--json"] if as_json else []
    windows = _listed(both, "alice", "monitor", "list")
    assert windows[0]["id"][:12] in both.same("alice", "monitor", "list", *flag)
    both.same("carol", "monitor", "list", "--model", "readmission_30d", "--limit", "2", *flag)
    both.same("carol", "monitor", "show", windows[0]["id"][:12], *flag)
    both.same("victor", "monitor", "show", windows[-1]["id"], *flag)
    [alert] = _listed(both, "alice", "alerts", "list")
    assert alert["id"][:12] in both.same("alice", "alerts", "list", *flag)
    both.same("carol", "alerts", "list", "--state", "acknowledged", "--model", "readmission_30d", *flag)
    both.same("ming", "alerts", "list", "--state", "open", *flag)  # none: the table's "no alert open"
    assert "acknowledged by ming" in both.same("victor", "alerts", "show", alert["id"][:12])
    both.same("victor", "alerts", "show", alert["id"], *flag)


def test_an_alert_acknowledged_and_resolved_over_the_server_is_so_in_the_workspace(both: Both) -> None:
    from medops.monitoring import alerts
    from medops.monitoring.spec import AlertRule, MonitorSpec
    from medops.workspace import Workspace

    rule = AlertRule(name="cli_over_server", metric="drift.features", above=-1.0)  # fires on any judged window
    with Workspace.open(both.platform.workspace) as ws:
        opened = alerts.evaluate(ws, "readmission_30d", MonitorSpec(alerts=[rule]), actor="ming")[0].id
    assert f"{opened[:12]} │" in both.same("alice", "alerts", "list", "--state", "open")

    code, out, err = both.remote("ming", "alerts", "ack", opened[:12], "-r", "looking at the north site")
    assert code == 0 and f"alert {opened[:12]} acknowledged" in out, err
    shown = both.local("alice", "alerts", "show", opened)[1]
    assert "state: acknowledged" in shown and "acknowledged by ming" in shown and "looking at the north site" in shown

    code, out, err = both.remote("carol", "alerts", "resolve", opened, "-r", "expected after the protocol", "--json")
    assert code == 0, err
    assert json.loads(out)["resolved"]["by"] == "carol"
    doc = json.loads(both.local("alice", "alerts", "show", opened, "--json")[1])
    assert doc["state"] == "resolved" and doc["acknowledged"]["by"] == "ming"
    assert (doc["resolved"]["by"], doc["resolved"]["reason"]) == ("carol", "expected after the protocol")
    # resolved already: the same conflict both ways
    assert both.local("ming", "alerts", "resolve", opened, "-r", "again") == both.remote(
        "ming", "alerts", "resolve", opened, "-r", "again"
    )


@pytest.mark.parametrize(
    ("user", "args"),
    [
        ("alice", ("predictions", "list")),  # a data scientist does not read the prediction log
        ("pat", ("alerts", "list")),  # a predictor's token reads nothing
        ("pat", ("monitor", "list")),
        ("pat", ("alerts", "ack", "{alert}", "-r", "mine now")),
        ("pat", ("alerts", "resolve", "{alert}")),  # the role is refused before the missing reason
        ("ming", ("alerts", "resolve", "{alert}")),  # the right role, no reason
        ("victor", ("predictions", "list", "--since", "yesterday")),
        ("victor", ("predictions", "list", "--model", "readmission_30d:latest")),
        ("victor", ("predictions", "show", "no-such-prediction")),
        ("alice", ("monitor", "show", "nowindow")),
    ],
)
def test_a_refusal_is_the_same_over_the_server(both: Both, user: str, args: tuple[str, ...]) -> None:
    alert = _listed(both, "ada", "alerts", "list")[0]["id"]
    given = [a.replace("{alert}", alert) for a in args]
    here, there = both.local(user, *given), both.remote(user, *given)
    assert here[0] not in (0, None) and here[1] == ""
    assert there == here
