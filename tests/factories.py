"""Helpers that tests share (not fixtures: those live in conftest.py files).

Test modules import from here, never from one another.
"""

from __future__ import annotations

import io
import multiprocessing as mp
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from medops.cli.main import main
from medops.data.datasets import get
from medops.data.ingest import TablePlan, ingest
from medops.data.sources import ParquetSource
from medops.evaluation.evaluate import evaluate
from medops.evaluation.spec import EvaluateSpec
from medops.features import Feature, FeatureSet, FeatureView, OnDemandFeature
from medops.training import Tracker
from medops.training.train import TrainConfig, train
from medops.training.trainers import ModelSpec
from medops.workspace import Workspace

if TYPE_CHECKING:
    from medops.demo import DemoResult

PASSWORD = "test-password-0123"
# A fixed pseudonymization key that passes the strength check (random-looking, no pattern).
PSEUDONYM_KEY = "tKq8vR2pLw9xZc4mNb7hYf1sGd6jUe3a-test-pseudonym-key"


@contextmanager
def loose_umask(mask: int = 0o022) -> Iterator[None]:
    """The usual shell umask, under which a file made without an explicit mode is 0644."""
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def processes(target: Callable[..., None], argses: list[tuple[Any, ...]]) -> list[Any]:
    """Started processes, one per argument tuple, each running ``target`` in this test's environment.

    They fork from a server process that imported medops once per test process, instead of each
    spending seconds importing it again in a fresh interpreter; they share no connection or thread
    with the test. The server's environment is the one it started in, so each is handed the test's.
    """
    context = mp.get_context("forkserver")
    context.set_forkserver_preload(["tests.factories", "medops.registry.stages"])
    started = []
    for args in argses:
        process = context.Process(target=_in_environment, args=(dict(os.environ), target, *args))
        process.start()
        started.append(process)
    return started


def event() -> Any:
    """An event the processes of ``processes`` can wait on."""
    return mp.get_context("forkserver").Event()


def _in_environment(environ: dict[str, str], target: Callable[..., None], *args: Any) -> None:
    os.environ.clear()
    os.environ.update(environ)
    target(*args)


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


# Backend parameters of fixtures: a test given the server's parameter carries its marker.
POSTGRES = pytest.param("postgresql", marks=pytest.mark.postgres)
REDIS = pytest.param("redis", marks=pytest.mark.redis)


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
    """The session's demo: the folder it ran in and what it returned."""

    root: Path
    result: DemoResult


def log_in(where: Workspace | Path, username: str, password: str = PASSWORD) -> str:
    """Log ``username`` in as `medops login` does: a session from the identity service, kept in the
    session file the CLI reads (this test's MEDOPS_SESSION_DIR). Returns the session's secret."""
    from medops.credentials import save_session
    from medops.services.identity import IdentityService

    ws = where if isinstance(where, Workspace) else Workspace.open(where)
    try:
        _, secret = IdentityService(ws).login(username, password=password)
        save_session(ws.settings, secret)
    finally:
        if ws is not where:
            ws.close()
    return secret


def put(ws: Workspace, tmp_path: Path, name: str, table: pa.Table) -> None:
    """A dataset version with these exact rows (every column kept as is)."""
    path = tmp_path / f"{name}.parquet"
    pq.write_table(table, path)
    ingest(ws, TablePlan(name, ParquetSource(path), {c: "keep" for c in table.column_names}), actor="admin")


TRAIN_FEATURES = ["age", "los", "payer"]


