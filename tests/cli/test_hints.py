"""Error codes are stable and listed; the CLI's advice for each names real options."""

from __future__ import annotations

import re
from pathlib import Path

from medops import errors
from medops.cli.hints import HINTS, hint_for
from medops.errors import CODES, InvalidInput, MedopsError, NotFound

SRC = Path(__file__).resolve().parents[2] / "src" / "medops"


def test_every_code_raised_is_listed_and_every_hint_has_a_code() -> None:
    used = {m for path in SRC.rglob("*.py") for m in re.findall(r"\bcode=\"([a-z_]+)\"", path.read_text())}
    assert used, "no finer codes found: the pattern is stale"
    assert used <= set(CODES), f"codes raised but not listed in medops.errors.CODES: {sorted(used - set(CODES))}"
    class_codes = {cls.code for cls in vars(errors).values() if isinstance(cls, type) and issubclass(cls, MedopsError)}
    assert set(HINTS) <= set(CODES) | class_codes


def test_domain_errors_name_no_command_line_option() -> None:
    """Options and commands are the CLI's business (cli/hints.py); the server has none of them."""
    offenders = []
    for path in SRC.rglob("*.py"):
        if "cli" in path.parts or path.name in ("demo.py", "doctor.py"):
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(r"hint=f?\"[^\"]*(--[a-z]|`medops |: medops |run medops )", line):
                offenders.append(f"{path.relative_to(SRC)}:{number}")
    assert offenders == []


def test_the_cli_fills_its_advice_from_the_error() -> None:
    exc = InvalidInput("bad", code="project_option_invalid", option="test_size")
    assert hint_for(exc) == "check the value of --test-size"
    assert hint_for(NotFound("no model 'x' version 3", code="model_version_not_found", model="x")) == (
        "see them with: medops models show x"
    )
    assert hint_for(InvalidInput("plain", hint="its own")) == "its own"
