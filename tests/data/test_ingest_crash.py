"""Crash safety: kill -9 in the middle of an ingest leaves no partial dataset version."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from medops.data import datasets
from medops.services.projects.templates import scaffold
from medops.workspace import Workspace

KEY = "pseudonym-key-for-tests-0123456789abcdef"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project large enough that its ingest can be killed in the middle (only read by the tests)."""
    folder = tmp_path_factory.mktemp("project")
    scaffold(folder, "readmission", patients=30000, seed=5)
    return folder


@pytest.mark.slow
def test_kill_9_mid_ingest_leaves_no_partial_version(workspace: Workspace, project: Path) -> None:
    env = {
        **os.environ,
        "MEDOPS_TOKEN": workspace.tokens.create("admin", "crash test", expires_in_days=1)[1],
        "MEDOPS_HOME": str(workspace.settings.home),
        "MEDOPS_PSEUDONYM_KEY": KEY,
        "MEDOPS_KEY_DIR": str(Path(workspace.settings.signing_key_file).parent),
    }
    args = [sys.executable, "-m", "medops.cli.main", "data", "ingest", "observations", "--chunk-rows", "2000"]
    args += ["--project", str(project / "medops.yaml")]
    staging = Path(workspace.settings.artifact_root) / ".tmp"
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if staging.exists() and any(p.stat().st_size > 0 for p in staging.iterdir()):
            break  # a staging Parquet file is being written
        time.sleep(0.01)
    assert proc.poll() is None, f"the ingest ended before it could be killed: {proc.stderr.read()!r}"  # type: ignore[union-attr]
    proc.send_signal(signal.SIGKILL)
    proc.wait()

    assert datasets.list_versions(workspace.db) == []
    assert list(workspace.artifacts.digests()) == []  # nothing published
    assert workspace.artifacts.verify_all(clean_temp_older_than=0).stale_temp_files >= 1
    assert not any(staging.iterdir())
    assert workspace.verify_audit().ok

    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    (version,) = datasets.list_versions(workspace.db, "observations")
    assert workspace.artifacts.verify(version.version)
