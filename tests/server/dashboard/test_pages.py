"""The dashboard in Chromium, on a copy of the demo behind `medops server`: people sign in, each page
shows the workspace's records, a validator signs from the page (a wrong password refused, the right one
recorded and in the audit trail), an alert is resolved with its reason, a person without a reading role
sees nothing, every form needs its CSRF token, and no page has a serious accessibility violation (axe)."""

from __future__ import annotations

import re
from collections.abc import Iterator
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


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    yield opened
    context.close()


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
    page.goto(f"{platform.url}/ui/")
    assert page.get_by_role("link", name=MODEL, exact=True).count() == 1
    assert page.get_by_text(f"{MODEL}:{candidate} needs your signature as validator").count() == 1
    page.goto(f"{platform.url}/ui/models/{MODEL}/3")
    assert page.locator("table.gates tr.passed").count() >= 5 and page.locator("svg").count() == 2
    assert page.locator("table.subgroups tbody tr").count() > 3
    page.goto(f"{platform.url}/ui/audit?verify=true")
    assert "Chain verified now" in page.locator("[role=status]").inner_text()


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
