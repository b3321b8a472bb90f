"""Project templates: a project file, its contracts and synthetic raw data, ready to ingest."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from medops.errors import ConfigError, Conflict, InvalidInput

PROJECT_FILE = "medops.yaml"  # medops.services.projects.project.PROJECT_FILE (a test holds them equal)
# Optional, beside a template's project file: how its synthetic data is generated (not copied).
# hcps_per_patient: HCPs per patient of --patients (the generator's default: one per 200, at least 10).
SYNTH_FILE = "synth.yaml"
SYNTH_SETTINGS = ("hcps_per_patient",)

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


def scaffold(directory: Path, template: str, *, patients: int = 2000, seed: int = 7, data: bool = True) -> list[Path]:
    """Copy the template's project file and contracts into ``directory`` and generate raw data (unless
    ``data`` is false: the caller writes its own extract)."""
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
    if not data:
        return written
    from medops.synth import generate, write  # NumPy and pandas: loaded to scaffold, not to list

    written += write(generate(patients, seed=seed, **synth_options(template, patients)), directory / RAW_DIR, "csv")
    return written


def synth_options(template: str, patients: int) -> dict[str, Any]:
    """The generator's settings for ``patients`` patients, as the template's synth.yaml asks (none without one)."""
    path = TEMPLATES_DIR / template / SYNTH_FILE
    if not path.is_file():
        return {}
    import yaml

    settings = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(settings, dict):
        raise ConfigError(f"{path}: a mapping of generator settings", hint=f"settings: {', '.join(SYNTH_SETTINGS)}")
    unknown = sorted(set(settings) - set(SYNTH_SETTINGS))
    if unknown:
        raise ConfigError(f"{path}: unknown setting {unknown[0]!r}", hint=f"settings: {', '.join(SYNTH_SETTINGS)}")
    options: dict[str, Any] = {}
    ratio = settings.get("hcps_per_patient")
    if ratio is not None:
        if isinstance(ratio, bool) or not isinstance(ratio, int | float) or ratio <= 0:
            raise ConfigError(f"{path}: hcps_per_patient is a positive number, not {ratio!r}")
        options["hcps"] = max(10, round(patients * ratio))
    return options
