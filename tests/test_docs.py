"""Every command the docs show runs as written.

The fenced shell blocks (bash, sh, shell, console) of README.md and docs/ are read line by line
and each command runs through the CLI in-process, the lines of a block sharing one working folder
and environment as they would in a shell. A block that creates a workspace (`medops init`) runs
in an empty folder; every other block runs in its own copy of the demo's folder, with the copy's
workspace as MEDOPS_HOME and its project folder (medops.yaml) as the working folder, so a block
may change what it likes. Every command must exit 0.

The shell understood is small on purpose: `NAME=value` prefixes, `cd`, `&&`, comments and `\\`
continuations. A line that is not a medops command fails the test unless NOT_RUN names it.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import typer

from medops.cli.main import main
from medops.demo import DEMO_PASSWORD

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
SHELL = {"bash", "sh", "shell", "console"}

# Lines a test can't run, by how they start, and why. Nothing else is skipped.
NOT_RUN = {
    "python3 -m venv": "creates a virtual environment and installs medops into it (the suite runs installed); "
    "the demo it ends with is the session's `demo` fixture, run once",
    ".venv/bin/pip install": "installs medops and its extras",
    ".venv/bin/ruff check": "the linters run on their own in CI",
    ".venv/bin/python -m pytest": "the suite itself",
    ".venv/bin/python -m benchmarks": "benchmarks time things; tests never do",
    "medops serve": "runs until stopped; tests/server starts it as its own process and calls it over HTTP",
    "curl": "calls a running server; tests/server/test_api.py sends the same requests with httpx",
}

# What the docs' placeholders stand for in the demo's workspace: ids that are random in every
# workspace, so the docs can't spell them. Any other upper-case word in a command fails the test.
PLACEHOLDERS = {
    "RUN": "the demo's reproduction of its first run: trained, not yet evaluated or registered",
    "PRODUCTION_RUN": "the run of readmission_30d:1, the demo's first production version (RUN reproduces it)",
    "RUN_A": "the run of readmission_30d:1",
    "RUN_B": "the demo's tuned run",
    "EVAL": "the evaluation readmission_30d:1 was registered with",
}
OPERATORS = {"|", "||", ";", ">", ">>", "<", "&", "(", ")"}


@dataclass(frozen=True)
class Block:
    doc: str
    line: int
    commands: tuple[tuple[int, str], ...]  # (line number, command text)

    @property
    def creates_workspace(self) -> bool:
        return any(re.match(r"(\w+=\S+\s+)*medops init\b", text) for _, text in self.commands)


def shell_blocks(path: Path) -> Iterator[Block]:
    """The fenced shell blocks of one Markdown file, each line a command (console: only `$ ` lines)."""
    lang, start, lines = None, 0, []
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        fence = re.match(r"^```(\w*)\s*$", raw)
        if fence and lang is None:
            lang, start, lines = fence.group(1) or "text", number, []
        elif fence:
            if lang in SHELL:
                yield Block(str(path.relative_to(ROOT)), start, tuple(_commands(lines, lang)))
            lang = None
        elif lang is not None:
            lines.append((number, raw))


def _commands(lines: list[tuple[int, str]], lang: str) -> Iterator[tuple[int, str]]:
    pending: tuple[int, str] | None = None
    for number, raw in lines:
        text = raw.strip()
        if pending is not None:
            text, number = pending[1] + " " + text, pending[0]
            pending = None
        elif lang == "console":
            if not text.startswith("$ "):
                continue  # output
        text = text.removeprefix("$ ")
        if text.endswith("\\"):
            pending = (number, text[:-1].rstrip())
        elif text and not text.startswith("#"):
            yield number, text


BLOCKS = [block for doc in DOCS for block in shell_blocks(doc)]
COMMAND = re.compile(r"([A-Z_][A-Z0-9_]*=\S*\s+)*(medops|cd)(\s|$)")


def skipped(text: str) -> bool:
    return any(text.startswith(prefix) for prefix in NOT_RUN)


def test_every_shell_line_is_a_command_or_listed() -> None:
    """The reader finds what it must, and skips only what NOT_RUN names."""
    lines = [(f"{b.doc}:{n}", text) for b in BLOCKS for n, text in b.commands]
    strays = [f"{where}: {text}" for where, text in lines if not skipped(text) and not COMMAND.match(text)]
    assert not strays, "not medops commands; run them or add them to NOT_RUN with why:\n" + "\n".join(strays)
    assert {"README.md", "docs/data.md", "docs/registry.md", "docs/training.md"} <= {b.doc for b in BLOCKS}
    assert sum(not skipped(text) for _, text in lines) >= 40


class Shell:
    """The few shell rules the docs use, running `medops` in-process."""

    def __init__(self, capsys: pytest.CaptureFixture[str], values: dict[str, str]) -> None:
        self.capsys, self.values = capsys, values

    def run(self, where: str, text: str) -> None:
        if skipped(text):
            return
        lexer = shlex.shlex(text, posix=True, punctuation_chars=True)
        lexer.whitespace_split, lexer.commenters = True, "#"
        tokens = list(lexer)
        bad = [t for t in tokens if t in OPERATORS or "$(" in t or "`" in t]
        assert not bad, f"{where}: {text!r} uses {bad[0]!r}, which this test does not run; keep doc commands simple"
        command: list[str] = []
        for token in [*tokens, "&&"]:
            if token != "&&":
                command.append(self._substitute(where, token))
                continue
            self._one(where, text, command)
            command = []

    def _substitute(self, where: str, token: str) -> str:
        for name, value in self.values.items():
            token = re.sub(rf"\b{name}\b", value, token)
        word = token.split("=", 1)[-1]  # NAME=value: the name is the option's, the value may be a placeholder
        loose = [] if " " in word else re.findall(r"(?<![\w-])[A-Z][A-Z_]{2,}(?![\w-])", word)  # phrases are prose
        assert not loose, f"{where}: placeholder {loose[0]} has no value here; use a concrete one in the docs"
        return token

    def _one(self, where: str, text: str, words: list[str]) -> None:
        env = {}
        while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
            key, _, value = words.pop(0).partition("=")
            env[key] = value
        assert words, f"{where}: {text!r} has no command"
        if words[0] == "cd":
            os.chdir(Path(words[1]).expanduser())
            return
        assert words[0] == "medops", f"{where}: {text!r} is not a medops command; run it here or list it in NOT_RUN"
        saved = {key: os.environ.get(key) for key in env}
        os.environ.update(env)
        try:
            main(words[1:])
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        finally:
            for key, old in saved.items():
                if old is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = old
        out = self.capsys.readouterr()
        assert code == 0, f"{where}: {' '.join(words)} exited {code}\n{out.out[-2000:]}\n{out.err[-2000:]}"


class Terminal:
    """Standard input as a terminal: where a command asks for a password, the demo's people type theirs."""

    def isatty(self) -> bool:
        return True

    def readline(self) -> str:
        return ""


