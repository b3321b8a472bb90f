"""The validation report and the model card, rendered from a realistic evaluation document.

The document (tests/report_doc.py) is built independently of the code that produces it, with
every case the rendering must handle: a failing gate, a too-small subgroup, a flagged gap,
undefined values, a perturbation the input checks miss, with and without a production model,
and user text that tries to inject HTML.
"""

from __future__ import annotations

import copy
import math
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from medops.evaluation import charts
from medops.evaluation.report import interval, markdown, number, render_model_card, render_report
from tests.report_doc import NAN, make_doc

MD_SECTIONS = (
    "## Model details",
    "## Intended use",
    "## Population",
    "## Training data",
    "## Evaluation data",
    "## Performance",
    "## Subgroup results",
    "## Monitoring",
    "## Limitations",
    "## Ethical considerations",
    "## Caveats and recommendations",
)


class Structure(HTMLParser):
    """Counts open and close tags of the elements that must balance, and collects resource URLs."""

    CHECKED = ("html", "head", "body", "header", "section", "footer", "table", "thead", "tbody", "tr", "svg", "ul")

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.depth: dict[str, int] = {tag: 0 for tag in self.CHECKED}
        self.negative: list[str] = []
        self.urls: list[str] = []
        self.classes: list[tuple[str, str]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.depth:
            self.depth[tag] += 1
        for name, value in attrs:
            if name in ("src", "href", "xlink:href", "action", "poster", "data") and value:
                self.urls.append(value)
            if name == "class" and value:
                self.classes.append((tag, value))

    def handle_endtag(self, tag: str) -> None:
        if tag in self.depth:
            self.depth[tag] -= 1
            if self.depth[tag] < 0:
                self.negative.append(tag)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(html: str) -> Structure:
    parser = Structure()
    parser.feed(html)
    parser.close()
    assert not parser.negative, f"closed before opened: {parser.negative}"
    assert all(v == 0 for v in parser.depth.values()), {k: v for k, v in parser.depth.items() if v}
    return parser


@pytest.fixture
def no_charts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Charts cost most of a render; tests about the page around them go without."""
    for name in ("roc_svg", "pr_svg", "calibration_svg"):
        monkeypatch.setattr(charts, name, lambda *args, **kwargs: "<svg></svg>")


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return make_doc()


@pytest.fixture(scope="module")
def report(doc: dict[str, Any]) -> str:
    return render_report(doc)


@pytest.fixture(scope="module")
def card(doc: dict[str, Any]) -> tuple[str, str]:
    return render_model_card(doc)


def rows(html: str, table_class: str) -> list[str]:
    table = re.search(rf'<table class="{table_class}">(.*?)</table>', html, re.S)
    assert table, table_class
    return re.findall(r"<tr\b.*?</tr>", table.group(1), re.S)


def test_report_is_well_formed_and_self_contained(report: str) -> None:
    parsed = parse(report)
    assert report.startswith("<!DOCTYPE html>")
    assert parsed.depth == {tag: 0 for tag in Structure.CHECKED}
    # Only in-document references (the SVG clip paths and markers): nothing to fetch.
    assert parsed.urls and all(url.startswith("#") for url in parsed.urls), parsed.urls
    assert not re.search(r"(src|href)\s*=\s*[\"']?\s*(https?:)?//", report, re.I)
    assert "@import" not in report and "url(http" not in report
    assert report.count("<svg") == 3
    assert not re.search(r"\bnan\b", " ".join(parsed.text), re.I)
    assert "inf" not in re.findall(r"\b\w+\b", " ".join(parsed.text))


def test_user_text_is_escaped(report: str, card: tuple[str, str]) -> None:
    md, html = card
    for page in (report, html):
        assert "<script" not in page.lower()
        assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; review" in page
        assert "Clinical AI team &lt;clinical-ai@example.org&gt;" in page
    assert "<script" not in md.lower() and "&lt;script&gt;" in md


def test_gates_show_criterion_and_outcome(report: str, doc: dict[str, Any]) -> None:
    table = rows(report, "gates")
    assert len(table) == len(doc["gates"]) + 1  # the header row
    for gate, row in zip(doc["gates"], table[1:], strict=True):
        assert gate["criterion"].replace("<", "&lt;") in row
        assert ("PASS" in row) is gate["passed"] and ("FAIL" in row) is (not gate["passed"])
        assert ('class="failed"' in row) is (not gate["passed"])
    banner = re.search(r'<div class="banner (\w+)".*?</div>', report, re.S)
    assert banner and banner.group(1) == "fail" and "FAIL" in banner.group(0)
    assert "equal_opportunity gap ≤ 0.1 over age_band" in banner.group(0)


def test_numbers_intervals_and_undefined(report: str) -> None:
    assert "0.812 (0.791–0.833)" in report
    assert "0.050 (CI undefined)" in report  # calibration intercept with no interval
    assert "-0.152" in report and "-0.202 to -0.102" in report  # a negative gap reads "to", not a dash
    assert number(NAN) == number(None) == number(math.inf) == "—"
    assert number(-0.0001) == "0.000" and number(12345) == "12,345" and number(0.5) == "0.500"
    assert interval({"value": NAN, "low": 0.1, "high": 0.2}) == "—"


def test_every_subgroup_row_is_present(report: str, doc: dict[str, Any]) -> None:
    body = rows(report, "subgroups")
    data = [r for r in body if "<td" in r]
    assert len(data) == len(doc["subgroups"]["groups"])
    for g, row in zip(doc["subgroups"]["groups"], data, strict=True):
        name = g["group"].replace("<", "&lt;")
        assert f"<td>{name}" in row, name
        assert f">{g['n']:,}<" in row
        if g["too_small"]:
            assert 'class="too-small"' in row and "too small (n &lt; 50)" in row
        assert ('class="flagged"' in row) is bool(g["flagged"])
    headings = re.findall(r'<th class="section" colspan="12">([^<]*)', report)
    assert headings == ["sex", "age_band", "sex × age_band"]


def test_flagged_gap_is_highlighted_with_a_text_marker(report: str) -> None:
    row = next(r for r in rows(report, "subgroups") if "<td>65+" in r)
    cell = re.search(r'<td class="num flagged gap-first">(.*?)</td>', row, re.S)
    assert cell and "-0.152" in cell.group(1) and "FLAGGED" in cell.group(1)
    flagged = rows(report, "flagged-gaps")[1:]
    assert len(flagged) == 2 and "Equal opportunity" in flagged[0] and "-0.152 (-0.202 to -0.102)" in flagged[0]


def test_thresholds_robustness_champion(report: str) -> None:
    chosen = [r for r in rows(report, "thresholds") if 'class="chosen"' in r]
    assert len(chosen) == 1 and ">0.200<" in chosen[0] and "chosen" in chosen[0]
    robustness = {re.search(r'class="mono">([^<]*)', r).group(1): r for r in rows(report, "robustness")[1:]}  # type: ignore[union-attr]
    assert 'class="not-caught"' in robustness["unit:temperature_max_30d"]
    assert "NOT CAUGHT" in robustness["unit:temperature_max_30d"] and "-0.081" in robustness["unit:temperature_max_30d"]
    assert "✓ caught" in robustness["noise"]
    champion = rows(report, "champion")
    assert "+0.011 (-0.004 to 0.026)" in champion[1] and "PASS" in champion[1]


@pytest.mark.usefixtures("no_charts")
def test_without_champion_or_subgroups() -> None:
    doc = make_doc(champion=False)
    doc["subgroups"] = None
    html = render_report(doc)
    parse(html)
    assert 'class="champion"' not in html and "No production model to compare with." in html
    assert "No subgroup attributes were declared" in html
    md, card_html = render_model_card(doc)
    parse(card_html)
    assert "No subgroup attributes were declared" in md


@pytest.mark.usefixtures("no_charts")
def test_a_sparse_document_still_renders() -> None:
    """The producer evolves separately: missing keys show as undefined rather than failing the render."""
    html = render_report({"passed": False, "project": {"name": "p"}})
    md, card_html = render_model_card({})
    parse(html)
    parse(card_html)
    assert "FAIL" in html and "## Limitations" in md


def test_sections_in_order(report: str) -> None:
    titles = re.findall(r"<h2>([^<]*)</h2>", report)
    assert [t.split(". ", 1)[1] for t in titles] == [
        "Acceptance gates",
        "Performance on the test set",
        "Operating thresholds",
        "Subgroups",
        "Comparison with the production model",
        "Robustness",
        "Data and feature lineage",
        "Training run and environment",
    ]
    for needed in ("readmission-train@3", "admissions_history", "view:labs_recent@5", "creatinine_last"):
        assert needed in report
    for needed in ("lightgbm", "4.6.0", "3b5c7d9e1f2a", "uncommitted changes", "b" * 64, "train-01"):
        assert needed in report
    assert "7c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f" in report.split("<footer", 1)[1]


def test_markdown_card(card: tuple[str, str], doc: dict[str, Any]) -> None:
    md, html = card
    positions = [md.index(section + "\n") for section in MD_SECTIONS]
    assert positions == sorted(positions)
    assert md.startswith("# Model card: readmission-30d")
    assert "0f9e8d7c" in md and "b" * 12 in md
    assert "anything outside the intended use and population above" in md
    assert "| AUROC | 0.812 (0.791–0.833) |" in md
    limitations = md.split("## Limitations", 1)[1].split("## Ethical", 1)[0]
    assert "transfer to other sites is untested" in limitations
    assert "sex = unknown is too small to judge" in limitations and "12 rows" in limitations
    assert "unit:temperature\\_max\\_30d" in limitations  # a perturbation not caught
    assert "equal\\_opportunity gap ≤ 0.1 over age\\_band" in limitations  # the failed gate
    assert "never to deny care" in md.split("## Ethical considerations", 1)[1]
    assert "FLAGGED" in md.split("## Subgroup results", 1)[1].split("## Limitations", 1)[0]
    assert "nan" not in re.findall(r"\b\w+\b", md.lower())
    parsed = parse(html)
    for section in MD_SECTIONS:
        assert f">{section[3:]}</h2>" in html
    # in-page anchors, and the one file the card names: the monitoring report written beside it
    assert all(url.startswith("#") for url in parsed.urls if url != "monitoring.html")
    assert "monitoring.html" in parsed.urls and "(monitoring.html)" in md.split("## Monitoring", 1)[1]


def test_markdown_escaping() -> None:
    assert markdown("a|b") == "a\\|b"
    assert markdown("<b>x</b>") == "&lt;b&gt;x&lt;/b&gt;"
    assert markdown("age <60, n < 50") == "age <60, n < 50"  # no tag can start here: shown as written
    assert markdown("# heading") == "\\# heading"
    assert markdown("line\nbreak  ") == "line break"


def test_charts_are_deterministic_and_tolerate_undefined(doc: dict[str, Any]) -> None:
    curves = doc["curves"]
    first = charts.calibration_svg(curves["calibration"])
    assert first == charts.calibration_svg(curves["calibration"])
    assert "<dc:date>" not in first and "metadata" not in first and "http" not in first
    assert first.startswith('<svg class="chart"') and first.endswith("</svg>")
    assert re.search(r"<text[^>]*>Mean predicted risk</text>", first)  # text stays text
    assert "no data" in charts.roc_svg([[NAN, NAN]])
    ids = [set(re.findall(r'\sid="([^"]+)"', s)) for s in (first, charts.roc_svg(curves["roc"]))]
    assert not ids[0] & ids[1]


@pytest.mark.usefixtures("no_charts")
def test_sixty_subgroups_render() -> None:
    # How fast: benchmarks/bench_report.py (aim under 0.5 s).
    doc = make_doc(extra_groups=51)
    assert len(doc["subgroups"]["groups"]) == 60
    html = render_report(doc)
    md, _ = render_model_card(doc)
    assert html.count("site-") >= 51 and "site-50" in md


@pytest.mark.usefixtures("no_charts")
def test_document_is_not_modified(doc: dict[str, Any]) -> None:
    before = copy.deepcopy(doc)
    render_report(doc)
    render_model_card(doc)
    assert repr(doc) == repr(before)


@pytest.mark.slow
def test_report_renders_in_chromium(tmp_path: Path, report: str) -> None:
    # A browser is a desktop tool, not a Python dependency: .ci/run installs it; elsewhere, skip without one.
    binary = shutil.which("chromium")
    if binary is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is not installed, and CI must render the report (apt-get install chromium)")
        pytest.skip("chromium is not installed (Debian: apt-get install chromium)")
    page, png = tmp_path / "report.html", tmp_path / "report.png"
    page.write_text(report, encoding="utf-8")
    subprocess.run(
        [
            binary,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--screenshot={png}",
            "--window-size=1200,4000",
            page.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    assert png.exists() and png.stat().st_size > 20_000
