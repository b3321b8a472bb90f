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
    """The credential (MEDOPS_TOKEN, the login session) and the MEDOPS_USER name hint are read where a
    command or the Python API starts, and nowhere below; the services verify what they are given."""
    pattern = r"\bpresented\(|stored_session\(|user_hint\(|\"MEDOPS_(USER|TOKEN)\"|\bws\.actor\b|acting_user"
    readers = sorted(
        str(path.relative_to(SRC))
        for path in SRC.rglob("*.py")
        if re.search(pattern, path.read_text()) and path.name != "credentials.py"
    )
    assert readers == [
        "__init__.py",
        "cli/common.py",
        "cli/models.py",  # a signature's password prompt names who signs
        "cli/remote.py",
        "cli/session.py",
        "cli/user.py",  # `user passwd`: one's own password, or an admin's reset of another's
        "client.py",
        "server/api/auth.py",
        "server/api/routes/workspace.py",  # the health report says which credential the request presented
        "server/api/sessions.py",
    ]


def test_a_caller_is_made_from_a_verified_credential_only() -> None:
    """Outside the identity service, a user's Caller is made only by the demo and tests (in-process, they
    hold the database anyway); adapters ask the service, which verifies a session or an API token."""
    makers = sorted(
        str(path.relative_to(SRC))
        for path in SRC.rglob("*.py")
        if re.search(r"\bCaller\(", path.read_text()) and path.name != "caller.py"
    )
    assert makers == ["demo.py", "services/identity.py"]


def test_a_registry_listing_loads_no_dataframe_library() -> None:
    """`medops models list` pays for the registry's records only: bundles and training load with their operations."""
    import subprocess
    import sys

    code = "import sys, medops.services.registry; print(sorted({'pandas', 'pyarrow', 'sklearn'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