def _cli_json(capsys: pytest.CaptureFixture[str], *args: str) -> object:
    capsys.readouterr()
    with pytest.raises(SystemExit) as done:
        main([*args, "--json"])
    out = capsys.readouterr()
    assert done.value.code == 0, out.err
    return json.loads(out.out)


def _demo_values(capsys: pytest.CaptureFixture[str]) -> dict[str, str]:
    """The placeholders' values in this copy of the demo (see PLACEHOLDERS)."""
    production = _cli_json(capsys, "models", "show", "readmission_30d:1")
    runs = _cli_json(capsys, "runs", "list")
    assert isinstance(production, dict) and isinstance(runs, list)
    first = production["run"]
    values = {
        "PRODUCTION_RUN": first,
        "RUN_A": first,
        "RUN": next(r["id"] for r in runs if r["tags"].get("reproduces") == first),
        "RUN_B": next(r["id"] for r in runs if r["name"] == "tuning"),
        "EVAL": production["evaluation"],
    }
    assert values.keys() == PLACEHOLDERS.keys()
    return values


RUNNABLE = [pytest.param(b, id=f"{b.doc}:{b.line}") for b in BLOCKS if not all(skipped(t) for _, t in b.commands)]


@pytest.mark.slow
@pytest.mark.parametrize("block", RUNNABLE)
def test_doc_commands_run(
    block: Block,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(sys, "stdin", Terminal())
    monkeypatch.setattr(typer, "prompt", lambda *args, **kwargs: DEMO_PASSWORD)
    values: dict[str, str] = {}
    if block.creates_workspace:
        folder = tmp_path / "fresh"
        folder.mkdir()
        monkeypatch.chdir(folder)
    else:
        demo = request.getfixturevalue("demo_copy")
        monkeypatch.setenv("MEDOPS_HOME", str(demo / "workspace"))
        monkeypatch.chdir(demo / "project")
        values = _demo_values(capsys)
    shell = Shell(capsys, values)
    for number, text in block.commands:
        shell.run(f"{block.doc}:{number}", text)
