"""The dashboard in Chromium, on a copy of the demo behind `medops server`: people sign in, each page
shows the workspace's records, a validator signs from the page (a wrong password refused, the right one
recorded and in the audit trail), an alert is resolved with its reason, a person without a reading role
sees nothing, every form needs its CSRF token, and no page has a serious accessibility violation (axe)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from medops.caller import Caller
from medops.demo import DEMO_PASSWORD
from medops.services import Services
from medops.workspace import Workspace
from tests.factories import Platform

pytestmark = pytest.mark.slow
MODEL = "readmission_30d"


@pytest.fixture(scope="module")
def candidate(platform: Platform) -> int:
    """A new version of the demo's model, registered by alice: it awaits a validator's signature."""
    with Workspace.open(platform.workspace) as ws:
        services = Services(ws)
        production = next(v for v in services.registry.show(Caller("alice"), MODEL).versions if v.stage == "production")
        info = services.registry.register(Caller("alice"), production.run_id or "", MODEL, profile=False)
    return info.version


def sign_in(page: Any, platform: Platform, user: str, password: str = DEMO_PASSWORD) -> None:
    page.goto(f"{platform.url}/ui/")
    assert "/ui/login" in page.url  # default deny: the login form first
    page.get_by_label("User name").fill(user)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{platform.url}/ui/")


def accessible(page: Any) -> None:
    from axe_playwright_python.sync_playwright import Axe

    found = Axe().run(page).response["violations"]
    serious = [(v["id"], v["impact"], len(v["nodes"])) for v in found if v["impact"] in ("serious", "critical")]
    assert serious == [], serious


def test_each_page_shows_the_workspace_and_is_accessible(
    page: Any, platform: Platform, candidate: int, screenshots: Path
) -> None:
    sign_in(page, platform, "victor")
    pages = {
        "home": "/ui/",
        "model": f"/ui/models/{MODEL}",
        "version": f"/ui/models/{MODEL}/{candidate}",
        "alerts": "/ui/alerts",
        "audit": "/ui/audit?verify=true",
        "runs": "/ui/runs",
        "data": "/ui/data",
        "dataset": "/ui/data/observations",
        "lineage": f"/ui/lineage?entity={MODEL}:3",
        "monitoring": "/ui/monitoring",
        "admin": "/ui/admin",
    }
    for name, path in pages.items():
        page.goto(f"{platform.url}{path}")
        assert page.locator("h1").count() == 1, name
        accessible(page)
        page.screenshot(path=str(screenshots / f"{name}.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})  # a phone: a wide table scrolls, the page does not
    for name, path in pages.items():
        page.goto(f"{platform.url}{path}")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390, name
    page.screenshot(path=str(screenshots / "home-narrow.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"{platform.url}/ui/")
    assert page.get_by_role("link", name=MODEL, exact=True).count() == 1
    assert page.get_by_text(f"{MODEL}:{candidate} needs your signature as validator").count() == 1
    page.goto(f"{platform.url}/ui/models/{MODEL}/3")
    assert page.locator("table.gates tr.passed").count() >= 5 and page.locator("svg").count() == 2
    assert page.locator("table.subgroups tbody tr").count() > 3
    page.goto(f"{platform.url}/ui/audit?verify=true")
    assert "Chain verified now" in page.locator("[role=status]").inner_text()
    page.goto(f"{platform.url}/ui/models/{MODEL}/3")
    page.get_by_role("link", name="Evidence for this version").click()  # victor audits too
    assert page.locator("h1").inner_text() == f"Evidence: model:{MODEL}:3"
    assert "its signature and checksums verify" in page.locator("ul.verdict").inner_text()


def test_a_validator_signs_from_the_page_with_the_password(page: Any, platform: Platform, candidate: int) -> None:
    sign_in(page, platform, "victor")
    page.goto(f"{platform.url}/ui/models/{MODEL}/{candidate}")
    form = page.locator("form.sign")
    assert "Approved for production" in form.inner_text()  # the meaning is shown before signing
    form.get_by_label("Your password").fill("not-my-password")
    form.get_by_role("button", name="Sign").click()
    assert page.get_by_role("alert").count() == 1  # refused, shown on the page
    assert "No signature yet" in page.locator("#approvals").inner_text()
    form = page.locator("form.sign")
    form.get_by_label("Your password").fill(DEMO_PASSWORD)
    form.get_by_role("button", name="Sign").click()
    page.wait_for_url(re.compile(r".*#approvals$"))
    row = page.locator("#approvals tbody tr").first.inner_text()
    assert "validator" in row and "victor" in row and "approved" in row and "valid" in row
    assert page.locator("form.sign").count() == 0  # signed: nothing left to sign here
    page.goto(f"{platform.url}/ui/audit?action=model.approve*")
    assert f"model:{MODEL}:{candidate}" in page.locator("table.audit tbody tr").first.inner_text()


def test_an_alert_is_acknowledged_with_its_reason(page: Any, platform: Platform) -> None:
    from medops.monitoring import alerts
    from medops.monitoring.spec import AlertRule, MonitorSpec

    rule = AlertRule(name="dashboard_ack", metric="drift.features", above=-1.0)  # fires on any judged window
    with Workspace.open(platform.workspace) as ws:
        opened = alerts.evaluate(ws, MODEL, MonitorSpec(alerts=[rule]), actor="ming")[0].id
    sign_in(page, platform, "ming")
    page.goto(f"{platform.url}/ui/alerts?state=open")
    alert = page.locator(f"#alert-{opened}")
    alert.get_by_role("button", name="Acknowledge").click()  # the reason is required: the browser holds the form
    assert page.url.endswith("/ui/alerts?state=open")
    alert.get_by_label("Reason to acknowledge").fill("looking at the north site's feed")
    alert.get_by_role("button", name="Acknowledge").click()
    page.wait_for_url(re.compile(f".*/ui/alerts#alert-{opened}$"))
    shown = page.locator(f"#alert-{opened}").inner_text()
    assert "Acknowledged by ming" in shown and "looking at the north site's feed" in shown
    with Workspace.open(platform.workspace) as ws:
        assert Services(ws).monitoring.alert(Caller("alice"), opened).state == "acknowledged"


def test_an_alert_is_resolved_with_its_reason(page: Any, platform: Platform) -> None:
    sign_in(page, platform, "ming")
    page.goto(f"{platform.url}/ui/alerts?state=acknowledged")
    alert = page.locator("article.alert").first
    alert.get_by_label("Reason to resolve").fill("labs feed fixed, INC-42")
    alert.get_by_role("button", name="Resolve").click()
    page.wait_for_url(re.compile(r".*/ui/alerts#alert-"))
    assert "Resolved by ming" in page.locator("article.alert").first.inner_text()
    assert "labs feed fixed, INC-42" in page.content()


def test_a_person_without_a_reading_role_sees_no_data_and_no_buttons(
    page: Any, platform: Platform, candidate: int
) -> None:
    sign_in(page, platform, "pat")  # a prediction token's user: reads nothing
    for path in ("/ui/", f"/ui/models/{MODEL}/{candidate}", "/ui/alerts", "/ui/audit"):
        page.goto(f"{platform.url}{path}")
        assert page.locator("h1").inner_text() == "Not shown", path
        assert page.locator("table").count() == 0 and page.locator("form.sign, article.alert form").count() == 0
    page.context.clear_cookies()
    sign_in(page, platform, "alice")  # reads, but signs for no required role
    page.goto(f"{platform.url}/ui/models/{MODEL}/{candidate}")
    assert page.locator("h1").count() == 1 and page.locator("form.sign").count() == 0
    assert page.get_by_role("link", name="Evidence for this version").count() == 0
    page.goto(f"{platform.url}/ui/evidence/models/{MODEL}/3")  # typed in: refused, and the refusal audited
    assert page.locator("h1").inner_text() == "Not shown"


def test_every_form_needs_its_csrf_token_and_this_site(platform: Platform, candidate: int) -> None:
    with httpx.Client(base_url=platform.url) as http:
        signed_in = http.post("/ui/login", data={"username": "ming", "password": DEMO_PASSWORD, "next": "/ui/"})
        assert signed_in.status_code == 303
        cookie = signed_in.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Secure" in cookie
        # the cookie is Secure: a browser sends it to this loopback address, httpx only when told to
        http.headers["Cookie"] = f"medops_session={signed_in.cookies['medops_session']}"
        alert = re.search(r'id="alert-([0-9a-f]+)"', http.get("/ui/alerts").text)
        assert alert is not None
        forms = [
            f"/ui/models/{MODEL}/{candidate}/sign",
            f"/ui/alerts/{alert.group(1)}/acknowledge",
            f"/ui/alerts/{alert.group(1)}/resolve",
            "/ui/admin/users",
            "/ui/admin/users/carol/grant",
            "/ui/admin/users/carol/disable",
            "/ui/admin/tokens",
            "/ui/admin/tokens/0123456789ab/revoke",
            "/ui/logout",
        ]
        token = re.search(r'name="csrf" value="([0-9a-f]+)"', http.get("/ui/alerts").text)
        assert token is not None
        for path in forms:
            without = http.post(path, data={"reason": "x", "password": DEMO_PASSWORD, "role": "validator"})
            assert without.status_code == 403 and without.json()["code"] == "csrf_failed", path
            wrong = http.post(path, data={"csrf": "0" * 64, "reason": "x"})
            assert wrong.status_code == 403, path
            elsewhere = http.post(
                path, data={"csrf": token.group(1), "reason": "x"}, headers={"Origin": "https://evil.example"}
            )
            assert elsewhere.status_code == 403, path
        assert http.get("/ui/").status_code == 200  # none of them changed anything, not even the sign-out


def test_runs_compare_and_the_lineage_graph_links(page: Any, platform: Platform) -> None:
    sign_in(page, platform, "alice")
    page.goto(f"{platform.url}/ui/runs")
    boxes = page.locator("input[name=run]")
    assert boxes.count() >= 2
    boxes.nth(0).check()
    boxes.nth(1).check()
    page.get_by_role("button", name="Compare the chosen runs").click()
    assert page.locator("h1").inner_text() == "2 runs compared"
    assert "test_auroc" in page.locator("main").inner_text()
    accessible(page)
    page.goto(f"{platform.url}/ui/lineage?entity={MODEL}:3")
    here = page.locator("a.node.here")
    assert here.count() == 1 and "model" in (here.get_attribute("aria-label") or "")
    dataset = page.locator("a.node[aria-label^='dataset:']").first
    target = dataset.get_attribute("aria-label")
    dataset.click()  # a box opens the graph around itself
    page.wait_for_load_state()
    assert page.locator("a.node.here").get_attribute("aria-label") == target
    assert f"Around {target}" in page.locator("main p").first.inner_text()


def test_an_admin_manages_users_and_tokens_from_the_page(page: Any, platform: Platform) -> None:
    sign_in(page, platform, "ada")
    page.goto(f"{platform.url}/ui/admin")
    page.get_by_text("Add a user").click()
    accessible(page)
    form = page.locator("form.add-user")
    form.get_by_label("User name").fill("nina")
    form.get_by_label("Full name").fill("Nina Okafor")
    form.get_by_label("First password").fill("a-long-first-password-1")
    form.get_by_label("data_scientist").check()
    form.get_by_label("auditor").check()
    form.get_by_label("Reason").fill("joins the sepsis team, IT-7")
    form.get_by_role("button", name="Add the user").click()
    page.wait_for_url(re.compile(r".*/ui/admin#users$"))
    row = page.locator("#user-nina")
    assert "auditor, data_scientist" in row.inner_text()  # roles sorted

    for button, expected in (("Grant", "validator"), ("Revoke", "data_scientist")):
        row.get_by_text("Change nina").click()
        form = row.locator("form.user-roles")
        form.get_by_label("Role").select_option(expected)
        form.get_by_label("Reason").fill(f"{button.lower()} {expected}: second reviewer")
        form.get_by_role("button", name=button, exact=True).click()
        page.wait_for_url(re.compile(r".*#user-nina$"))
    assert "auditor, validator" in page.locator("#user-nina").inner_text()

    page.get_by_text("Make a token").click()
    form = page.locator("form.make-token")
    form.get_by_label("What it is for").fill("nina-notebook")
    form.get_by_label("For user").fill("nina")
    form.get_by_label("Expires in days").fill("7")
    form.get_by_label("Reason").fill("her notebook reads runs")
    form.get_by_role("button", name="Make the token").click()
    assert "Token nina-notebook made for nina" in page.get_by_role("status").inner_text()
    secret = page.get_by_label("Secret").input_value()
    asked = {"Authorization": f"Bearer {secret}"}
    assert httpx.get(f"{platform.url}/v1/auth/whoami", headers=asked).json()["user"] == "nina"

    page.goto(f"{platform.url}/ui/admin")
    token = page.locator("table.tokens tr", has_text="nina-notebook")
    token.get_by_label("Reason to revoke").fill("she left the project")
    token.get_by_role("button", name="Revoke nina-notebook").click()
    page.wait_for_url(re.compile(r".*#tokens$"))
    assert "revoked" in page.locator("table.tokens tr", has_text="nina-notebook").inner_text()
    assert httpx.get(f"{platform.url}/v1/auth/whoami", headers=asked).status_code == 401

    row = page.locator("#user-nina")
    row.get_by_text("Change nina").click()
    row.get_by_label("Reason to disable").fill("left the hospital")
    row.get_by_role("button", name="Disable nina").click()
    page.wait_for_url(re.compile(r".*#user-nina$"))
    assert page.locator("#user-nina td").nth(3).inner_text() == "no"
    page.goto(f"{platform.url}/ui/audit?actor=ada&entity=user:nina")
    trail = page.locator("table.audit tbody").inner_text()
    for said in ("user.add", "user.grant", "user.revoke", "user.disable", "left the hospital"):
        assert said in trail, said


def test_a_person_who_is_not_admin_gets_no_user_forms_and_cannot_forge_one(page: Any, platform: Platform) -> None:
    sign_in(page, platform, "ming")
    page.goto(f"{platform.url}/ui/admin")
    assert page.locator("form.add-user, form.user-roles, form.user-active").count() == 0
    assert page.locator("form.make-token").count() == 1  # his own tokens are his to make
    assert page.locator("form.make-token").get_by_label("For user").count() == 0
    csrf = page.locator("input[name=csrf]").first.get_attribute("value")
    forged = page.request.post(
        f"{platform.url}/ui/admin/users/ming/grant", form={"csrf": csrf, "role": "admin", "reason": "me"}
    )
    assert forged.status == 403 and "admin" in forged.text()
    with Workspace.open(platform.workspace) as ws:
        assert "admin" not in ws.users.get("ming").roles


def test_the_audit_page_loads_older_events_in_place(page: Any, platform: Platform) -> None:
    sign_in(page, platform, "victor")
    page.goto(f"{platform.url}/ui/audit")
    rows = page.locator("#event-rows > tr")
    assert rows.count() == 100
    newest, oldest = (int(rows.nth(i).locator("td").first.inner_text()) for i in (0, 99))
    page.evaluate("window.stayed = true")  # gone if the page were loaded again
    page.get_by_role("link", name="Older events").click()
    rows.nth(100).wait_for()  # (wait_for_function evaluates a string: the page's CSP forbids it)
    assert page.evaluate("window.stayed") is True and page.url.endswith("/ui/audit")
    assert int(rows.nth(100).locator("td").first.inner_text()) == oldest - 1 < newest
    older = page.get_by_role("link", name="Older events")
    assert older.count() == 0 or f"below={int(rows.last.locator('td').first.inner_text())}" in (
        older.get_attribute("href") or ""
    )
    page.get_by_label("Who").fill("carol")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url(re.compile(r".*/ui/audit\?actor=carol.*"))
    assert page.evaluate("window.stayed") is True  # the table was swapped, the page kept
    actors = page.locator("#event-rows > tr > td:nth-child(3)").all_inner_texts()
    assert actors and set(actors) == {"carol"}
    export = page.get_by_role("link", name="Export these events (CSV, with their hashes)")
    got = page.request.get(f"{platform.url}{export.get_attribute('href')}")  # the browser's session, no token
    lines = got.text().splitlines()
    assert got.status == 200 and lines[0].startswith("seq,ts,actor,action")
    assert len(lines) == len(actors) + 1 and all(",carol," in line for line in lines[1:])


def test_a_version_is_moved_and_signatures_asked_for_from_its_page(
    page: Any, platform: Platform, candidate: int
) -> None:
    sign_in(page, platform, "alice")  # registers models, moves none
    page.goto(f"{platform.url}/ui/models/{MODEL}/{candidate}")
    assert page.locator("#moves").count() == 0
    page.get_by_label("Why they should sign now").fill("the north site goes live on Monday")
    page.get_by_role("button", name="Ask the missing roles to sign").click()
    page.wait_for_url(re.compile(r".*#approvals$"))
    asked = page.locator("ul.requests").inner_text()
    assert "alice asked" in asked and "the north site goes live on Monday" in asked

    page.context.clear_cookies()
    sign_in(page, platform, "ming")
    page.goto(f"{platform.url}/ui/models/{MODEL}/{candidate}")
    accessible(page)
    moves = page.locator("#moves")
    moves.get_by_label("Move to").select_option("production")
    moves.get_by_label("Reason for the move").fill("ready, I think")
    moves.get_by_role("button", name=f"Move {MODEL}:{candidate}").click()
    refusal = page.get_by_role("alert").inner_text()  # a signature is still missing: the service says no
    assert "production" in refusal and page.locator("h1 .stage").inner_text() != "production"
    moves = page.locator("#moves")
    moves.get_by_label("Move to").select_option("staging")
    moves.get_by_label("Reason for the move").fill("shadow traffic first")
    moves.get_by_role("button", name=f"Move {MODEL}:{candidate}").click()
    page.wait_for_url(re.compile(r".*#moves$"))
    assert page.locator("h1 .stage").inner_text() == "staging"
    page.get_by_label("Alias to point here").fill("challenger")
    page.get_by_label("Reason for the alias").fill("against the champion")
    page.get_by_role("button", name="Point the alias here").click()
    page.wait_for_url(re.compile(r".*#moves$"))
    assert "Aliases here: challenger." in page.locator("#moves").inner_text()
    page.get_by_label("Reason to remove challenger").fill("the comparison ended")
    page.get_by_role("button", name="Remove the alias challenger").click()
    page.wait_for_url(re.compile(r".*#moves$"))
    assert "Aliases here: none." in page.locator("#moves").inner_text()
    history = page.locator("ol.timeline").inner_text()
    assert "shadow traffic first" in history and "the comparison ended" in history
