"""The layers of docs/architecture.md hold: adapters -> services -> domain -> identity, audit -> store -> base."""

from __future__ import annotations

import re
from pathlib import Path

from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "medops"


def test_the_layer_contract_in_pyproject_is_kept() -> None:
    # the contract (pyproject.toml, [tool.importlinter]) also forbids cycles between layers
    assert lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True, no_logo=True) == 0


def test_only_the_adapters_decide_who_acts() -> None:
    """MEDOPS_USER is read where a command or the Python API starts, and nowhere below."""
    readers = sorted(
        str(path.relative_to(SRC))
        for path in SRC.rglob("*.py")
        if re.search(r"acting_user\(|\"MEDOPS_USER\"|\bws\.actor\b", path.read_text()) and path.name != "config.py"
    )
    assert readers == ["__init__.py", "cli/common.py"]


def test_a_registry_listing_loads_no_dataframe_library() -> None:
    """`medops models list` pays for the registry's records only: bundles and training load with their operations."""
    import subprocess
    import sys

    code = "import sys, medops.services.registry; print(sorted({'pandas', 'pyarrow', 'sklearn'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