def training_rows(n: int = 1500, seed: int = 0) -> pd.DataFrame:
    """Readmission rows (patients repeat) whose risk follows age and length of stay."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "patient_id": [f"pat_{p:04d}" for p in rng.integers(0, 400, n)],
            "age": rng.normal(65, 12, n),
            "los": rng.exponential(4, n),
            "payer": rng.choice(["medicare", "medicaid", "commercial"], n),
        }
    )
    logit = (frame["age"] - 65) / 12 + (frame["los"] - 4) / 4
    frame["readmitted"] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return frame


COHORT_FEATURES = ["age", "los", "frailty_seen"]
LOGISTIC = ModelSpec("logistic_regression")
POLICY: dict[str, Any] = {
    "threshold": {"target_sensitivity": 0.7},
    "bootstrap": {"resamples": 300, "seed": 1},
    "subgroups": {"attributes": {"sex": {}, "age_band": {"column": "age", "bins": [50, 75]}}, "min_size": 40},
    "robustness": {"unit_errors": {"age": {"scale": 12, "note": "months where years are expected"}}},
    "policy": {
        "metrics": {"auroc": {"min": 0.7, "check": "ci_lower"}},
        "subgroup_gaps": {
            "auroc": {"max": 0.1, "attributes": ["sex"]},
            "equal_opportunity": {"max": 0.2, "attributes": ["sex"]},  # age drives the risk: not a fairness gap
        },
        "non_inferiority": {"metric": "auroc", "margin": 0.02},
        "prerequisites": ["leakage_checks"],  # these test datasets come without a contract (see below)
    },
}


def cohort(n: int, *, biased: bool, seed: int = 0) -> pd.DataFrame:
    """Readmission driven by age, stay and frailty; with ``biased``, women's risk follows a cause the
    model never sees, so a model good overall is poor for them."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "patient_id": [f"p{i:05d}" for i in range(n)],
            "sex": rng.choice(["F", "M"], n),
            "age": rng.normal(65, 12, n).round(),
            "los": rng.exponential(4, n),
            "frailty_seen": rng.normal(0, 1, n),
            "hidden": rng.normal(0, 1, n),
        }
    )
    seen = (frame["age"] - 65) / 8 + (frame["los"] - 4) / 2.5 + 1.5 * frame["frailty_seen"]
    risk = np.where(biased & (frame["sex"] == "F"), 2.5 * frame["hidden"], seen) - 1.5
    frame["readmitted"] = (rng.random(n) < 1 / (1 + np.exp(-risk))).astype(int)
    return frame


def train_run(
    tracker: Tracker, tmp_path: Path, name: str, frame: pd.DataFrame, model: ModelSpec, features: list[str]
) -> str:
    """Store ``frame`` as dataset NAME and train on it (alice): the run id."""
    put(tracker.ws, tmp_path, name, pa.Table.from_pandas(frame, preserve_index=False))
    info = get(tracker.ws.db, name)
    config = TrainConfig(
        features,
        "readmitted",
        model,
        split="stratified",
        group=None,
        test_size=0.3,
        seed=3,
        inputs=(info.ref,),
        data={"dataset": info.name, "version": info.version, "drop_missing_labels": False},
    )
    rows = pq.read_table(tracker.ws.artifacts.local_path(info.version)).to_pandas()
    return train(tracker, rows, config, actor="alice").run_id


def evaluate_run(tracker: Tracker, run: str, champion: str | None = None, **changes: Any) -> dict[str, Any]:
    """Evaluate RUN under POLICY (with ``changes``), as victor."""
    spec = EvaluateSpec.model_validate({**POLICY, **changes})
    return evaluate(tracker, run, spec, project={"name": "t"}, champion=champion, actor="victor")


def govern(ws: Workspace, **changes: Any) -> None:
    """Make POLICY (with ``changes``) the workspace's governing policy: its project file's evaluate section."""
    (ws.settings.home / "medops.yaml").write_text(yaml.safe_dump({"evaluate": {**POLICY, **changes}}))


# --- a small feature store: events, people, their views, labels -------------------------

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def events_table(n_entities: int = 30, per: int = 6) -> pa.Table:
    rows: dict[str, list[Any]] = {"pid": [], "t": [], "known": [], "hr": [], "code": []}
    for e in range(n_entities):
        for i in range(per):
            t = T0 + timedelta(days=10 * i + e % 7, hours=e)
            rows["pid"].append(f"p{e:03d}")
            rows["t"].append(t)
            rows["known"].append(t + (timedelta(days=3) if (e + i) % 5 == 0 else timedelta(0)))
            rows["hr"].append(60.0 + e + i)
            rows["code"].append("a" if i % 2 else "b")
    return pa.table(
        {
            "pid": rows["pid"],
            "t": pa.array(rows["t"], pa.timestamp("us", "UTC")),
            "known": pa.array(rows["known"], pa.timestamp("us", "UTC")),
            "hr": rows["hr"],
            "code": rows["code"],
        }
    )


