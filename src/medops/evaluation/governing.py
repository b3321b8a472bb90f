"""The workspace's governing policy: the ``evaluate`` section of its reviewed project file.

Only an evaluation made under this policy's hash can gate production. Evaluating a run with
another project file is allowed (to explore), but that evaluation is marked exploratory and
unlocks nothing. The file is found by the workspace setting ``project_file`` (default
``medops.yaml`` in the workspace folder), which no environment variable overrides, so a
hurried team can't point the gate at a looser copy for one command.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from medops.config import Settings
from medops.errors import ConfigError
from medops.evaluation.spec import EvaluateSpec
from medops.platform import Platform


@dataclass(frozen=True)
class GoverningPolicy:
    path: Path
    spec: EvaluateSpec
    project_sha256: str  # the whole file's hash, recorded with each production move

    @property
    def sha256(self) -> str:
        return self.spec.sha256

    @property
    def approvals(self) -> list[str]:
        return list(self.spec.policy.approvals)


def project_path(settings: Settings) -> Path:
    """The workspace's reviewed project file: ``project_file`` of medops.toml, relative to the workspace."""
    path = Path(settings.project_file).expanduser()
    return path if path.is_absolute() else settings.home / path


def governing_section(ws: Platform, name: str) -> tuple[Path, Any, str] | None:
    """The workspace's project file, the raw section ``name`` of it (None if absent) and the file's hash;
    None when the workspace has no project file."""
    path = project_path(ws.settings)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: the workspace's project file can't be read ({exc})") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError:
        raise ConfigError(
            f"{path}: the workspace's project file is not valid YAML", code="project_file_invalid"
        ) from None
    section = raw.get(name) if isinstance(raw, dict) else None
    return path, section, hashlib.sha256(text.encode()).hexdigest()


def governing_policy(ws: Platform) -> GoverningPolicy | None:
    """The policy of the workspace's project file, or None when the workspace has no project file."""
    found = governing_section(ws, "evaluate")
    if found is None or found[1] is None:
        return None
    path, section, digest = found
    try:
        spec = EvaluateSpec.model_validate(section)
    except ValidationError as exc:
        raise ConfigError(
            f"{path}: the evaluate section is not valid ({exc.errors()[0]['msg']})", code="project_file_invalid"
        ) from None
    return GoverningPolicy(path.resolve(), spec, digest)
