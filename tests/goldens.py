"""Golden JSON for CLI output: normalize what changes from run to run, compare the rest.

The normalizer keeps the content and the structure of a document and replaces only what
differs between two runs of the same commands on the same data:

- hex digests and ids (12, 32 or 64 hex digits: run and evaluation ids, sha256 digests,
  hash-chain links, short version prefixes) become ``<hex:N>``, numbered in order of first
  appearance within the document; a 12-digit prefix gets the number of its full value, so
  "this run is that evaluation's run" survives normalization;
- timestamps (ISO 8601 with a time of day, or the compact ``YYYYMMDD-HHMMSS`` in run names)
  become ``<time>``; a string that is a month alone (``2026-09``: a monitored window's label, and
  the demo's production months are the six before the day it runs) becomes ``<month>``;
- the folders the test ran in become ``<root>``;
- what depends on the machine or the moment: values under duration keys (``duration_s``,
  ``*_seconds``) become ``<duration>``; ``host`` becomes ``<host>``; ``git_commit`` and
  ``git_dirty`` (the state of whatever repository the command ran in) become ``<git>``;
  ``replayed`` (how many answers a server gave in a given time) becomes ``<count>``;
- floats are rounded to 6 significant digits, so a last-bit difference of a numeric
  library does not fail a comparison of what the command reports.

``pytest --update-goldens`` rewrites the stored files from the current output; do that
only when a command's JSON changes shape on purpose, and review the diff.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

GOLDEN_DIR = Path(__file__).parent / "golden"

_HEX = re.compile(r"(?<![0-9a-zA-Z])(?:[0-9a-f]{64}|[0-9a-f]{32}|[0-9a-f]{12})(?![0-9a-zA-Z])")
_TIME = re.compile(
    r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})?|(?<!\d)\d{8}-\d{6}(?!\d)"
)
_MONTH = re.compile(r"\d{4}-\d{2}")
# a prediction's id is a UUID whose first digits are its time: numbered like the hashes
_UUID = re.compile(r"(?<![0-9a-zA-Z])[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}(?![0-9a-zA-Z])")
# "replayed": how many answers the demo's server gave while a rollback was swapped in under load
_VOLATILE_KEYS = {"host": "<host>", "git_commit": "<git>", "git_dirty": "<git>", "replayed": "<count>"}
_DURATION_KEYS = re.compile(r"^(duration(_s)?|elapsed.*|.*_seconds)$")


class Normalizer:
    """One document's normalization: the hex numbering is shared by every string in it."""

    def __init__(self, roots: dict[str, str] | None = None) -> None:
        # Longest first, so a folder inside another is replaced by its own name.
        self._roots = sorted((roots or {}).items(), key=lambda kv: -len(kv[0]))
        self._hex: dict[str, int] = {}

    def __call__(self, value: Any, key: str | None = None) -> Any:
        if key is not None and key in _VOLATILE_KEYS:
            return _VOLATILE_KEYS[key]
        if key is not None and _DURATION_KEYS.match(key) and isinstance(value, int | float):
            return "<duration>"
        if isinstance(value, dict):
            return {k: self(v, k) for k, v in value.items()}
        if isinstance(value, list):
            return [self(v) for v in value]
        if isinstance(value, float):
            return float(f"{value:.6g}")
        if isinstance(value, str):
            return self.text(value)
        return value

    def text(self, value: str) -> str:
        if _MONTH.fullmatch(value):
            return "<month>"
        for root, name in self._roots:
            value = value.replace(root, name)
        value = _TIME.sub("<time>", value)
        value = _UUID.sub(lambda m: f"<uuid:{self._hex.setdefault(m.group(0), len(self._hex) + 1)}>", value)
        return _HEX.sub(self._number, value)

    def _number(self, match: re.Match[str]) -> str:
        number = self._hex.setdefault(match.group(0)[:12], len(self._hex) + 1)
        return f"<hex:{number}>"


def normalize(doc: Any, roots: dict[str, str] | None = None) -> Any:
    """``doc`` with its volatile parts replaced (see the module docstring)."""
    return Normalizer(roots)(doc)


def check(name: str, doc: Any, *, update: bool) -> None:
    """Compare ``doc`` (already normalized) with tests/golden/NAME.json, or rewrite it when updating."""
    path = GOLDEN_DIR / f"{name}.json"
    text = json.dumps(doc, indent=2, ensure_ascii=False, sort_keys=False) + "\n"
    if update or not path.exists():
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
        if not update:
            raise AssertionError(f"{path.name} did not exist; written from this run: review and commit it")
        return
    expected = json.loads(path.read_text(encoding="utf-8"))
    assert doc == expected, (
        f"the JSON of {name} differs from {path.name}; if the change is on purpose, "
        "rerun with --update-goldens and review the diff"
    )
