"""Helpers that tests share (not fixtures: those live in conftest.py files).

Test modules import from here, never from one another.
"""

from __future__ import annotations

import io
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from medops.cli.main import main

if TYPE_CHECKING:
    from medops.demo import DemoResult

PASSWORD = "test-password-0123"


def run(
    args: list[str],
    capsys: pytest.CaptureFixture[str],
    stdin: str | None = None,
    monkeypatch: pytest.MonkeyPatch | None = None,
) -> tuple[int, str, str]:
    """Run the CLI in this process: (exit code, stdout, stderr)."""
    if stdin is not None:
        assert monkeypatch is not None
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


@dataclass(frozen=True)
class DemoRun:
    """The demo as `medops demo --dir ROOT` ran it: what it printed and what it returned."""

    root: Path
    code: int
    out: str
    err: str
    result: DemoResult
