"""The dashboard on a team's own flat extract (NA tokens, ages up to 104, repeat visits, a year column,
no event timestamps), taken through the pipeline: each page shows it, no page shows an identifier or an
age the de-identification removed, and the version the run registered is signed from its page by both
reviewers the policy names, then moved to production by an ML engineer from the same page."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from medops.caller import Caller
from medops.identity import Role
from medops.services import Services
from medops.services.projects import load_project
from medops.workspace import init_workspace
from tests.factories import PASSWORD, start_serve
from tests.real_style import write_project
from tests.server.dashboard.test_pages import accessible

pytestmark = pytest.mark.slow
MODEL = "pbc_mortality"
TEAM = {
    "alice": Role.DATA_SCIENTIST,
    "victor": Role.VALIDATOR,
    "carol": Role.CLINICAL_REVIEWER,
    "ming": Role.ML_ENGINEER,
}


@pytest.fixture(scope="module")
def extract(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """The extract's workspace after one pipeline run (its version awaits signatures), behind `medops
    server`: (the server's URL, the raw extract)."""
    folder = tmp_path_factory.mktemp("extract")
    project = write_project(folder / "project")
    ws = init_workspace(folder / "ws", admin_username="ada", admin_full_name="Ada Admin", admin_password=PASSWORD,
                        project_file=str(project))  # fmt: skip
    with ws:
        for user, role in TEAM.items():
            ws.users.add("ada", user, user.title(), PASSWORD, [role])
        done = Services(ws).pipelines.run(Caller("alice"), load_project(project))
        assert done.steps[-1].step == "register" and done.steps[-1].outputs, done.steps[-1].note
    with pytest.MonkeyPatch.context() as env:
        for name in list(os.environ):
            if name.startswith("MEDOPS_") and name not in ("MEDOPS_TEST_PG", "MEDOPS_TEST_REDIS"):
                env.delenv(name)
        env.setenv("MEDOPS_HOME", str(folder / "ws"))
        process, url = start_serve([], command_name="server", log=folder / "server.log")
    try:
        yield url, folder / "project" / "raw" / "visits.csv"
    finally:
        process.terminate()
        process.wait(30)


def sign_in(page: Any, url: str, user: str) -> None:
    page.context.clear_cookies()
    page.goto(f"{url}/ui/login")
    page.get_by_label("User name").fill(user)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{url}/ui/")


def test_each_page_shows_the_extract_and_nothing_deidentification_removed(page: Any, extract: tuple[str, Path]) -> None:
    url, raw = extract
    sign_in(page, url, "victor")
    assert page.get_by_text(f"{MODEL}:1 needs your signature as validator").count() == 1
    page.goto(f"{url}/ui/data/visits")
    shown = page.locator("main").inner_text()
    assert "988 rows read: 2 quarantined (0.2%), 986 kept" in shown
    assert "albumin: not a float\t2" in page.locator("table.rules").inner_text()
    assert "k-anonymity over age, sex: k = " in shown
    deid = page.locator("table.deid").inner_text()
    assert "age\tage\t19\tages of 90 and over recorded as 90" in deid  # the three above 90, in repeat visits
    profile = page.locator("table.profile tr", has_text="age").first.inner_text()
    assert profile.endswith("· 90")  # the oldest shown is 90 (read: 90+)
    page.goto(f"{url}/ui/models/{MODEL}/1")
    assert page.locator("table.gates tr.passed").count() >= 1
    groups = page.locator("table.subgroups tbody").inner_text()
    assert "sex" in groups and "age_band" in groups
    page.goto(f"{url}/ui/lineage?entity={MODEL}:1")
    assert page.locator("a.node[aria-label='file: visits.csv']").count() == 1
    page.goto(f"{url}/ui/runs")
    assert page.locator("input[name=run]").count() >= 1

    extract_ids = set(pd.read_csv(raw, dtype=str)["patient_id"])
    for path in ("/ui/", "/ui/data/visits", f"/ui/models/{MODEL}/1", "/ui/runs", "/ui/audit", "/ui/monitoring"):
        page.goto(f"{url}{path}")
        accessible(page)
        html = page.content()
        assert not [p for p in extract_ids if p in html], path  # pseudonyms only


def test_both_reviewers_sign_from_the_page_and_the_engineer_moves_it_to_production(
    page: Any, extract: tuple[str, Path]
) -> None:
    url, _ = extract
    version = f"{url}/ui/models/{MODEL}/1"
    sign_in(page, url, "ming")
    page.goto(version)
    page.locator("#moves").get_by_label("Move to").select_option("production")
    page.get_by_label("Reason for the move").fill("before the signatures")
    page.get_by_role("button", name=f"Move {MODEL}:1").click()
    assert "production" in page.get_by_role("alert").inner_text()  # refused: nobody has signed
    sign_in(page, url, "victor")
    page.goto(version)
    csrf = page.locator("form.sign input[name=csrf]").get_attribute("value")
    forged = {"csrf": csrf, "role": "clinical_reviewer", "decision": "approve", "password": PASSWORD}
    refused = page.request.post(f"{version}/sign", form=forged)  # a role he does not hold, typed in
    assert refused.status == 403 and "No signature yet" in refused.text()
    for reviewer in ("victor", "carol"):
        sign_in(page, url, reviewer)
        page.goto(version)
        page.locator("form.sign").get_by_label("Your password").fill(PASSWORD)
        page.locator("form.sign").get_by_role("button", name="Sign").click()
        page.wait_for_url(re.compile(r".*#approvals$"))
    assert "Every required role has signed." in page.locator("#approvals").inner_text()
    sign_in(page, url, "ming")
    page.goto(version)
    page.locator("#moves").get_by_label("Move to").select_option("production")
    page.get_by_label("Reason for the move").fill("signed by validation and the clinic, CAB-311")
    page.get_by_role("button", name=f"Move {MODEL}:1").click()
    page.wait_for_url(re.compile(r".*#moves$"))
    assert page.locator("h1 .stage").inner_text() == "production"
    page.goto(f"{url}/ui/")
    assert page.get_by_role("link", name="version 1").count() == 1  # the home page's production column
