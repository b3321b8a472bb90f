"""The compliance matrices stay true: every test they cite exists, every section of Part 11 the project
answers for and every Safe Harbor identifier has a row, and each row names the command that shows it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
COMPLIANCE = ROOT / "docs" / "compliance"
CITED = re.compile(r"`(tests/[^`\s]+|::[A-Za-z_][\w\[\]-]*)`")
PART11 = [
    *(f"11.10({letter})" for letter in "abcdefghijk"),
    "11.50(a)",
    "11.50(b)",
    "11.70",
    "11.100(a)",
    "11.100(b)",
    "11.100(c)",
    "11.200(a)(1)",
    "11.200(a)(2)",
    "11.200(a)(3)",
    "11.200(b)",
    *(f"11.300({letter})" for letter in "abcde"),
]
SAFE_HARBOR = [f"({letter})" for letter in "ABCDEFGHIJKLMNOPQR"]


def cited_tests(text: str) -> list[str]:
    """Each cited test as path or path::name; a bare ``::name`` belongs to the file cited before it."""
    found, last = [], ""
    for token in CITED.findall(text):
        if token.startswith("::"):
            found.append(f"{last}{token}")
        else:
            last = token.split("::")[0]
            found.append(token)
    return found


def missing(cited: str) -> str | None:
    path, _, name = cited.partition("::")
    target = ROOT / path
    if not target.exists():
        return f"{path} does not exist"
    if not name:
        return None
    function = name.split("[")[0]
    if not re.search(rf"^(async )?def {re.escape(function)}\(", target.read_text(), re.MULTILINE):
        return f"{path} has no test {function}"
    return None


def rows(path: Path) -> list[list[str]]:
    cells = []
    for line in path.read_text().splitlines():
        if line.startswith("|") and not line.startswith("|---"):
            cells.append([c.strip() for c in line.strip("|").split(" | ")])
    return cells[1:]  # without the header


@pytest.mark.parametrize("document", sorted(p.name for p in COMPLIANCE.glob("*.md")))
def test_every_cited_test_exists(document: str) -> None:
    cited = cited_tests((COMPLIANCE / document).read_text())
    assert document == "threat-model.md" or cited, "a matrix cites no test"
    problems = [problem for c in cited if (problem := missing(c))]
    assert problems == []


def test_the_checker_notices_a_renamed_test() -> None:
    text = "`tests/test_compliance.py::test_every_cited_test_exists`, `::no_such_test`, `tests/no_such_file.py`"
    problems = [problem for c in cited_tests(text) if (problem := missing(c))]
    assert problems == [
        "tests/test_compliance.py has no test no_such_test",
        "tests/no_such_file.py does not exist",
    ]


def test_part_11_has_a_row_per_section_with_a_command_and_a_test() -> None:
    table = rows(COMPLIANCE / "part11-matrix.md")
    sections = [row[0] for row in table]
    assert [s for s in PART11 if s not in sections] == []
    for section, _requirement, control, shown, tests in table:
        assert control, section
        assert shown.startswith("`medops") or shown == "(none)", section
        assert (
            CITED.search(tests)
            or tests.startswith("(none: outside the software")
            or tests.startswith("(none: not used")
        ), section


def test_safe_harbor_has_a_row_per_identifier_with_a_command_and_a_test() -> None:
    table = rows(COMPLIANCE / "hipaa-safe-harbor.md")
    identifiers = " ".join(row[0] for row in table)
    assert [i for i in SAFE_HARBOR if i not in identifiers] == []
    assert "actual knowledge" in identifiers
    for row in (r for r in table if r[0].startswith("(")):
        assert row[-2].startswith("`medops"), row[0]
        assert CITED.search(row[-1]), row[0]
