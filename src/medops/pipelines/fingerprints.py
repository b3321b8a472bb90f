"""What a step's cache key is made of: digests of settings, files, code and environment.

A key is the SHA-256 of a step's inputs written as canonical JSON, so two runs with the same
inputs have the same key and a differing input can be named. Files are hashed whole, but a
file whose size and modification time are those recorded with its digest last time is taken
as unchanged without reading it (as git and make do): an unchanged project is decided in
milliseconds however large its sources. ``--force`` re-runs a step whatever its key says.
"""

from __future__ import annotations

import hashlib
import json
import platform
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from medops.version import __version__

_PACKAGE = Path(__file__).resolve().parents[1]  # src/medops
ADAPTERS = ("cli", "server")  # they parse and print and hold no rule: an edit there changes no step's outcome
ENV_PACKAGES = ("numpy", "pandas", "pyarrow", "duckdb", "scikit-learn", "lightgbm", "scipy", "optuna", "fairlearn")
CHUNK = 1 << 20


def digest(value: Any) -> str:
    """SHA-256 of ``value`` as canonical JSON (sorted keys, no spaces; dates and paths as text)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


@cache
def code_fingerprint() -> str:
    """medops's own code below its adapters: its version and every module's bytes (a local edit counts)."""
    h = hashlib.sha256(__version__.encode())
    for path in sorted(_PACKAGE.rglob("*")):
        inner = path.relative_to(_PACKAGE).parts
        if inner[0] in ADAPTERS or "__pycache__" in inner:
            continue
        if path.suffix in (".py", ".yaml", ".j2", ".html", ".sql"):
            h.update(str(path.relative_to(_PACKAGE)).encode() + b"\0")
            h.update(path.read_bytes())
    return h.hexdigest()


@cache
def environment_fingerprint() -> dict[str, str]:
    """Python and the versions of the libraries whose upgrade can change a result."""
    from importlib import metadata

    found = {"python": platform.python_version()}
    for name in ENV_PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def file_digest(path: Path, previous: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``{"path", "size", "mtime_ns", "sha256"}`` of a file; the recorded digest is reused when the path,
    size and modification time match ``previous`` (the same file's entry in the last run)."""
    stat = path.stat()
    entry: dict[str, Any] = {"path": str(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    if previous and all(previous.get(k) == entry[k] for k in entry) and previous.get("sha256"):
        return {**entry, "sha256": previous["sha256"]}
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(CHUNK):
            h.update(block)
    return {**entry, "sha256": h.hexdigest()}


def key_inputs(inputs: Mapping[str, Any]) -> Any:
    """The part of the inputs a key is made of: file entries count by their content only (a copy or a
    touch of the same bytes is the same input)."""
    if isinstance(inputs, Mapping):
        if "sha256" in inputs and "mtime_ns" in inputs:
            return inputs["sha256"]
        return {k: key_inputs(v) for k, v in inputs.items()}
    if isinstance(inputs, list):
        return [key_inputs(v) for v in inputs]
    return inputs


def step_key(inputs: Mapping[str, Any]) -> str:
    return digest(key_inputs(inputs))


def changes(before: Mapping[str, Any], after: Mapping[str, Any], prefix: str = "") -> list[str]:
    """The inputs that differ, as dotted names (``section``, ``data.sha256``, ``code``)."""
    a, b = key_inputs(before), key_inputs(after)
    return _diff(a, b, prefix)


def _diff(a: Any, b: Any, prefix: str) -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for k in sorted(a.keys() | b.keys()):
            name = f"{prefix}.{k}" if prefix else str(k)
            if k not in a or k not in b:
                out.append(name)
            else:
                out += _diff(a[k], b[k], name)
        return out
    return [] if a == b else [prefix or "(all)"]
