"""Project templates: a project file, its contracts and synthetic raw data, ready to ingest."""

from __future__ import annotations

import shutil
from pathlib import Path

from medops.errors import Conflict, InvalidInput

PROJECT_FILE = "medops.yaml"  # medops.services.projects.project.PROJECT_FILE (a test holds them equal)

TEMPLATES_DIR = Path(__file__).resolve().parents[2] / "templates"  # medops/templates
RAW_DIR = "raw"
GITIGNORE = """# Raw data holds PHI (synthetic here): it never goes into git or the workspace stores.
raw/
# Workspace state lives in the metadata database and the artifact store, not in git.
medops.db*
online.db*
artifacts/
"""


def templates() -> list[str]:
    return sorted(p.name for p in TEMPLATES_DIR.iterdir() if (p / PROJECT_FILE).is_file())


def scaffold(directory: Path, template: str, *, patients: int = 2000, seed: int = 7) -> list[Path]:
    """Copy the template's project file and contracts into ``directory`` and generate raw data."""
    if template not in templates():
        raise InvalidInput(f"unknown template {template!r}", hint=f"templates: {', '.join(templates())}")
    source = TEMPLATES_DIR / template
    if (directory / PROJECT_FILE).exists():
        raise Conflict(f"{directory / PROJECT_FILE} exists already", hint="templates never overwrite a project")
    directory.mkdir(parents=True, exist_ok=True)
    written = [directory / PROJECT_FILE]
    shutil.copyfile(source / PROJECT_FILE, written[0])
    shutil.copytree(source / "contracts", directory / "contracts", dirs_exist_ok=True)
    written += sorted((directory / "contracts").iterdir())
    gitignore = directory / ".gitignore"
    if not gitignore.exists():
        gitignore.write_text(GITIGNORE, encoding="utf-8")
        written.append(gitignore)
    from medops.synth import generate, write  # NumPy and pandas: loaded to scaffold, not to list

    written += write(generate(patients, seed=seed), directory / RAW_DIR, "csv")
    return written