def people_table(n: int = 30) -> pa.Table:
    return pa.table({"pid": [f"p{e:03d}" for e in range(n)], "birth_year": [1950 + e for e in range(n)]})


def feature_set() -> FeatureSet:
    fs = FeatureSet()
    fs.add(
        FeatureView(
            name="vitals",
            entity="pid",
            source="events",
            timestamp="t",
            created="known",
            ttl=timedelta(days=25),
            owner="alice",
            description="heart rate",
            features=(
                Feature("hr"),
                Feature("hr_mean_30d", expr="hr", agg="mean", window=timedelta(days=30)),
                Feature("a_count_60d", agg="count", window=timedelta(days=60), filter="code = 'a'"),
                Feature("hr_plus_one", fn=lambda frame: frame["hr"] + 1),
            ),
        )
    )
    fs.add(FeatureView(name="people", entity="pid", source="people", features=(Feature("birth_year"),)))
    fs.add(OnDemandFeature(name="age", expr="year(event_timestamp) - birth_year", inputs=("birth_year",)))
    return fs


def labels_frame(n: int = 40) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "pid": [f"p{i % 33:03d}" for i in range(n)],  # p030-p032 have no rows
            "at": [T0 + timedelta(days=3 * i) for i in range(n)],
            "y": [i % 2 for i in range(n)],
        }
    )


def remove_checkpoint_store(ws: Workspace) -> None:
    """The workspace's checkpoint store gone, as an upgrade or an emptied disk leaves it. Its spare-file
    thread is stopped first: it makes the next checkpoint's file after each write, and a file made
    while the folder is being removed stops the removal."""
    import shutil

    ws.checkpoints.close()
    shutil.rmtree(ws.settings.checkpoint_root)


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_serve(args: list[str], *, command_name: str = "serve", log: Path | None = None) -> tuple[Any, str]:
    """`medops serve ARGS` (or another server command) as a separate process on a free port, once /readyz
    answers 200: (process, base URL). ``log``: a file for its stderr (a busy server's log fills a pipe)."""
    import subprocess
    import time

    import httpx

    port = free_port()
    command = [sys.executable, "-m", "medops", command_name, *args, "--port", str(port)]
    errors: Any = subprocess.PIPE if log is None else log.open("wb")
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors, env=os.environ.copy())
    url = f"http://127.0.0.1:{port}"
    with httpx.Client(timeout=1) as http:  # one client: each httpx.get would build a TLS context, 40 ms of CPU
        for _ in range(1200):  # a bound on the wait for the port, not a measurement
            try:
                if http.get(f"{url}/readyz").status_code == 200:
                    return server, url
            except httpx.TransportError:
                pass
            if server.poll() is not None:
                raise AssertionError(server.communicate()[1].decode() if log is None else log.read_text())
            time.sleep(0.05)
    server.kill()
    raise AssertionError(f"medops serve did not answer on {url}")


def cohort_rows(n: int) -> pd.DataFrame:
    """Rows of the training cohort without its label: inside every range the model accepts."""
    return cohort(2400, biased=False).drop(columns="readmitted").head(n)


@dataclass(frozen=True)
class Platform:
    """A copy of the demo's workspace behind a running `medops server`, and an API token per demo user."""

    workspace: Path
    url: str
    tokens: dict[str, str]
    elsewhere: Path  # a folder with no workspace above it: where a client of the server runs


# A spool syncer (medops.serving.spool_syncer) whose every sync fails: it reports EIO in the folder's state
# file at once, then waits for its server to close the control pipe.
FAILING_SYNCER = [
    sys.executable,
    "-c",
    "import mmap, os, sys\n"
    "from pathlib import Path\n"
    "from medops.serving.spool_syncer import STATE, STATE_LAYOUT\n"
    "folder, seconds, control = sys.argv[1:]\n"
    "with open(Path(folder) / STATE, 'r+b') as handle:\n"
    "    state = mmap.mmap(handle.fileno(), STATE_LAYOUT.size)\n"
    "STATE_LAYOUT.pack_into(state, 0, 5, 0, 1, 0)\n"
    "while os.read(int(control), 4096):\n"
    "    pass\n",
]
